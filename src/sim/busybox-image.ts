import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';

/** The image tests and benches run docker tasks in: busybox and nothing else, made on this host. */
export const BUSYBOX_TEST_IMAGE = 'slipway-test/busybox:latest';

const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

/**
 * Makes sure the engine has `slipway-test/busybox:latest` and returns its name. No public
 * registry is reachable from test machines, so when the image is missing it is built here: a root
 * file system holding the host's statically linked busybox (Debian: `apt-get install -y
 * busybox-static`) with a symlink per applet (sh, echo, sleep, cat, env, ...), imported as an
 * image (`docker import`, i.e. POST /images/create?fromSrc=-) with `CMD ["sh"]`.
 */
export async function ensureBusyboxImage(docker: Dockerode): Promise<string> {
  try {
    await docker.getImage(BUSYBOX_TEST_IMAGE).inspect();
    return BUSYBOX_TEST_IMAGE;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode !== 404) throw e;
  }
  const rootfs = mkdtempSync(join(tmpdir(), 'slipway-busybox-rootfs-'));
  try {
    buildBusyboxRootfs(rootfs);
    await importRootfs(docker, rootfs, BUSYBOX_TEST_IMAGE, ['CMD ["sh"]', 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  await docker.getImage(BUSYBOX_TEST_IMAGE).inspect();
  return BUSYBOX_TEST_IMAGE;
}

/**
 * Imports the directory `rootfs` as the image `name` (`docker import`, i.e. POST
 * /images/create?fromSrc=-), with Dockerfile instructions `changes` (CMD, ENV, ...).
 */
export async function importRootfs(docker: Dockerode, rootfs: string, name: string, changes: string[]): Promise<void> {
  const tar = spawn('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tarErrors = '';
  tar.stderr.on('data', (chunk: Buffer) => (tarErrors += chunk.toString()));
  const tarExit = once(tar, 'exit');
  const [repo, tag] = name.split(':') as [string, string];
  const progress = await docker.importImage(tar.stdout, { repo, tag, changes });
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(progress, (err: Error | null, output: { error?: string }[]) => {
      const failed = output?.find((o) => o.error !== undefined);
      if (err !== null) reject(err);
      else if (failed !== undefined) reject(new Error(`docker import of ${name} failed: ${failed.error}`));
      else resolve();
    });
  });
  const [code] = (await tarExit) as [number | null];
  if (code !== 0) throw new Error(`tar of the root file system of ${name} failed (${code}): ${tarErrors}`);
}

/** A root file system of the host's static busybox with a symlink per applet, /etc/passwd and /tmp. */
export function buildBusyboxRootfs(rootfs: string): void {
  const busybox = staticBusybox();
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'mnt']) {
    mkdirSync(join(rootfs, dir), { recursive: true });
  }
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a !== '' && a !== 'busybox' && !a.includes('/'));
  for (const applet of applets) symlinkSync('busybox', join(rootfs, 'bin', applet));
  // `#!/usr/bin/env sh` scripts.
  symlinkSync('/bin/busybox', join(rootfs, 'usr', 'bin', 'env'));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/** The host's busybox, if it is statically linked (runs in an empty root file system). */
function staticBusybox(): string {
  const found = BUSYBOX_CANDIDATES.find((p) => existsSync(p));
  if (found === undefined) {
    throw new Error(`no busybox on this host (looked at ${BUSYBOX_CANDIDATES.join(', ')}); install it: apt-get install -y busybox-static`);
  }
  if (hasInterpreter(found)) {
    throw new Error(`${found} is dynamically linked and cannot run alone in an image; install the static one: apt-get install -y busybox-static`);
  }
  return found;
}

/** Whether an ELF64 little-endian file names a program interpreter (PT_INTERP), i.e. is dynamically linked. */
function hasInterpreter(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return true;
    return false;
  } finally {
    closeSync(fd);
  }
}

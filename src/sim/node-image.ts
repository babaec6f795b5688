import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type Dockerode from 'dockerode';
import { buildBusyboxRootfs, importRootfs } from './busybox-image.ts';

/**
 * An image with `node` and `git` on its PATH: what a Docker CI executor's image needs (like
 * `node:20`). Tagged with the version of the node it holds: one built before the host's node
 * changed is not taken for it.
 */
export const NODE_TEST_IMAGE = `slipway-test/node:${process.version}`;

/**
 * Makes sure the engine has NODE_TEST_IMAGE: the busybox root file system plus this
 * host's `node` (the one running the tests) and `git`, each with the shared libraries `ldd` names
 * for it, and git's built-in programs (upload-pack, ...) as links in /usr/lib/git-core. Public
 * images such as `node:20`, which have both, cannot be pulled here (no registry but our own).
 */
export async function ensureNodeImage(docker: Dockerode): Promise<string> {
  try {
    await docker.getImage(NODE_TEST_IMAGE).inspect();
    return NODE_TEST_IMAGE;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode !== 404) throw e;
  }
  const rootfs = mkdtempSync(join(tmpdir(), 'slipway-node-rootfs-'));
  try {
    buildBusyboxRootfs(rootfs);
    const git = realpathSync(execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim());
    copyWithLibraries(rootfs, realpathSync(process.execPath), '/usr/bin/node');
    copyWithLibraries(rootfs, git, '/usr/bin/git');
    linkGitBuiltins(rootfs, dirname(git) === '/usr/lib/git-core' ? dirname(git) : '/usr/lib/git-core');
    const templates = '/usr/share/git-core/templates';
    if (existsSync(templates)) {
      mkdirSync(join(rootfs, 'usr/share/git-core'), { recursive: true });
      execFileSync('cp', ['-a', templates, join(rootfs, 'usr/share/git-core/')]);
    }
    await importRootfs(docker, rootfs, NODE_TEST_IMAGE, ['CMD ["node"]', 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  await docker.getImage(NODE_TEST_IMAGE).inspect();
  return NODE_TEST_IMAGE;
}

/** Copies `program` to `target` in `rootfs`, with every library `ldd` lists at the same path. */
function copyWithLibraries(rootfs: string, program: string, target: string): void {
  copyInto(rootfs, program, target);
  let ldd: string;
  try {
    ldd = execFileSync('ldd', [program], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return; // "not a dynamic executable": a static program needs no library.
  }
  for (const line of ldd.split('\n')) {
    // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`.
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m === null) continue;
    const lib = m[1] as string;
    copyInto(rootfs, realpathSync(lib), lib);
  }
}

function copyInto(rootfs: string, source: string, target: string): void {
  const dest = join(rootfs, target);
  if (existsSync(dest)) return;
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(source, dest);
  execFileSync('chmod', ['0755', dest]);
}

/** git-upload-pack and the other built-ins are links to git; local fetches run git-upload-pack. */
function linkGitBuiltins(rootfs: string, hostExecPath: string): void {
  const dir = join(rootfs, 'usr/lib/git-core');
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'git'))) symlinkSync('/usr/bin/git', join(dir, 'git'));
  if (!existsSync(hostExecPath)) return;
  for (const name of readdirSync(hostExecPath)) {
    const path = join(hostExecPath, name);
    if (name === 'git' || !lstatSync(path).isSymbolicLink()) continue;
    if (readlinkSync(path) === 'git') symlinkSync('/usr/bin/git', join(dir, name));
  }
}

import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile, chmod } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { ConfigClient } from './config-client.ts';

/**
 * `slipway config pull`: the files of a service's current release written under a directory, as
 * consul-template does with its templates' output: each file written whole (to a temporary name,
 * then renamed over the old one, so that a reader never sees half a file), with its mode, checked
 * against its digest; the release pulled kept in `.slipway-config.json` beside them, so that a
 * restart while the config center is down starts from what was there (Apollo's client cache).
 * A destination is placed under the directory (`/etc/app/app.yaml` is `<dir>/etc/app/app.yaml`).
 */

export interface PulledState {
  service: string;
  env: string;
  release: number;
  files: { name: string; path: string; sha256: string }[];
}

export const STATE_FILE = '.slipway-config.json';

export async function readPulled(dir: string): Promise<PulledState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as PulledState;
  } catch {
    return undefined;
  }
}

/** Where a destination goes under `dir`: strictly inside it, never the state file. */
function under(dir: string, destination: string): string {
  const path = resolve(dir, destination.replace(/^\/+/, ''));
  if (!path.startsWith(dir + sep)) throw new Error(`destination ${destination} is not a file inside ${dir}`);
  if (path === join(dir, STATE_FILE) || path === join(dir, `${STATE_FILE}.tmp`)) throw new Error(`destination ${destination} is where the pulled release is recorded`);
  return path;
}

/** Pulls the current release into `dir`; answers it and whether anything changed on disk. */
export async function pullRelease(client: ConfigClient, service: string, env: string, dirIn: string, instance?: string): Promise<{ state: PulledState; changed: boolean }> {
  const dir = resolve(dirIn);
  const before = await readPulled(dir);
  const listing = await client.files(service, env, instance);
  const files: PulledState['files'] = [];
  let changed = before === undefined || before.release !== listing.release;
  for (const f of listing.files) {
    const path = under(dir, f.destination);
    const old = before?.files.find((x) => x.name === f.name);
    files.push({ name: f.name, path, sha256: f.sha256 });
    if (old !== undefined && old.sha256 === f.sha256 && old.path === path) continue;
    const content = await client.fileContent(f.url);
    const digest = createHash('sha256').update(content, 'utf8').digest('hex');
    if (digest !== f.sha256) throw new Error(`${f.name}: its SHA-256 is ${digest}, not ${f.sha256} as the release says`);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.slipway-${process.pid}.tmp`;
    await writeFile(tmp, content, { mode: parseInt(f.mode, 8) });
    await chmod(tmp, parseInt(f.mode, 8));
    await rename(tmp, path);
    changed = true;
  }
  const state: PulledState = { service, env, release: listing.release, files };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, `${STATE_FILE}.tmp`), JSON.stringify(state, null, 2), { mode: 0o600 });
  await rename(join(dir, `${STATE_FILE}.tmp`), join(dir, STATE_FILE));
  return { state, changed };
}

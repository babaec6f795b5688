import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './nginx.ts';
import { waitUntil } from './wait.ts';

/**
 * A second Debian docker-registry (Distribution 2.x), started by a test as a child process on a
 * free 127.0.0.1 port with its config and storage in `dir`, and htpasswd authentication (`users`,
 * bcrypt hashes made with python3's crypt, which Debian's libcrypt backs). The engine sends Basic
 * credentials to it over plain HTTP, since the engine takes 127.0.0.0/8 registries as insecure.
 */
export interface TestRegistry {
  address: string;
  stop(): Promise<void>;
}

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';

export function dockerRegistryInstalled(): boolean {
  return existsSync(DOCKER_REGISTRY);
}

export async function startAuthRegistry(dir: string, users: Record<string, string>): Promise<TestRegistry> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const htpasswd = join(dir, 'htpasswd');
  const lines = Object.entries(users).map(([user, password]) => {
    const hash = execFileSync('python3', ['-W', 'ignore', '-c', 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))', password], { encoding: 'utf8' }).trim();
    if (!hash.startsWith('$2')) throw new Error(`python3's crypt made no bcrypt hash: ${hash}`);
    return `${user}:${hash}\n`;
  });
  writeFileSync(htpasswd, lines.join(''), { mode: 0o600 });
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, 'http:', `  addr: ${address}`, 'auth:', '  htpasswd:', '    realm: slipway-test', `    path: ${htpasswd}`, ''].join('\n'),
  );
  const child: ChildProcess = spawn(DOCKER_REGISTRY, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  let exited = false;
  child.on('exit', () => (exited = true));
  await waitUntil(
    async () => {
      if (exited) throw new Error(`docker-registry exited during start-up: ${stderr}`);
      return fetch(`http://${address}/v2/`).then(
        (r) => r.status === 401,
        () => false,
      );
    },
    'the registry with htpasswd to answer 401',
    10_000,
  );
  return {
    address,
    stop: async () => {
      if (exited) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

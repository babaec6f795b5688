import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './wait.ts';

/**
 * Debian's nginx as an artifact store (an HTTP origin that takes PUT: `dav_methods PUT`, core
 * ngx_http_dav_module), started by a test as a child process on a free 127.0.0.1 port, with its
 * config, pid, logs and temp files in `dir`. Locations:
 * - `/open/`: PUT without credentials;
 * - `/auth/`: PUT with Basic credentials (`users`, written {PLAIN} to an htpasswd file);
 * - `/readonly/`: GET only, PUT answered 403.
 * Files land under `root` (`<root>/open/...`).
 */
export interface Nginx {
  url: string;
  root: string;
  errorLog: string;
  stop(): Promise<void>;
}

export const NGINX = '/usr/sbin/nginx';

export function nginxInstalled(): boolean {
  return existsSync(NGINX);
}

export async function startNginx(dir: string, users: Record<string, string> = {}): Promise<Nginx> {
  mkdirSync(dir, { recursive: true });
  const root = join(dir, 'root');
  for (const d of ['root/open', 'root/auth', 'root/readonly', 'temp', 'logs']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'htpasswd'), Object.entries(users).map(([u, p]) => `${u}:{PLAIN}${p}\n`).join(''), { mode: 0o600 });
  const port = await freePort();
  const temp = join(dir, 'temp');
  const errorLog = join(dir, 'logs', 'error.log');
  // Workers run as the current user (nginx would switch to nobody when started as root, who
  // could not write into a 0700 temp dir).
  const user = process.getuid?.() === 0 ? `user ${userInfo().username};\n` : '';
  const conf = `${user}daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${errorLog} info;
events { worker_connections 64; }
http {
  access_log ${join(dir, 'logs', 'access.log')};
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  client_max_body_size 64m;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location /open/ {
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
    location /auth/ {
      dav_methods PUT;
      create_full_put_path on;
      auth_basic "artifacts";
      auth_basic_user_file ${join(dir, 'htpasswd')};
    }
    location /readonly/ {
      limit_except GET { deny all; }
    }
  }
}
`;
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', confFile, '-e', errorLog], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (exited) throw new Error(`nginx exited during start-up: ${stderr}`);
      return fetch(`${url}/`).then(
        () => true,
        () => false,
      );
    },
    'nginx to answer',
    10_000,
  );
  return {
    url,
    root,
    errorLog,
    stop: async () => {
      if (exited) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** A port of 127.0.0.1 that nothing listens on (just now). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

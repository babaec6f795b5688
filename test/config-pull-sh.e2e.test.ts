import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestRepo } from './support/git-repo.ts';
import { unauthenticatedFetch } from './support/auth-preload.ts';
import { freePort, SlipwayProcess, tempDir, waitForHttp } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 13, "Live": pull.sh, the config center's sh script for images with only busybox wget or
// curl, fetched from a real `slipway up` and run as a real process, with busybox sh + busybox
// wget and with dash + curl, against a service whose templates are in a real git repository.

const dir = tempDir('config-pull-sh');
let master = '';
let script = '';
const processes: SlipwayProcess[] = [];
const children: ChildProcess[] = [];

/** A shell and the programs it finds: a directory of links that is the whole PATH. */
interface Toolbox {
  name: string;
  /** The directory that is the whole PATH. */
  path: string;
  /** The service its tests pull (one each, so that their releases do not cross). */
  service: string;
  /** What the config center sees as the client (its User-Agent). */
  agent: RegExp;
}

/** A directory of links, tool name → the program it runs. */
function toolbox(name: string, tools: Record<string, string>): string {
  const path = join(dir, 'bin', name);
  mkdirSync(path, { recursive: true });
  for (const [tool, target] of Object.entries(tools)) symlinkSync(target, join(path, tool));
  return path;
}

const BUSYBOX = '/usr/bin/busybox';
function busyboxApplets(): Record<string, string> {
  const list = execFileSync(BUSYBOX, ['--list']).toString();
  return Object.fromEntries(list.split('\n').filter((a) => a !== '' && a !== 'busybox').map((a) => [a, BUSYBOX]));
}

const TOOLBOXES: Toolbox[] = [];

interface Run {
  code: number | null;
  stderr: string;
}

/** The script as a process of `box` (its own process group, so that teardown ends its wget/curl too). */
function start(box: Toolbox, args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const child = spawn(join(box.path, 'sh'), [script, ...args], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: box.path, CONFIG_SERVER: master, SERVICE: box.service, SLIPWAY_CONFIG_ENV: 'dev', SLIPWAY_TOKEN: process.env['SLIPWAY_TOKEN'] ?? '', ...env },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  // 'close': the process is gone and its stderr read to the end.
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
  return { child, done, stderr: () => stderr };
}

async function run(box: Toolbox, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { child, done } = start(box, args, env);
  const timer = setTimeout(() => kill(child), 30_000);
  const r = await done;
  clearTimeout(timer);
  return r;
}

function kill(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  const r = await fetch(`${master}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  return r;
}

async function ok(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await api(method, path, body);
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

async function release(service: string, port: number): Promise<number> {
  await ok('PATCH', `/config/v1/services/${service}/environments/dev/values`, { set: { port } });
  const r = (await ok('POST', `/config/v1/services/${service}/environments/dev/releases`)) as { release: { version: number } };
  return r.release.version;
}

/** Every file under `root` whose name is a pull's temporary (nothing may be left behind). */
function leftovers(root: string): string[] {
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).filter((f) => /\.slipway-\d+\.tmp$|\.slipway-config\.\d+\./.test(f));
}

const appYaml = (port: number) => `port: ${port}\npw: hunter2\n`;
const MOTD = 'hello from the templates\n';

/**
 * A proxy in front of the config center that misbehaves as told: `tamper` changes the bytes of
 * the file `motd` (not its listed digest), `escape` makes the text listing's first destination
 * `../escape.txt`, `dup` makes its second destination the first's file (`etc/./...`, which the
 * config center refuses in a service), `down` answers 503 to everything. It records the User-Agent of each request.
 */
class BadProxy {
  mode: 'pass' | 'tamper' | 'escape' | 'dup' | 'down' = 'pass';
  readonly agents: string[] = [];
  /** The paths (query included) of the requests, in the order they came. */
  readonly paths: string[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<BadProxy> {
    const t = new URL(target);
    const made: { proxy?: BadProxy } = {};
    const server = createServer((req, res) => {
      const proxy = made.proxy!;
      proxy.agents.push(String(req.headers['user-agent'] ?? ''));
      proxy.paths.push(req.url ?? '');
      if (proxy.mode === 'down') {
        res.writeHead(503).end('down for maintenance\n');
        return;
      }
      const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          let body = Buffer.concat(chunks);
          const path = (req.url ?? '').split('?')[0] ?? '';
          if (proxy.mode === 'tamper' && path.startsWith('/config/v1/files/') && path.endsWith('/motd')) body = Buffer.concat([body, Buffer.from('tampered\n')]);
          if (proxy.mode === 'escape' && path === '/config/v1/files' && answer.statusCode === 200) {
            const lines = body.toString().split('\n');
            lines[1] = (lines[1] ?? '').split(' ').slice(0, 3).concat('../escape.txt').join(' ');
            body = Buffer.from(lines.join('\n'));
          }
          if (proxy.mode === 'dup' && path === '/config/v1/files' && answer.statusCode === 200) {
            const lines = body.toString().split('\n');
            const first = (lines[1] ?? '').split(' ').slice(3).join(' ');
            lines[2] = (lines[2] ?? '').split(' ').slice(0, 3).concat(`${first.replace(/^\/+/, '').replace('/', '/./')}`).join(' ');
            body = Buffer.from(lines.join('\n'));
          }
          const headers = { ...answer.headers, 'content-length': String(body.length) };
          delete headers['transfer-encoding'];
          res.writeHead(answer.statusCode ?? 502, headers).end(body);
        });
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const proxy = new BadProxy(server, `http://127.0.0.1:${port}`);
    made.proxy = proxy;
    return proxy;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let proxy: BadProxy;

describe('pull.sh against `slipway up`', { timeout: 180_000 }, () => {
  before(async () => {
    const applets = busyboxApplets();
    assert.ok(applets['wget'] !== undefined && applets['curl'] === undefined, 'busybox has wget and no curl');
    const tools = (names: string[], sh: string) => ({ sh, ...Object.fromEntries(names.map((n) => [n, `/usr/bin/${n}`])) });
    TOOLBOXES.push(
      { name: 'busybox sh + busybox wget', path: toolbox('busybox', applets), service: 'web-bb', agent: /^Wget/ },
      // Exactly what the script says it needs (with curl), and cat for the tests' --exec.
      { name: 'dash + curl', path: toolbox('dash-curl', tools(['curl', 'sha256sum', 'mkdir', 'chmod', 'mv', 'rm', 'sleep', 'timeout', 'cat'], '/usr/bin/dash')), service: 'web-curl', agent: /^curl\// },
    );

    const repo = createTestRepo(join(dir, 'tpl'));
    repo.commit({ 'web/app.yaml': 'port: {{ port }}\npw: {{ pw }}\n', 'web/motd': MOTD });
    const port = await freePort();
    master = `http://127.0.0.1:${port}`;
    const up = new SlipwayProcess('up', ['up', '--port', String(port), '--data-dir', join(dir, 'data'), '--containerizers', 'process', '--resources', 'cpus:1;mem:256;ports:[36610-36619]'], join(dir, 'up.log'));
    up.start();
    processes.push(up);
    await waitForHttp(`${master}/health`);
    await ok('PUT', '/config/v1/environments/dev', {});
    for (const service of ['web-bb', 'web-curl']) {
      await ok('PUT', `/config/v1/services/${service}`, {
        repo: repo.path,
        files: [
          { name: 'app.yaml', template: 'web/app.yaml', destination: '/etc/web/app.yaml', mode: '0640' },
          // A destination with spaces: the last field of a text listing's line, taken as it is.
          { name: 'motd', template: 'web/motd', destination: 'conf/the motd.txt', mode: '0604' },
        ],
      });
      await ok('PUT', `/config/v1/services/${service}/environments/dev/values`, { port: 8080, pw: { $secret: 'hunter2' } });
      await ok('POST', `/config/v1/services/${service}/environments/dev/releases`);
    }
    // Two destinations that are one file under a directory: the config center refuses them (the
    // script is tried with them through the proxy's `dup`).
    const dup = await fetch(`${master}/config/v1/services/dup`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ repo: repo.path, files: [{ name: 'a', template: 'web/motd', destination: '/etc/dup.txt' }, { name: 'b', template: 'web/motd', destination: 'etc/./dup.txt' }] }) });
    assert.equal(dup.status, 400);
    assert.match(await dup.text(), /is the destination of another file/);
    const served = await fetch(`${master}/config/v1/pull.sh`);
    assert.equal(served.status, 200);
    script = join(dir, 'pull.sh');
    writeFileSync(script, await served.text());
    proxy = await BadProxy.start(master);
  });

  after(async () => {
    for (const c of children) kill(c);
    await proxy?.close();
    for (const p of processes.reverse()) await p.kill9();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('serves the script as text/x-shellscript, with its usage, to an authenticated caller only', async () => {
    const r = await fetch(`${master}/config/v1/pull.sh`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/x-shellscript/);
    const text = await r.text();
    assert.match(text, /^#!\/bin\/sh\n# pull\.sh: /);
    assert.match(text, /# Usage:\n/);
    assert.equal((await unauthenticatedFetch(`${master}/config/v1/pull.sh`)).status, 401);
  });

  it('answers the files and the watch in text with format=text, and 400 naming format for another', async () => {
    const json = (await ok('GET', '/config/v1/files?service=web-bb&env=dev')) as { release: number; files: { sha256: string; mode: string; url: string; destination: string }[] };
    const text = await api('GET', '/config/v1/files?service=web-bb&env=dev&format=text');
    assert.equal(text.status, 200);
    assert.match(text.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await text.text(), `release ${json.release}\n${json.files.map((f) => `${f.sha256} ${f.mode} ${f.url} ${f.destination}\n`).join('')}`);
    assert.equal(json.files[1]?.destination, 'conf/the motd.txt');
    const watch = await api('GET', `/config/v1/watch?service=web-bb&env=dev&since=0&format=text`);
    assert.equal(watch.status, 200);
    assert.equal(await watch.text(), `release ${json.release}\n`);
    assert.equal((await api('GET', `/config/v1/watch?service=web-bb&env=dev&since=${json.release}&wait=1&format=text`)).status, 304);
    for (const path of ['/config/v1/files?service=web-bb&env=dev&format=bogus', '/config/v1/watch?service=web-bb&env=dev&format=bogus']) {
      const bad = await api('GET', path);
      assert.equal(bad.status, 400, path);
      const body = (await bad.json()) as { code: string; details: { field: string; message: string }[] };
      assert.equal(body.code, 'INVALID_CONFIG');
      assert.equal(body.details[0]?.field, 'format');
      assert.match(body.details[0]?.message ?? '', /json or text/);
    }
  });

  it('refuses the text form of a release with a newline in a destination (409), which JSON still lists', async () => {
    const repo = createTestRepo(join(dir, 'tpl-nl'));
    repo.commit({ 'a.txt': 'a\n' });
    await ok('PUT', '/config/v1/services/nl', { repo: repo.path, files: [{ name: 'a', template: 'a.txt', destination: 'etc/a\nb' }] });
    await ok('POST', '/config/v1/services/nl/environments/dev/releases');
    const text = await api('GET', '/config/v1/files?service=nl&env=dev&format=text');
    assert.equal(text.status, 409);
    assert.match(((await text.json()) as { message: string }).message, /control character.*JSON/);
    assert.equal(((await ok('GET', '/config/v1/files?service=nl&env=dev')) as { files: { destination: string }[] }).files[0]?.destination, 'etc/a\nb');
  });

  for (const box of [0, 1]) {
    const name = box === 0 ? 'busybox sh + busybox wget' : 'dash + curl';
    const b = () => TOOLBOXES[box]!;
    describe(name, () => {
      const out = () => join(dir, `out-${box}`);

      it('writes the files of the current release under $SLIPWAY_CONFIG_DIR with their contents and modes, and keeps the release in its state file', async () => {
        proxy.mode = 'pass';
        proxy.agents.length = 0;
        const r = await run(b(), [], { SLIPWAY_CONFIG_DIR: out(), CONFIG_SERVER: proxy.url });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /pulled release 1 of web-\w+ in dev/);
        assert.ok(proxy.agents.length >= 3 && proxy.agents.every((a) => b().agent.test(a)), proxy.agents.join(', '));
        const app = join(out(), 'etc', 'web', 'app.yaml');
        assert.equal(readFileSync(app, 'utf8'), appYaml(8080));
        assert.equal(statSync(app).mode & 0o777, 0o640);
        const motd = join(out(), 'conf', 'the motd.txt');
        assert.equal(readFileSync(motd, 'utf8'), MOTD);
        assert.equal(statSync(motd).mode & 0o777, 0o604);
        assert.match(readFileSync(join(out(), '.slipway-config.state'), 'utf8'), new RegExp(`^release 1\nservice ${b().service}\nenv dev\n[0-9a-f]{64} 0640 /config/v1/files/`));
        assert.deepEqual(leftovers(out()), []);
        const again = await run(b(), ['--dir', out()]);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /up to date with release 1/);
      });

      it('refuses a file whose bytes do not match its listed digest, and writes none of the release', async () => {
        proxy.mode = 'tamper';
        const fresh = join(dir, `tampered-${box}`);
        const r = await run(b(), ['--dir', fresh, '--server', proxy.url]);
        proxy.mode = 'pass';
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /refused: conf\/the motd\.txt has the SHA-256 [0-9a-f]{64}, not [0-9a-f]{64} as the release lists; nothing written/);
        // app.yaml came first and matched: it is not put in place either.
        assert.ok(!existsSync(join(fresh, 'etc', 'web', 'app.yaml')));
        assert.ok(!existsSync(join(fresh, 'conf', 'the motd.txt')));
        assert.ok(!existsSync(join(fresh, '.slipway-config.state')));
        assert.deepEqual(leftovers(fresh), []);
      });

      it('refuses a destination that climbs out of the directory', async () => {
        proxy.mode = 'escape';
        const fresh = join(dir, `escape-${box}`, 'inside');
        const r = await run(b(), ['--dir', fresh, '--server', proxy.url]);
        proxy.mode = 'pass';
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /refused: the destination '\.\.\/escape\.txt' is not a file under/);
        assert.ok(!existsSync(join(dir, `escape-${box}`, 'escape.txt')));
        assert.ok(!existsSync(join(fresh, '.slipway-config.state')));
      });

      it('refuses two destinations that are one file under the directory', async () => {
        proxy.mode = 'dup';
        const fresh = join(dir, `dup-${box}`);
        const r = await run(b(), ['--dir', fresh, '--server', proxy.url]);
        proxy.mode = 'pass';
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /refused: 'etc\/\.\/web\/app\.yaml' is the file .*\/etc\/web\/app\.yaml of another destination too; nothing written/);
        assert.ok(!existsSync(join(fresh, 'etc', 'web', 'app.yaml')));
        assert.deepEqual(leftovers(fresh), []);
      });

      it('keeps the files and exits 0 when the config center cannot be reached and a release was pulled before, and exits 1 when none was', async () => {
        const dead = `http://127.0.0.1:${await freePort()}`;
        const before = readFileSync(join(out(), 'etc', 'web', 'app.yaml'), 'utf8');
        const down = await run(b(), ['--dir', out(), '--server', dead]);
        assert.equal(down.code, 0, down.stderr);
        assert.match(down.stderr, /cannot be reached: no answer from .*; release 1 stays in/);
        assert.equal(readFileSync(join(out(), 'etc', 'web', 'app.yaml'), 'utf8'), before);
        // A 503 (of a proxy, or of the center) is the center away too.
        proxy.mode = 'down';
        const unavailable = await run(b(), ['--dir', out(), '--server', proxy.url]);
        proxy.mode = 'pass';
        assert.equal(unavailable.code, 0, unavailable.stderr);
        assert.match(unavailable.stderr, /cannot be reached: HTTP 503 .*release 1 stays/);
        const none = await run(b(), ['--dir', join(dir, `never-${box}`), '--server', dead]);
        assert.equal(none.code, 1, none.stderr);
        assert.match(none.stderr, /cannot be reached: .*and no release was pulled into/);
        assert.deepEqual(leftovers(out()), []);
      });

      it('with --watch, rewrites a file and runs --exec when a new release comes, and rides out the config center going away', async () => {
        const watched = join(dir, `watched-${box}`);
        const marker = join(dir, `reloaded-${box}`);
        const app = join(watched, 'etc', 'web', 'app.yaml');
        proxy.mode = 'pass';
        proxy.paths.length = 0;
        const polls = () => proxy.paths.filter((p) => p.startsWith('/config/v1/watch?')).length;
        const { child, done, stderr } = start(b(), ['--dir', watched, '--watch', '--wait', '1', '--server', proxy.url, '--exec', `echo "release $SLIPWAY_CONFIG_RELEASE" >> '${marker}'; cat '${app}' >> '${marker}'`]);
        try {
          await waitUntil(() => existsSync(marker) && readFileSync(marker, 'utf8').includes('release 1\nport: 8080'), 'the first pull and its --exec');
          // Long polls held a second each, ended by 304: the watcher asks again.
          await waitUntil(() => polls() >= 3, 'two long polls ended by 304, and a third');
          assert.ok(proxy.paths.some((p) => p.includes('since=1&wait=1&format=text')), proxy.paths.join('\n'));
          assert.equal(readFileSync(marker, 'utf8'), `release 1\n${appYaml(8080)}`, 'no --exec without a change');
          assert.equal(await release(b().service, 9090), 2);
          await waitUntil(() => readFileSync(marker, 'utf8').includes('release 2\nport: 9090'), 'release 2 pulled and --exec run again');
          assert.equal(readFileSync(app, 'utf8'), appYaml(9090));
          assert.equal(statSync(app).mode & 0o777, 0o640);
          assert.match(readFileSync(join(watched, '.slipway-config.state'), 'utf8'), /^release 2\n/);
          // Away (503): the watcher backs off and keeps its files; back, it pulls what came meanwhile.
          proxy.mode = 'down';
          await waitUntil(() => /watch: HTTP 503 .*again in 2 s/.test(stderr()), 'two failed watches, backing off');
          assert.equal(readFileSync(app, 'utf8'), appYaml(9090));
          assert.equal(await release(b().service, 7070), 3);
          proxy.mode = 'pass';
          await waitUntil(() => readFileSync(marker, 'utf8').includes('release 3\nport: 7070'), 'release 3 pulled once the center is back', 20_000);
          assert.equal(readFileSync(app, 'utf8'), appYaml(7070));
          assert.equal(child.exitCode, null, 'the watcher is still watching');
          assert.deepEqual(leftovers(watched).filter((f) => !f.startsWith('.slipway-config.')), []);
        } finally {
          kill(child);
          await done;
        }
      });
    });
  }

  it('prefers curl when both curl and wget are there', async () => {
    const both = { ...TOOLBOXES[0]!, name: 'busybox + curl', path: toolbox('busybox-curl', { ...busyboxApplets(), curl: '/usr/bin/curl' }) };
    proxy.mode = 'pass';
    proxy.agents.length = 0;
    const r = await run(both, ['--dir', join(dir, 'both'), '--server', proxy.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(proxy.agents.length > 0 && proxy.agents.every((a) => /^curl\//.test(a)), proxy.agents.join(', '));
  });
});

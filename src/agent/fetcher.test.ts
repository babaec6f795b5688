import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FetchFailed, fetchUris, maskCredentials, type CommandUri } from './fetcher.ts';

/**
 * The fetcher against a real HTTP server on 127.0.0.1 and real archives made with tar, gzip,
 * bzip2, xz and zip in a temp dir.
 */

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

class FileServer {
  readonly routes = new Map<string, Handler>();
  readonly requests: IncomingMessage[] = [];
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('request', (req, res) => {
      this.requests.push(req);
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const handler = this.routes.get(path);
      if (handler === undefined) {
        res.writeHead(404).end('no such file');
        return;
      }
      handler(req, res);
    });
  }

  static async start(): Promise<FileServer> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return new FileServer(server);
  }

  get base(): string {
    const a = this.server.address();
    return `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`;
  }

  file(path: string, body: Buffer | string): void {
    this.routes.set(path, (_req, res) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

describe('the fetcher', () => {
  let root: string;
  let server: FileServer;
  /** Archives by file name, all holding `tool/run.sh` (mode 0755) and `data.txt`. */
  const archives = new Map<string, Buffer>();
  let n = 0;
  const sandbox = () => {
    const dir = join(root, `sandbox-${++n}`);
    mkdirSync(dir);
    return dir;
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fetcher-'));
    server = await FileServer.start();
    const content = join(root, 'content');
    mkdirSync(join(content, 'tool'), { recursive: true });
    writeFileSync(join(content, 'tool', 'run.sh'), '#!/bin/sh\necho tool ran\n');
    chmodSync(join(content, 'tool', 'run.sh'), 0o755);
    writeFileSync(join(content, 'data.txt'), 'archived data\n');
    const made = join(root, 'made');
    mkdirSync(made);
    const tarFlags: Record<string, string> = { '.tar': '-cf', '.tar.gz': '-czf', '.tgz': '-czf', '.tar.bz2': '-cjf', '.tbz2': '-cjf', '.tar.xz': '-cJf', '.txz': '-cJf' };
    for (const [ext, flag] of Object.entries(tarFlags)) {
      execFileSync('tar', [flag, join(made, `bundle${ext}`), '-C', content, 'tool', 'data.txt']);
      archives.set(`bundle${ext}`, readFileSync(join(made, `bundle${ext}`)));
    }
    execFileSync('zip', ['-q', '-r', join(made, 'bundle.zip'), 'tool', 'data.txt'], { cwd: content });
    archives.set('bundle.zip', readFileSync(join(made, 'bundle.zip')));
    archives.set('notes.txt.gz', execFileSync('gzip', ['-c', join(content, 'data.txt')]));
    for (const [name, body] of archives) server.file(`/a/${name}`, body);
    server.file('/hello.txt', 'hello\n');
  });
  after(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function failure(uris: CommandUri[], dir: string, options: { stallTimeoutMs?: number; toolPath?: string; signal?: AbortSignal } = {}): Promise<FetchFailed> {
    try {
      await fetchUris(uris, { sandbox: dir, ...options });
    } catch (e) {
      assert.ok(e instanceof FetchFailed, String(e));
      return e;
    }
    assert.fail('the fetch succeeded');
  }

  it('downloads a file into the sandbox under the last segment of the URI path, query ignored, or under output_file', async () => {
    const dir = sandbox();
    const fetched = await fetchUris(
      [{ value: `${server.base}/hello.txt?version=3&x=/y` }, { value: `${server.base}/hello.txt`, output_file: 'conf/deep/renamed.txt' }, { value: `${server.base}/hello.txt`, output_file: './conf/../again.txt' }],
      { sandbox: dir },
    );
    assert.equal(readFileSync(join(dir, 'hello.txt'), 'utf8'), 'hello\n');
    assert.equal(readFileSync(join(dir, 'conf', 'deep', 'renamed.txt'), 'utf8'), 'hello\n');
    assert.equal(readFileSync(join(dir, 'again.txt'), 'utf8'), 'hello\n');
    assert.deepEqual(fetched.map((f) => f.extracted), [false, false, false]);
    assert.equal(statSync(join(dir, 'hello.txt')).mode & 0o111, 0, 'not executable unless asked for');
  });

  for (const name of ['bundle.tar', 'bundle.tar.gz', 'bundle.tgz', 'bundle.tar.bz2', 'bundle.tbz2', 'bundle.tar.xz', 'bundle.txz', 'bundle.zip']) {
    it(`extracts ${name} into the sandbox and keeps the archive`, async () => {
      const dir = sandbox();
      const [fetched] = await fetchUris([{ value: `${server.base}/a/${name}` }], { sandbox: dir });
      assert.equal(fetched!.extracted, true);
      assert.equal(readFileSync(join(dir, 'data.txt'), 'utf8'), 'archived data\n');
      assert.equal(execFileSync(join(dir, 'tool', 'run.sh'), { encoding: 'utf8' }), 'tool ran\n', 'the mode of the archived file is kept');
      assert.ok(existsSync(join(dir, name)));
    });
  }

  it('gunzips a .gz that is not a tarball into the name without .gz', async () => {
    const dir = sandbox();
    await fetchUris([{ value: `${server.base}/a/notes.txt.gz` }], { sandbox: dir });
    assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'archived data\n');
    assert.ok(existsSync(join(dir, 'notes.txt.gz')));
  });

  it('extracts by the extension of output_file, into the sandbox itself', async () => {
    const dir = sandbox();
    await fetchUris([{ value: `${server.base}/a/bundle.tgz`, output_file: 'dl/pkg.tar.gz' }], { sandbox: dir });
    assert.ok(existsSync(join(dir, 'dl', 'pkg.tar.gz')));
    assert.equal(readFileSync(join(dir, 'data.txt'), 'utf8'), 'archived data\n');
  });

  it('leaves an archive as it is with extract: false, and makes a file executable (never extracted) with executable: true', async () => {
    const dir = sandbox();
    server.file('/run.tar.gz', '#!/bin/sh\necho i am a script\n');
    await fetchUris([{ value: `${server.base}/a/bundle.tar.gz`, extract: false }, { value: `${server.base}/run.tar.gz`, executable: true, extract: true }], { sandbox: dir });
    assert.deepEqual(readdirSync(dir).sort(), ['bundle.tar.gz', 'run.tar.gz']);
    assert.equal(statSync(join(dir, 'run.tar.gz')).mode & 0o777, 0o755);
    assert.equal(execFileSync(join(dir, 'run.tar.gz'), { encoding: 'utf8' }), 'i am a script\n');
  });

  it('copies file:// URIs and absolute paths of this host', async () => {
    const dir = sandbox();
    const local = join(root, 'local files');
    mkdirSync(local, { recursive: true });
    writeFileSync(join(local, 'a b.txt'), 'from a file URI\n');
    writeFileSync(join(local, 'plain.txt'), 'from a path\n');
    writeFileSync(join(local, 'bundle.tgz'), archives.get('bundle.tgz')!);
    await fetchUris([{ value: pathToFileURL(join(local, 'a b.txt')).href }, { value: join(local, 'plain.txt') }, { value: `  ${join(local, 'bundle.tgz')}` }], { sandbox: dir });
    assert.equal(readFileSync(join(dir, 'a b.txt'), 'utf8'), 'from a file URI\n');
    assert.equal(readFileSync(join(dir, 'plain.txt'), 'utf8'), 'from a path\n');
    assert.equal(readFileSync(join(dir, 'data.txt'), 'utf8'), 'archived data\n');
  });

  it('masks the proofs in a URI it reports: user info, and signature or token query parameters', () => {
    assert.equal(maskCredentials('https://u:p@h/x'), 'https://***@h/x');
    assert.equal(maskCredentials('http://h/config/v1/fetch/a/b/1/f?expires=9&sig=abcdef'), 'http://h/config/v1/fetch/a/b/1/f?expires=9&sig=***');
    assert.equal(maskCredentials('http://h/x?token=t&q=1'), 'http://h/x?token=***&q=1');
    assert.equal(maskCredentials('http://h/x?q=1'), 'http://h/x?q=1');
  });

  it('checks a file against its sha256 (a mismatch fails and leaves no file) and sets its mode', async () => {
    const dir = sandbox();
    const local = join(root, 'digest');
    mkdirSync(local, { recursive: true });
    writeFileSync(join(local, 'app.yaml'), 'port: 80\n');
    const good = createHash('sha256').update('port: 80\n').digest('hex');
    await fetchUris([{ value: join(local, 'app.yaml'), output_file: 'etc/app/app.yaml', sha256: good, mode: '0600' }], { sandbox: dir });
    assert.equal(readFileSync(join(dir, 'etc/app/app.yaml'), 'utf8'), 'port: 80\n');
    assert.equal(statSync(join(dir, 'etc/app/app.yaml')).mode & 0o777, 0o600);
    const bad = await failure([{ value: join(local, 'app.yaml'), output_file: 'other.yaml', sha256: '0'.repeat(64) }], dir);
    assert.match(bad.message, new RegExp(`its SHA-256 is ${good}, not 0{64}`));
    assert.ok(!existsSync(join(dir, 'other.yaml')), 'the file that does not match is gone');
  });

  it('fails on a non-2xx answer, naming the URI and the status, and leaves no file', async () => {
    const dir = sandbox();
    server.routes.set('/forbidden.txt', (_req, res) => res.writeHead(403).end('go away'));
    const notFound = await failure([{ value: `${server.base}/hello.txt` }, { value: `${server.base}/missing.tar.gz` }, { value: `${server.base}/hello.txt`, output_file: 'never.txt' }], dir);
    assert.equal(notFound.message, `Failed to fetch '${server.base}/missing.tar.gz': HTTP 404 Not Found`);
    assert.equal(notFound.uri, `${server.base}/missing.tar.gz`);
    assert.deepEqual(readdirSync(dir), ['hello.txt'], 'URIs are fetched in order and the first failure stops');
    const forbidden = await failure([{ value: `${server.base}/forbidden.txt` }], dir);
    assert.match(forbidden.message, /HTTP 403 Forbidden$/);
    assert.ok(!existsSync(join(dir, 'forbidden.txt')));
  });

  it('follows redirects', async () => {
    const dir = sandbox();
    server.routes.set('/moved.txt', (_req, res) => res.writeHead(302, { location: '/hello.txt' }).end());
    await fetchUris([{ value: `${server.base}/moved.txt` }], { sandbox: dir });
    assert.equal(readFileSync(join(dir, 'moved.txt'), 'utf8'), 'hello\n');
  });

  it('refuses URIs it cannot fetch and names that cannot stay in the sandbox', async () => {
    const dir = sandbox();
    const cases: [CommandUri, RegExp][] = [
      [{ value: 'ftp://example.com/x.tar' }, /the URI scheme ftp:\/\/ is not supported/],
      [{ value: 'hdfs://namenode/x.jar' }, /the URI scheme hdfs:\/\/ is not supported/],
      [{ value: 'relative/file.txt' }, /relative paths are not supported/],
      [{ value: '' }, /the URI is empty/],
      [{ value: `${server.base}/` }, /names no file \(set output_file\)/],
      [{ value: `${server.base}/hello.txt`, output_file: '../escape.txt' }, /is not a file inside the sandbox/],
      [{ value: `${server.base}/hello.txt`, output_file: 'a/../../escape.txt' }, /is not a file inside the sandbox/],
      [{ value: `${server.base}/hello.txt`, output_file: '.' }, /is not a file inside the sandbox/],
      [{ value: `${server.base}/hello.txt`, output_file: '/tmp/escape.txt' }, /must be relative to the sandbox/],
      [{ value: '/' }, /names no file/],
      [{ value: 'file://otherhost/etc/hostname' }, /not a file on this host/],
      [{ value: join(root, 'no-such-file') }, /cannot read .*no-such-file: ENOENT/],
      [{ value: root }, /is not a regular file/],
    ];
    for (const [uri, expected] of cases) {
      const e = await failure([uri], dir);
      assert.match(e.message, expected, JSON.stringify(uri));
      assert.ok(e.message.startsWith(`Failed to fetch '${uri.value}': `), e.message);
    }
    assert.ok(!existsSync(join(root, 'escape.txt')));
    assert.deepEqual(readdirSync(dir), []);
  });

  it('never writes through a symbolic link a task left in its sandbox', async () => {
    const dir = sandbox();
    const outside = join(root, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'victim.txt'), 'untouched\n');
    symlinkSync(outside, join(dir, 'out'));
    symlinkSync(join(outside, 'victim.txt'), join(dir, 'hello.txt'));
    mkdirSync(join(dir, 'real'));
    symlinkSync('real', join(dir, 'in'));
    const e = await failure([{ value: `${server.base}/hello.txt`, output_file: 'out/victim.txt' }], dir);
    assert.match(e.message, /goes through a link out of the sandbox/);
    const e2 = await failure([{ value: `${server.base}/hello.txt`, output_file: 'out/new/file.txt' }], dir);
    assert.match(e2.message, /goes through a link out of the sandbox/);
    assert.deepEqual(readdirSync(outside), ['victim.txt'], 'no directory made outside');
    // A link at the target is replaced, not followed; a link to a directory inside is fine.
    await fetchUris([{ value: `${server.base}/hello.txt` }, { value: `${server.base}/hello.txt`, output_file: 'in/x.txt' }], { sandbox: dir });
    assert.equal(readFileSync(join(outside, 'victim.txt'), 'utf8'), 'untouched\n');
    assert.ok(lstatSync(join(dir, 'hello.txt')).isFile());
    assert.equal(readFileSync(join(dir, 'real', 'x.txt'), 'utf8'), 'hello\n');
  });

  it('fails clearly when the archive is corrupt or its tool is missing', async () => {
    const dir = sandbox();
    server.file('/broken.tar.gz', 'this is not gzip');
    server.file('/broken.gz', 'neither is this');
    const tar = await failure([{ value: `${server.base}/broken.tar.gz` }], dir);
    assert.match(tar.message, /cannot extract broken\.tar\.gz: tar exited with status \d+: .+/);
    const gz = await failure([{ value: `${server.base}/broken.gz` }], dir);
    assert.match(gz.message, /cannot gunzip broken\.gz: /);
    assert.ok(!existsSync(join(dir, 'broken')), 'no half-decompressed file');
    const empty = join(root, 'empty-path');
    mkdirSync(empty, { recursive: true });
    const zip = await failure([{ value: `${server.base}/a/bundle.zip` }], dir, { toolPath: empty });
    assert.match(zip.message, /unzip is not installed on this agent \(it is needed to extract bundle\.zip\)$/);
    const tgz = await failure([{ value: `${server.base}/a/bundle.tgz` }], dir, { toolPath: empty });
    assert.match(tgz.message, /tar is not installed on this agent/);
  });

  it('gives up on a download that stalls, and stops at once when aborted', async () => {
    const dir = sandbox();
    server.routes.set('/stall.bin', (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('only the start');
    });
    server.routes.set('/silent.bin', () => undefined); // Never answers.
    const started = Date.now();
    const stalled = await failure([{ value: `${server.base}/stall.bin` }], dir, { stallTimeoutMs: 300 });
    assert.match(stalled.message, /no data received for 300 ms$/);
    const silent = await failure([{ value: `${server.base}/silent.bin` }], dir, { stallTimeoutMs: 300 });
    assert.match(silent.message, /no data received for 300 ms$/);
    assert.ok(Date.now() - started < 5000);
    assert.ok(!existsSync(join(dir, 'stall.bin')), 'no partial file');
    const abort = new AbortController();
    const pending = failure([{ value: `${server.base}/silent.bin` }], dir, { signal: abort.signal });
    const seen = server.requests.length;
    const deadline = Date.now() + 5000;
    while (server.requests.length === seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    abort.abort();
    assert.match((await pending).message, /the fetch was cancelled$/);
  });

  it('sends credentials in the URI as basic auth and never shows them', async () => {
    const dir = sandbox();
    server.routes.set('/private.txt', (req, res) => {
      if (req.headers.authorization === `Basic ${Buffer.from('ci:s3cret/x').toString('base64')}`) res.writeHead(200).end('private\n');
      else res.writeHead(401).end();
    });
    const withAuth = (password: string) => `${server.base.replace('http://', `http://ci:${password}@`)}/private.txt`;
    const [ok] = await fetchUris([{ value: withAuth('s3cret%2Fx') }], { sandbox: dir });
    assert.equal(readFileSync(join(dir, 'private.txt'), 'utf8'), 'private\n');
    assert.doesNotMatch(ok!.uri, /s3cret|ci:/);
    const refused = await failure([{ value: withAuth('wrong') }], dir);
    assert.match(refused.message, /HTTP 401/);
    assert.doesNotMatch(refused.message, /wrong|ci:/);
    assert.match(refused.message, /\*\*\*@127\.0\.0\.1/);
  });
});

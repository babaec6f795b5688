import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createWriteStream, existsSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createTestRepo } from './support/git-repo.ts';
import { freePort, SlipwayProcess, tempDir, waitForHttp } from './support/processes.ts';
import { killProcessesUnder } from './support/sandbox-processes.ts';
import { waitUntil } from './support/wait.ts';

// Issue 13, "Bad input and faults":
// - a kill -9 of `slipway up` while a rollout runs; the rollout is not lost: once up is back it
//   goes on from where the instances are and ends with a status;
// - kill -9s of `slipway up` (its whole process group, the git it runs included) at spread
//   moments of releases in flight: a release is all or nothing, and the audit repository has a
//   commit for every stored release.

const dir = tempDir('config-faults');
const dataDir = join(dir, 'data');
let base = '';
let port = 0;
const processes: SlipwayProcess[] = [];

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

/** The processes of process group `pgid` (zombies aside: init reaps them when it will). */
function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] !== 'Z' && Number(rest[2]) === pgid) pids.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/**
 * `slipway up` leading a process group of its own, killed as a whole: up and the git it runs at
 * that moment (the audit commit, the templates' fetch) die together, as in a crash of the
 * machine; a kill of up alone would let an orphaned `git commit` finish after it.
 */
class GroupedSlipwayProcess extends SlipwayProcess {
  override start(): void {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.child = spawn(process.execPath, [BIN, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env, detached: true });
    this.child.stdout!.pipe(log);
    this.child.stderr!.pipe(log);
  }

  /** kill -9 of the whole group; resolves when up has exited and nothing of its group runs. */
  override async kill9(): Promise<void> {
    const child = this.child;
    const pgid = child?.pid;
    if (child === undefined || pgid === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(-pgid, 'SIGKILL');
      await exited;
    } else if (groupMembers(pgid).length > 0) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
    await waitUntil(() => groupMembers(pgid).length === 0, `the process group ${pgid} of ${this.name} to be gone`, 10_000);
  }
}

/** `slipway up` number `n` on a data dir and port (by default this file's first suite's), logging to `<dir>/up-<n>.log`. */
function startUp(n: number, at: { dir: string; dataDir: string; port: number; processes: SlipwayProcess[]; grouped?: boolean } = { dir, dataDir, port, processes }): SlipwayProcess {
  const args = ['up', '--port', String(at.port), '--data-dir', at.dataDir, '--containerizers', 'process', '--resources', 'cpus:2;mem:512;ports:[36700-36719]'];
  const up = at.grouped === true ? new GroupedSlipwayProcess(`up-${n}`, args, join(at.dir, `up-${n}.log`)) : new SlipwayProcess(`up-${n}`, args, join(at.dir, `up-${n}.log`));
  up.start();
  at.processes.push(up);
  return up;
}

async function api(method: string, path: string, body?: unknown, at = base): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const r = await fetch(`${at}${path}`, { method, ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  return { status: r.status, text, json: text !== '' && text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe('the config center across a kill -9 of `slipway up` during a rollout', { timeout: 180_000 }, () => {
  before(async () => {
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    startUp(1);
    await waitForHttp(`${base}/health`);
  });

  after(async () => {
    await fetch(`${base}/v2/apps/dev/svc?force=true`, { method: 'DELETE' }).catch(() => undefined);
    for (const p of processes.reverse()) await p.kill9();
    killProcessesUnder(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('resumes the rollout after the restart and ends it with a status', async () => {
    const repo = createTestRepo(join(dir, 'tpl'));
    repo.commit({ 'svc/conf.txt': 'mode: {{ mode }}\nrev: {{ rev }}\n' });
    assert.equal((await api('PUT', '/config/v1/environments/dev', {})).status, 201);
    assert.equal((await api('PUT', '/config/v1/services/svc', { repo: repo.path, files: [{ name: 'conf.txt', template: 'svc/conf.txt', destination: '/etc/svc/conf.txt' }], apps: { dev: '/dev/svc' } })).status, 201);
    assert.equal((await api('PUT', '/config/v1/services/svc/environments/dev/values', { mode: 'good', rev: 1 })).status, 200);
    assert.equal((await api('POST', '/config/v1/services/svc/environments/dev/releases')).status, 201);
    const created = await api('POST', '/v2/apps', {
      id: '/dev/svc',
      cmd: 'if grep -q "mode: good" "$SLIPWAY_CONFIG_DIR/etc/svc/conf.txt"; then exec python3 -m http.server $PORT0; else exec sleep 300; fi',
      cpus: 0.1,
      mem: 64,
      labels: { SLIPWAY_CONFIG_SERVICE: 'svc', SLIPWAY_CONFIG_ENV: 'dev' },
      healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 3, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 }],
    });
    assert.equal(created.status, 201, created.text);
    const healthyOn = (v: number) => async () => {
      const r = await api('GET', '/config/v1/services/svc/environments/dev/instances').catch(() => undefined);
      const list = (r?.json['instances'] ?? []) as { release?: number; healthy?: boolean }[];
      return list.length > 0 && list.every((i) => i.release === v && i.healthy === true);
    };
    await waitUntil(healthyOn(1), 'the app healthy on release 1', 60_000);

    assert.equal((await api('PATCH', '/config/v1/services/svc/environments/dev/values', { set: { rev: 2 } })).status, 200);
    const release = await api('POST', '/config/v1/services/svc/environments/dev/releases', { deadlineSeconds: 120 });
    assert.equal(release.status, 201, release.text);
    assert.equal(((release.json['release'] as { rollout: { state: string } }).rollout).state, 'running');
    await processes[0]!.kill9();

    startUp(2);
    await waitForHttp(`${base}/health`);
    const ended = await waitUntil(async () => {
      const r = await api('GET', '/config/v1/services/svc/environments/dev/rollouts/svc.dev.2').catch(() => undefined);
      const state = r?.json['state'];
      return state === 'succeeded' || state === 'failed' ? r!.json : undefined;
    }, 'the rollout to end after the restart', 120_000);
    assert.equal(ended['state'], 'succeeded', JSON.stringify(ended));
    await waitUntil(healthyOn(2), 'the app healthy on release 2', 30_000);
    // It was the restarted up that saw it through, not the first before its kill.
    assert.ok(!readFileSync(join(dir, 'up-1.log'), 'utf8').includes('rollout svc.dev.2 of /dev/svc: succeeded'), 'not ended before the kill');
    assert.match(readFileSync(join(dir, 'up-2.log'), 'utf8'), /rollout svc\.dev\.2 of \/dev\/svc: succeeded/);
  });
});

// --- kill -9 during releases ---------------------------------------------------------------------

const SERVICE = 'svc';
const ENV = 'dev';
/** A service's most files (config-definitions' MAX_FILES). */
const FILE_COUNT = 100;
/** The files of ~450 KB each (the others ~4 KB): about 3.7 MB a release, so that one takes a while. */
const LARGE = new Set([0, 13, 27, 41, 55, 69, 83, 97]);
/**
 * When each round's kill comes: at fractions of a release's measured duration after its POST is
 * sent (a deterministic spread, 0 being at once), then at the moments of the audit commit that
 * a spread in time hits by chance only, seen in the audit repository: its work tree being
 * rewritten, git holding its index lock (add, commit), the commit made (HEAD moved).
 */
type KillTrigger = { label: string; fraction: number } | { label: string; when: 'copy-rewritten' | 'index-locked' | 'committed' };
const KILL_AT: KillTrigger[] = [
  ...[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1, 1.1].map((fraction) => ({ label: `${Math.round(fraction * 100)}% of a release`, fraction })),
  { label: 'the audit copy being rewritten', when: 'copy-rewritten' },
  { label: 'git holding the audit index lock', when: 'index-locked' },
  { label: 'the audit commit made', when: 'committed' },
];

/** What the audit repository shows now: HEAD's commit, whether git holds its index lock, the first lines of its copies of the first and last files. */
interface AuditState {
  head: string;
  locked: boolean;
  first: string;
  last: string;
}

interface ListedRelease {
  version: number;
  valuesVersion: number;
  auditCommit?: string;
  files: { name: string; destination: string; mode: string; sha256: string }[];
}

function fileName(i: number): string {
  const n = String(i).padStart(3, '0');
  return i % 10 === 3 ? `f${n}.yaml` : i % 10 === 7 ? `f${n}.properties` : `f${n}.txt`;
}

/** The template of file `i`: a first and a last line naming the value `rev`, filler between (in the file's syntax). */
function templateOf(i: number): string {
  const name = fileName(i);
  const lines = [`# ${name} rev={{ rev }}`];
  const n = LARGE.has(i) ? 5000 : 45;
  for (let k = 0; k < n; k++) {
    const filler = `file ${i} line ${k} the quick brown fox jumps over the lazy dog 0123456789`;
    lines.push(name.endsWith('.yaml') ? `k${k}: "${filler}"` : name.endsWith('.properties') ? `k${k}=${filler}` : `${k} ${filler}`);
  }
  lines.push(`# end of ${name} rev={{ rev }}`);
  return lines.join('\n') + '\n';
}

const sha256Of = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The id git gives a blob of these bytes. */
const gitBlobOf = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** The first line of a file (up to 80 bytes), '' when there is none (yet). */
function firstLine(path: string): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(80);
      return b.toString('utf8', 0, readSync(fd, b, 0, 80, 0)).split('\n')[0]!;
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function auditState(repo: string): AuditState {
  let head = '';
  try {
    head = readFileSync(join(repo, '.git', 'refs', 'heads', 'main'), 'utf8').trim();
  } catch {
    // No commit yet.
  }
  const copy = join(repo, ENV, SERVICE);
  return { head, locked: existsSync(join(repo, '.git', 'index.lock')), first: firstLine(join(copy, fileName(0))), last: firstLine(join(copy, fileName(FILE_COUNT - 1))) };
}

/** `p`, or a failure naming `what` after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('the config center across kill -9s of `slipway up` during releases (a release is all or nothing)', { timeout: 600_000 }, () => {
  const kdir = tempDir('config-release-kill');
  const at = { dir: kdir, dataDir: join(kdir, 'data'), port: 0, processes: [] as SlipwayProcess[], grouped: true };
  // Where up keeps the audit copy (config-server: `<config dir>/releases`, the config dir `<data>/config`).
  const auditRepo = join(at.dataDir, 'config', 'releases');
  const releasesPath = `/config/v1/services/${SERVICE}/environments/${ENV}/releases`;
  let url = '';
  let ups = 0;
  const call = (method: string, path: string, body?: unknown) => api(method, path, body, url);

  async function startAndWait(): Promise<SlipwayProcess> {
    const up = startUp(++ups, at);
    await waitForHttp(`${url}/health`, 60_000);
    return up;
  }

  before(async () => {
    at.port = await freePort();
    url = `http://127.0.0.1:${at.port}`;
    await startAndWait();
  });

  let failed = false;
  after(async () => {
    for (const p of [...at.processes].reverse()) await p.kill9();
    killProcessesUnder(kdir);
    // SLIPWAY_KEEP_TEST_DIRS=1 keeps them after a run that passed too.
    if (failed || process.env['SLIPWAY_KEEP_TEST_DIRS'] !== undefined) process.stderr.write(`config-faults e2e: up's logs and data dir kept in ${kdir}\n`);
    else rmSync(kdir, { recursive: true, force: true, maxRetries: 3 });
  });

  /** The lock files of git's in the audit repository (`index.lock`, `HEAD.lock`, `refs/heads/main.lock`...): a git killed holding them leaves them. */
  const gitLocks = () => (existsSync(join(auditRepo, '.git')) ? readdirSync(join(auditRepo, '.git'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.lock')).sort() : []);

  /** The config center's lines of the log of the up running now, the last `n`. */
  const configLog = (n = 12) => {
    const up = at.processes[at.processes.length - 1];
    const lines = up === undefined ? [] : readFileSync(up.logFile, 'utf8').split('\n').filter((l) => l.includes('config:'));
    return `${up?.name ?? 'no up'}'s log:\n${lines.slice(-n).join('\n')}`;
  };

  it('keeps every release whole, numbered 1..n, each with its audit commit, through kills at spread moments', async (t) => {
    try {
      await killRounds(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  });

  async function killRounds(t: TestContext): Promise<void> {
    const names = Array.from({ length: FILE_COUNT }, (_, i) => fileName(i));
    const repo = createTestRepo(join(kdir, 'tpl'));
    repo.commit(Object.fromEntries(names.map((name, i) => [`svc/${name}`, templateOf(i)])));
    assert.equal((await call('PUT', `/config/v1/environments/${ENV}`, {})).status, 201);
    const put = await call('PUT', `/config/v1/services/${SERVICE}`, { repo: repo.path, files: names.map((name) => ({ name, template: `svc/${name}`, destination: `/etc/svc/${name}` })) });
    assert.equal(put.status, 201, put.text);

    /** The value `rev` of every values version: what each release's files must all say. */
    const revOf = new Map<number, number>();
    let lastRev = 0;
    const newRev = async () => {
      const rev = ++lastRev;
      const r = await call('PATCH', `/config/v1/services/${SERVICE}/environments/${ENV}/values`, { set: { rev } });
      assert.equal(r.status, 200, r.text);
      revOf.set(r.json['version'] as number, rev);
      return rev;
    };

    const listed = async (): Promise<ListedRelease[]> => {
      const r = await call('GET', releasesPath);
      assert.equal(r.status, 200, r.text);
      return r.json['releases'] as ListedRelease[];
    };

    /** The audit repository's commits, newest first, each with the version its message claims (store()'s `svc dev release N (...)`). */
    const auditLog = (): { commit: string; version: number }[] => {
      if (!existsSync(join(auditRepo, '.git'))) return [];
      const out = execFileSync('git', ['-C', auditRepo, 'log', '--format=%H %s'], { env: { ...process.env, LC_ALL: 'C' } }).toString().trim();
      return out === ''
        ? []
        : out.split('\n').map((line) => {
            const m = /^([0-9a-f]{40}) svc dev release (\d+) \((?:first|values-changed|template-changed|rollback(?: to \d+)?)\)$/.exec(line);
            assert.ok(m !== null, `an audit commit whose message is not a release's: ${line}`);
            return { commit: m[1]!, version: Number(m[2]) };
          });
    };
    const newestClaim = (log: { commit: string; version: number }[], version: number) => log.find((c) => c.version === version)?.commit;

    /** Every file of `r` through the API: its bytes' sha256 is the listed one, and all say the release's `rev`. Answers each file's git blob id. */
    const fetchWhole = async (r: ListedRelease): Promise<Map<string, string>> => {
      const rev = revOf.get(r.valuesVersion);
      assert.ok(rev !== undefined, `release ${r.version} was made with values version ${r.valuesVersion}, which this test never wrote`);
      const blobs = new Map<string, string>();
      await Promise.all(
        r.files.map(async (f) => {
          const res = await fetch(`${url}/config/v1/files/${SERVICE}/${ENV}/${r.version}/${encodeURIComponent(f.name)}`);
          const bytes = Buffer.from(await res.arrayBuffer());
          assert.equal(res.status, 200, `release ${r.version}, file ${f.name}: ${bytes.toString('utf8', 0, 300)}`);
          assert.equal(sha256Of(bytes), f.sha256, `release ${r.version}, file ${f.name}: its bytes are not the listed sha256`);
          const text = bytes.toString('utf8');
          assert.ok(text.startsWith(`# ${f.name} rev=${rev}\n`) && text.endsWith(`# end of ${f.name} rev=${rev}\n`), `release ${r.version}, file ${f.name}: not rendered with rev ${rev} (values version ${r.valuesVersion}) throughout`);
          blobs.set(`${ENV}/${SERVICE}/${f.name}`, gitBlobOf(bytes));
        }),
      );
      return blobs;
    };

    /** What each release looked like when first checked (its audit commit aside, which may be recorded after): once listed, it never changes. */
    const seen = new Map<number, string>();
    const auditCommitOf = new Map<number, string>();
    /**
     * The releases now: whole (every file, every byte), versions 1..n; and in the audit
     * repository, once a recovery at start has had its time, the contract of the class comment:
     * a release is stored first, its audit commit follows (made at the next start when a crash
     * left it unmade). So for every stored release a commit claiming it, the newest of which
     * holds its files and is the one recorded on it (an older one claiming it too is a commit a
     * crash left unrecorded); and no commit claiming a version that is not stored. Answers the
     * releases and the versions with more than one commit.
     */
    const check = async (o: { full?: boolean } = {}): Promise<{ releases: ListedRelease[]; twice: number[] }> => {
      const uncovered = (rs: ListedRelease[], log: { version: number }[]) => rs.filter((r) => !log.some((c) => c.version === r.version)).map((r) => r.version);
      let releases = await listed();
      await waitUntil(
        async () => {
          releases = await listed();
          return uncovered(releases, auditLog()).length === 0;
        },
        'an audit commit for every stored release',
        30_000,
      ).catch(() => undefined);
      const log = auditLog();
      const shownLog = `git log of ${auditRepo}:\n${log.map((c) => `${c.commit.slice(0, 12)} release ${c.version}`).join('\n')}\ngit's lock files there: [${gitLocks().join(', ')}]\n${configLog()}`;
      assert.deepEqual(
        releases.map((r) => r.version),
        releases.map((_, i) => i + 1),
        'versions are 1..n',
      );
      for (const r of releases) {
        assert.equal(r.files.length, FILE_COUNT, `release ${r.version} has ${r.files.length} files, the service ${FILE_COUNT}`);
        assert.deepEqual(r.files.map((f) => f.name).sort(), [...names].sort(), `release ${r.version}: the service's files`);
      }
      assert.deepEqual(uncovered(releases, log), [], `stored releases without an audit commit (${shownLog})`);
      const n = releases.length;
      assert.deepEqual([...new Set(log.filter((c) => c.version > n).map((c) => c.version))], [], `audit commits claim versions that are not stored (${n} are) (${shownLog})`);
      for (const r of releases) {
        const newest = newestClaim(log, r.version)!;
        if (r.auditCommit !== undefined) {
          assert.equal(newest, r.auditCommit, `release ${r.version}: its auditCommit is not the newest commit claiming version ${r.version} (${shownLog})`);
          const recorded = auditCommitOf.get(r.version);
          assert.ok(recorded === undefined || recorded === r.auditCommit, `release ${r.version}: its auditCommit was ${recorded}, is now ${r.auditCommit}`);
          auditCommitOf.set(r.version, r.auditCommit);
        }
        const shown = JSON.stringify({ ...r, auditCommit: undefined });
        const before = seen.get(r.version);
        if (before !== undefined) assert.equal(shown, before, `release ${r.version} changed since it was first listed`);
        if (before !== undefined && o.full !== true) continue;
        const blobs = await fetchWhole(r);
        const tree = execFileSync('git', ['-C', auditRepo, 'ls-tree', '-r', newest, '--', `${ENV}/${SERVICE}`]).toString().trim().split('\n');
        const inTree = new Map(tree.filter((l) => l !== '').map((l) => [l.slice(l.indexOf('\t') + 1), l.split(/\s+/)[2]!] as const));
        assert.deepEqual(inTree, blobs, `release ${r.version}: the audit commit ${newest.slice(0, 12)} does not hold its files`);
        seen.set(r.version, shown);
      }
      return { releases, twice: releases.filter((r) => log.filter((c) => c.version === r.version).length > 1).map((r) => r.version) };
    };

    /**
     * POSTs a release and watches the audit repository until it is answered (or `stop` says so,
     * then answers at once); answers how it went and when (ms after the POST was sent) the audit
     * copy was first seen rewritten, written whole, git's index lock held, and the commit made.
     */
    const releaseWatched = async (note: string, rev: number, stop?: (s: AuditState, before: AuditState, elapsedMs: number) => boolean) => {
      const before = auditState(auditRepo);
      let answer: Awaited<ReturnType<typeof api>> | undefined;
      let failure: unknown;
      const sentAt = performance.now();
      const post = call('POST', releasesPath, { note }).then(
        (r) => void (answer = r),
        (e: unknown) => void (failure = e),
      );
      const seen: Partial<Record<'rewritten' | 'written' | 'locked' | 'committed', number>> = {};
      const mark = (k: keyof typeof seen) => void (seen[k] ??= Math.round(performance.now() - sentAt));
      let stopped = false;
      while (answer === undefined && failure === undefined) {
        const now = auditState(auditRepo);
        if (now.first !== before.first) mark('rewritten');
        if (now.last === `# ${fileName(FILE_COUNT - 1)} rev=${rev}`) mark('written');
        if (now.locked) mark('locked');
        if (now.head !== before.head) mark('committed');
        if (stop?.(now, before, performance.now() - sentAt) === true) {
          stopped = true;
          break;
        }
        // A poll of about a millisecond (a tighter loop would take a CPU from up).
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      return { post, sentAt, seen, stopped, result: () => ({ answer, failure }) };
    };

    // The first release, then three timed ones: how long a release takes, and when its audit commit comes.
    await newRev();
    const first = await call('POST', releasesPath);
    assert.equal(first.status, 201, first.text);
    const took: number[] = [];
    for (let i = 0; i < 3; i++) {
      const rev = await newRev();
      const w = await releaseWatched(`timed ${i}`, rev);
      await w.post;
      took.push(performance.now() - w.sentAt);
      const { answer } = w.result();
      assert.equal(answer?.status, 201, answer?.text);
      t.diagnostic(`timed release ${i}: ${Math.round(took[i]!)} ms; audit copy rewritten at ${w.seen.rewritten} ms, written ${w.seen.written}, index lock seen ${w.seen.locked}, committed ${w.seen.committed}`);
    }
    const releaseMs = [...took].sort((a, b) => a - b)[1]!;
    t.diagnostic(`a release of ${FILE_COUNT} files takes ${took.map((ms) => Math.round(ms)).join(', ')} ms (median ${Math.round(releaseMs)} ms)`);
    await check();

    let inFlightKills = 0;
    let up = at.processes[at.processes.length - 1]!;
    for (const [round, trigger] of KILL_AT.entries()) {
      const n = (await listed()).length;
      const rev = await newRev();
      const valuesVersion = Math.max(...revOf.keys());
      // The moment of this round's kill, chosen: a time after the POST, or a state of the audit repository.
      const killAfterMs = 'fraction' in trigger ? Math.round(trigger.fraction * releaseMs) : Infinity;
      const when = 'when' in trigger ? trigger.when : undefined;
      const w = await releaseWatched(`round ${round}`, rev, (s, b, elapsedMs) =>
        when === undefined ? elapsedMs >= killAfterMs : when === 'copy-rewritten' ? s.first !== b.first : when === 'index-locked' ? s.locked : s.head !== b.head,
      );
      const { answer: early, failure: earlyFailure } = w.result();
      const inFlight = early === undefined && earlyFailure === undefined;
      if (inFlight) inFlightKills++;
      await up.kill9();
      const killedAtMs = Math.round(performance.now() - w.sentAt);
      await within(w.post, 30_000, `the POST of round ${round} to settle after the kill`);
      const { answer, failure } = w.result();
      const locks = gitLocks();
      t.diagnostic(
        `round ${round}: killed ${killedAtMs} ms after the POST (at ${trigger.label}${'when' in trigger && !w.stopped ? ': not seen before the answer' : ''}), ${inFlight ? 'in flight' : 'already answered'}; ` +
          `answer: ${answer !== undefined ? answer.status : `none (${failure instanceof Error ? (failure.cause instanceof Error ? failure.cause.message : failure.message) : String(failure)})`}; ` +
          `audit: ${w.seen.committed !== undefined ? 'committed' : w.seen.locked !== undefined ? 'index lock seen' : w.seen.rewritten !== undefined ? 'copy being rewritten' : 'untouched'} before the kill, git's lock files left by it: [${locks.join(', ')}]`,
      );
      up = await startAndWait();

      const { releases, twice } = await check();
      const made = releases.find((r) => r.valuesVersion === valuesVersion);
      t.diagnostic(`round ${round}: after the restart: release ${made !== undefined ? `${made.version} stored` : 'not stored'}; versions with two audit commits: [${twice.join(', ')}]`);
      assert.ok(answer === undefined || answer.status === 201, `round ${round}: the POST answered ${answer?.status}: ${answer?.text}`);
      if (answer !== undefined) {
        // Answered 201: stored before it answered, so there after the restart, as answered.
        const answered = (answer.json['release'] as ListedRelease).version;
        assert.equal(answered, n + 1, `round ${round}: the 201 named version ${answered}`);
        assert.ok(made !== undefined && made.version === answered, `round ${round}: release ${answered} answered 201 before the kill and is not listed after the restart`);
        assert.deepEqual(made.files, (answer.json['release'] as ListedRelease).files, `round ${round}: release ${answered} is not the one answered`);
      }
      assert.ok(releases.length === n || (releases.length === n + 1 && made?.version === n + 1), `round ${round}: ${n} releases before, ${releases.length} after the restart`);

      // The next release after the restart: version n+1 (or n+2 when the killed one was stored).
      await newRev();
      const next = await call('POST', releasesPath, { note: `after round ${round}` });
      assert.equal(next.status, 201, `round ${round}: the first release after the restart: ${next.text}`);
      assert.equal((next.json['release'] as ListedRelease).version, releases.length + 1, `round ${round}: the first release after the restart`);
      await check();
    }
    assert.ok(inFlightKills >= KILL_AT.length / 2, `only ${inFlightKills} of ${KILL_AT.length} kills came while the POST was in flight`);
    // Every byte of every release once more, through the last restart.
    await check({ full: true });
  }
});

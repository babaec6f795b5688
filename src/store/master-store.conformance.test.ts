import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TaskState } from '../core/task-state.ts';
import type {
  MasterChange,
  MasterStore,
  StoredAgent,
  StoredFramework,
  StoredState,
  StoredTask,
} from '../master/master-store.ts';
import type { FrameworkInfo, Resource, TaskStatus } from '../protocol/mesos.ts';
import { KyselyMasterStore } from './kysely-master-store.ts';
import { STORE_TARGETS, storeModuleUrl } from './store-test-targets.ts';

/**
 * The conformance suite of `MasterStore` (src/master/master-store.ts): every implementation runs
 * the same tests (SQLite now, PostgreSQL later), as Kysely runs its tests for each dialect.
 *
 * A target is more than a `() => Promise<MasterStore>`: durability needs to open the *same*
 * location twice, and once from another process. So a target makes fresh locations (a temp dir
 * for SQLite, a database or schema for PostgreSQL), opens a store at one, and gives the program a
 * new Node process runs to print `load()` of a location as JSON. The targets are built at the end
 * of this file from `STORE_TARGETS` (store-test-targets.ts): a new kind of database is one entry
 * there, and this suite runs it.
 */
interface MasterStoreTarget {
  /** A new, empty location of its own, for one test. */
  fresh(): Promise<string>;
  open(location: string): Promise<MasterStore>;
  /** An ES module body for `node --import tsx --input-type=module -e`: prints `load()` as JSON. */
  childProgram(location: string): string;
  /** Deletes a location made by `fresh` (its stores are closed by then). */
  remove(location: string): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const execFileAsync = promisify(execFile);

function describeMasterStore(name: string, target: MasterStoreTarget): void {
  describe(`MasterStore conformance: ${name}`, () => {
    const locations: string[] = [];
    const open: MasterStore[] = [];

    /** A store at a fresh location; closed and removed after the suite even if a test fails. */
    async function freshStore(): Promise<{ store: MasterStore; location: string }> {
      const location = await target.fresh();
      locations.push(location);
      return { store: await openAt(location), location };
    }
    async function openAt(location: string): Promise<MasterStore> {
      const store = await target.open(location);
      open.push(store);
      return store;
    }

    after(async () => {
      // Some tests closed their store already; the port does not say whether a second close
      // fails, so failures here are ignored rather than hiding the removal of the locations.
      await Promise.allSettled(open.map((s) => s.close()));
      await Promise.all(locations.map((l) => target.remove(l)));
    });

    it('round-trips every change type', async () => {
      const { store } = await freshStore();
      const f1 = framework('f1', { roles: ['web'], capabilities: [{ type: 'PARTITION_AWARE' }] });
      const f2 = framework('f2');
      const a1 = agent('a1', { url: 'http://127.0.0.1:5051' });
      const a2 = agent('a2');
      const t1 = task('f1', 't1', 'a1', 'TASK_RUNNING', status('t1', 'TASK_RUNNING'));
      const t2 = task('f2', 't2', 'a2', 'TASK_STAGING');
      const t3 = task('f2', 't3', 'a1', 'TASK_STARTING');
      await store.write([
        { type: 'FRAMEWORK_SAVED', framework: f1 },
        { type: 'FRAMEWORK_SAVED', framework: f2 },
        { type: 'AGENT_SAVED', agent: a1 },
        { type: 'AGENT_SAVED', agent: a2 },
        { type: 'TASK_SAVED', task: t1 },
        { type: 'TASK_SAVED', task: t2 },
        { type: 'TASK_SAVED', task: t3 },
        { type: 'WEIGHT_SET', role: 'web', weight: 2.5 },
        { type: 'WEIGHT_SET', role: 'ci', weight: 0.1 },
        { type: 'QUOTA_SET', role: 'web', limits: { cpus: 4.25, mem: 8192 } },
        { type: 'QUOTA_SET', role: 'ci', limits: { cpus: 1 } },
      ]);
      assertState(await store.load(), {
        frameworks: [f1, f2],
        agents: [a1, a2],
        tasks: [t1, t2, t3],
        weights: { web: 2.5, ci: 0.1 },
        quotas: { web: { cpus: 4.25, mem: 8192 }, ci: { cpus: 1 } },
      });

      await store.write([
        { type: 'TASK_REMOVED', frameworkId: 'f2', taskId: 't2' },
        { type: 'FRAMEWORK_REMOVED', id: 'f1', removedAt: T0 + 10 },
        { type: 'AGENT_REMOVED', id: 'a2', removedAt: T0 + 11 },
        { type: 'QUOTA_SET', role: 'ci', limits: {} },
      ]);
      assertState(await store.load(), {
        frameworks: [f2],
        removedFrameworks: ['f1'],
        agents: [a1],
        removedAgents: ['a2'],
        tasks: [t3],
        weights: { web: 2.5, ci: 0.1 },
        quotas: { web: { cpus: 4.25, mem: 8192 } },
      });
    });

    it('keeps JSON values exactly as they were saved', async () => {
      const { store } = await freshStore();
      const info = framework('f1', {
        name: 'naïve 框架 "quoted" \\ back\nslash',
        failover_timeout: 604800.5,
        labels: { labels: [{ key: 'empty', value: '' }, { key: 'no-value' }] },
      });
      const t = task('f1', 'weird/task id', 'a1', 'TASK_KILLING', {
        ...status('weird/task id', 'TASK_KILLING'),
        healthy: false,
        timestamp: 1_700_000_000.123456,
        message: '',
      });
      t.info.resources = [{ name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 31000, end: 31009 }] } }];
      await store.write([
        { type: 'FRAMEWORK_SAVED', framework: info },
        { type: 'TASK_SAVED', task: t },
      ]);
      assertState(await store.load(), { frameworks: [info], tasks: [t] });
    });

    it('lets a later change of the same row win, within a batch and across batches', async () => {
      const { store } = await freshStore();
      await store.write([
        { type: 'FRAMEWORK_SAVED', framework: framework('f1', { name: 'first' }) },
        { type: 'FRAMEWORK_SAVED', framework: framework('f1', { name: 'second' }) },
        { type: 'AGENT_SAVED', agent: agent('a1', { url: 'http://127.0.0.1:5051' }) },
        { type: 'TASK_SAVED', task: task('f1', 't1', 'a1', 'TASK_STAGING') },
        { type: 'TASK_SAVED', task: task('f1', 't1', 'a1', 'TASK_RUNNING', status('t1', 'TASK_RUNNING')) },
        { type: 'TASK_SAVED', task: task('f1', 't2', 'a1', 'TASK_STAGING') },
        { type: 'TASK_REMOVED', frameworkId: 'f1', taskId: 't2' },
        { type: 'TASK_SAVED', task: task('f1', 't3', 'a1', 'TASK_STAGING') },
        { type: 'TASK_SAVED', task: task('f1', 't4', 'a1', 'TASK_UNREACHABLE', status('t4', 'TASK_UNREACHABLE')) },
        { type: 'WEIGHT_SET', role: 'web', weight: 1 },
        { type: 'WEIGHT_SET', role: 'web', weight: 3 },
        { type: 'QUOTA_SET', role: 'web', limits: { cpus: 1 } },
        { type: 'QUOTA_SET', role: 'web', limits: {} },
        { type: 'QUOTA_SET', role: 'ci', limits: {} },
        { type: 'QUOTA_SET', role: 'ci', limits: { mem: 512 } },
      ]);
      await store.write([
        { type: 'FRAMEWORK_SAVED', framework: framework('f1', { name: 'third' }, T0 + 5) },
        // A later save without url must drop the url saved before, not keep it.
        { type: 'AGENT_SAVED', agent: agent('a1', { hostname: 'renamed' }) },
        { type: 'TASK_SAVED', task: task('f1', 't1', 'a1', 'TASK_FINISHED', status('t1', 'TASK_FINISHED')) },
        { type: 'TASK_SAVED', task: task('f1', 't3', 'a1', 'TASK_STAGING') },
        { type: 'TASK_REMOVED', frameworkId: 'f1', taskId: 't3' },
        // A save without a status must drop the status saved before, not keep it.
        { type: 'TASK_SAVED', task: task('f1', 't4', 'a2', 'TASK_RUNNING') },
        { type: 'TASK_SAVED', task: task('f1', 't3', 'a1', 'TASK_STARTING') },
        { type: 'WEIGHT_SET', role: 'web', weight: 0.5 },
        { type: 'QUOTA_SET', role: 'ci', limits: { mem: 1024, disk: 10 } },
      ]);
      assertState(await store.load(), {
        frameworks: [framework('f1', { name: 'third' }, T0 + 5)],
        agents: [agent('a1', { hostname: 'renamed' })],
        tasks: [
          task('f1', 't1', 'a1', 'TASK_FINISHED', status('t1', 'TASK_FINISHED')),
          task('f1', 't3', 'a1', 'TASK_STARTING'),
          task('f1', 't4', 'a2', 'TASK_RUNNING'),
        ],
        weights: { web: 0.5 },
        quotas: { ci: { mem: 1024, disk: 10 } },
      });
    });

    it('applies nothing of a batch when the database rejects one of its changes, and names that change', async () => {
      const { store } = await freshStore();
      const before = await seed(store);
      // A task without an agent id: the type forbids it, a bug could still produce it at run time,
      // and the schema refuses it (agent_id is NOT NULL). It comes last, after changes that insert,
      // update and delete rows, so that all of them must be rolled back.
      const broken = { ...task('f1', 'bad', 'a1', 'TASK_STAGING'), agentId: null } as unknown as StoredTask;
      const failure = await rejectionOf(
        store.write([
          { type: 'FRAMEWORK_SAVED', framework: framework('f9') },
          { type: 'FRAMEWORK_SAVED', framework: framework('f1', { name: 'renamed' }) },
          { type: 'TASK_REMOVED', frameworkId: 'f1', taskId: 't1' },
          { type: 'FRAMEWORK_REMOVED', id: 'f2', removedAt: T0 + 1 },
          { type: 'AGENT_REMOVED', id: 'a1', removedAt: T0 + 1 },
          { type: 'WEIGHT_SET', role: 'web', weight: 7 },
          { type: 'QUOTA_SET', role: 'web', limits: {} },
          { type: 'TASK_SAVED', task: broken },
        ]),
      );
      assert.equal(codeOf(failure), 'STORE_WRITE_FAILED');
      assert.match(messageOf(failure), /change 8 of 8/);
      assert.match(messageOf(failure), /TASK_SAVED of task bad of framework f1/);
      assertState(await store.load(), before);

      // The store is still usable after the failure.
      await store.write([{ type: 'WEIGHT_SET', role: 'web', weight: 9 }]);
      assert.equal((await store.load()).weights.web, 9);
    });

    it('applies nothing of a batch when a value cannot be stored as JSON', async () => {
      const { store } = await freshStore();
      const before = await seed(store);
      // A BigInt has no JSON form; storing it as anything would not read back as what was saved.
      const info = { ...framework('f1').info, failover_timeout: 10n } as unknown as FrameworkInfo;
      const failure = await rejectionOf(
        store.write([
          { type: 'WEIGHT_SET', role: 'web', weight: 7 },
          { type: 'TASK_REMOVED', frameworkId: 'f1', taskId: 't1' },
          { type: 'FRAMEWORK_SAVED', framework: { id: 'f1', info, registeredAt: T0 } },
        ]),
      );
      assert.equal(codeOf(failure), 'STORE_WRITE_FAILED');
      assert.match(messageOf(failure), /change 3 of 3 \(FRAMEWORK_SAVED of framework f1\)/);
      assertState(await store.load(), before);
    });

    it('returns removed framework and agent ids as removed, and their rows not as live', async () => {
      const { store } = await freshStore();
      const f2 = framework('f2');
      const a2 = agent('a2');
      // A task of a kept framework on a removed agent: the master, not the store, decides its fate.
      const keptOnRemovedAgent = task('f2', 't3', 'a1', 'TASK_RUNNING');
      const keptOnKeptAgent = task('f2', 't4', 'a2', 'TASK_RUNNING');
      await store.write([
        { type: 'FRAMEWORK_SAVED', framework: framework('f1') },
        { type: 'FRAMEWORK_SAVED', framework: f2 },
        { type: 'AGENT_SAVED', agent: agent('a1') },
        { type: 'AGENT_SAVED', agent: a2 },
        { type: 'TASK_SAVED', task: task('f1', 't1', 'a1', 'TASK_RUNNING') },
        { type: 'TASK_SAVED', task: task('f1', 't2', 'a2', 'TASK_STAGING') },
        { type: 'TASK_SAVED', task: keptOnRemovedAgent },
        { type: 'TASK_SAVED', task: keptOnKeptAgent },
      ]);
      await store.write([
        { type: 'FRAMEWORK_REMOVED', id: 'f1', removedAt: T0 + 100 },
        { type: 'AGENT_REMOVED', id: 'a1', removedAt: T0 + 100 },
      ]);
      assertState(await store.load(), {
        frameworks: [f2],
        removedFrameworks: ['f1'],
        agents: [a2],
        removedAgents: ['a1'],
        tasks: [keptOnRemovedAgent, keptOnKeptAgent],
      });
    });

    it('retires a framework id or agent id that is removed without ever having been saved', async () => {
      const { store } = await freshStore();
      await store.write([
        { type: 'FRAMEWORK_REMOVED', id: 'never-saved-fw', removedAt: T0 },
        { type: 'AGENT_REMOVED', id: 'never-saved-agent', removedAt: T0 },
      ]);
      assertState(await store.load(), { removedFrameworks: ['never-saved-fw'], removedAgents: ['never-saved-agent'] });
    });

    it('keeps a removed id retired when it is saved again', async () => {
      const { store } = await freshStore();
      await store.write([
        { type: 'FRAMEWORK_SAVED', framework: framework('f1') },
        { type: 'AGENT_SAVED', agent: agent('a1') },
        { type: 'FRAMEWORK_REMOVED', id: 'f1', removedAt: T0 + 1 },
        { type: 'AGENT_REMOVED', id: 'a1', removedAt: T0 + 1 },
      ]);
      await store.write([
        { type: 'FRAMEWORK_SAVED', framework: framework('f1', { name: 'back again' }) },
        { type: 'AGENT_SAVED', agent: agent('a1', { hostname: 'back-again' }) },
      ]);
      assertState(await store.load(), { removedFrameworks: ['f1'], removedAgents: ['a1'] });
    });

    it('keeps its state across close and reopen, on disk where another process reads it', async () => {
      const { store, location } = await freshStore();
      const expected = await seed(store);
      await store.close();

      const { stdout } = await execFileAsync(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', target.childProgram(location)],
        { cwd: REPO_ROOT, timeout: 30_000 },
      );
      assertState(JSON.parse(stdout) as StoredState, expected);

      const reopened = await openAt(location);
      assertState(await reopened.load(), expected);
      // And it is writable again, on top of what was there.
      await reopened.write([{ type: 'TASK_REMOVED', frameworkId: 'f1', taskId: 't1' }]);
      assertState(await reopened.load(), { ...expected, tasks: expected.tasks.filter((t) => t.taskId !== 't1') });
    });

    it('commits concurrent writes one at a time, in the order they were called', async () => {
      const { store } = await freshStore();
      await store.write([{ type: 'FRAMEWORK_SAVED', framework: framework('f1') }]);
      // Earlier batches are larger, so if batches ran side by side the early ones would commit
      // last and their WEIGHT_SET / TASK_SAVED of the shared rows would win.
      const n = 12;
      const settled: number[] = [];
      const writes: Promise<void>[] = [];
      let loadAfterHalf: Promise<StoredState> | undefined;
      for (let i = 0; i < n; i++) {
        const batch: MasterChange[] = [];
        for (let k = 0; k < (n - i) * 40; k++) {
          batch.push({ type: 'TASK_SAVED', task: task('f1', `t-${i}-${k}`, `a${i}`, 'TASK_RUNNING') });
        }
        batch.push({ type: 'TASK_SAVED', task: task('f1', 'shared', `a${i}`, 'TASK_RUNNING') });
        batch.push({ type: 'WEIGHT_SET', role: 'web', weight: i + 1 });
        writes.push(store.write(batch).then(() => void settled.push(i)));
        if (i === n / 2 - 1) loadAfterHalf = store.load();
      }
      await Promise.all(writes);

      assert.deepEqual(settled, [...Array(n).keys()]);
      const state = await store.load();
      assert.equal(state.weights.web, n);
      assert.equal(state.tasks.find((t) => t.taskId === 'shared')?.agentId, `a${n - 1}`);
      assert.equal(state.tasks.length, 1 + (40 * n * (n + 1)) / 2);

      // A load sees exactly the writes called before it.
      assert.ok(loadAfterHalf);
      const half = await loadAfterHalf;
      assert.equal(half.weights.web, n / 2);
      assert.equal(half.tasks.find((t) => t.taskId === 'shared')?.agentId, `a${n / 2 - 1}`);
    });

    it('goes on with the writes queued behind one that fails', async () => {
      const { store } = await freshStore();
      const broken = { type: 'WEIGHT_SET', role: 'web', weight: null } as unknown as MasterChange;
      const first = store.write([{ type: 'WEIGHT_SET', role: 'a', weight: 1 }]);
      const second = rejectionOf(store.write([{ type: 'WEIGHT_SET', role: 'b', weight: 1 }, broken]));
      const third = store.write([{ type: 'WEIGHT_SET', role: 'c', weight: 1 }]);
      await first;
      assert.equal(codeOf(await second), 'STORE_WRITE_FAILED');
      await third;
      assert.deepEqual((await store.load()).weights, { a: 1, c: 1 });
    });

    it('writes a batch of 10,000 tasks and loads them back', { timeout: 60_000 }, async () => {
      const { store } = await freshStore();
      const batch: MasterChange[] = [
        { type: 'FRAMEWORK_SAVED', framework: framework('f1') },
        { type: 'AGENT_SAVED', agent: agent('a1') },
      ];
      for (let i = 0; i < 10_000; i++) {
        batch.push({ type: 'TASK_SAVED', task: task('f1', `t${i}`, 'a1', 'TASK_RUNNING', status(`t${i}`, 'TASK_RUNNING')) });
      }
      await store.write(batch);
      const state = await store.load();
      assert.equal(state.tasks.length, 10_000);
      assert.deepEqual(
        state.tasks.find((t) => t.taskId === 't9999'),
        task('f1', 't9999', 'a1', 'TASK_RUNNING', status('t9999', 'TASK_RUNNING')),
      );
    });

    it('refuses to load a document that does not read as its type, naming the document and the field', async () => {
      const { store } = await freshStore();
      // Written through the port, with a type the master would never write (an older or damaged store).
      const damaged = { ...agent('a1'), resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 'two' } }] } as unknown as StoredAgent;
      await store.write([{ type: 'AGENT_SAVED', agent: damaged }]);
      const failure = await rejectionOf(store.load());
      assert.equal(codeOf(failure), 'INVALID_STORED_DOCUMENT');
      assert.match(messageOf(failure), /^stored resources of agent a1 cannot be read: \[0\]\.scalar\.value /);
      // The store goes on: the row is written over, and the next load reads.
      await store.write([{ type: 'AGENT_SAVED', agent: agent('a1') }]);
      assert.deepEqual((await store.load()).agents, [agent('a1')]);
    });

    it('refuses to load or write once closed', async () => {
      const { store } = await freshStore();
      await store.close();
      assert.equal(codeOf(await rejectionOf(store.load())), 'STORE_CLOSED');
      assert.equal(codeOf(await rejectionOf(store.write([{ type: 'WEIGHT_SET', role: 'a', weight: 1 }]))), 'STORE_CLOSED');
    });
  });
}

// Fixtures ---------------------------------------------------------------------------------------

const T0 = 1_750_000_000_000;

function framework(id: string, info: Partial<FrameworkInfo> = {}, registeredAt = T0): StoredFramework {
  return {
    id,
    info: { name: `framework ${id}`, id: { value: id }, user: 'slipway', failover_timeout: 3600, ...info },
    registeredAt,
  };
}

function agent(id: string, fields: Partial<StoredAgent> = {}): StoredAgent {
  const resources: Resource[] = [
    { name: 'cpus', type: 'SCALAR', scalar: { value: 8 } },
    { name: 'mem', type: 'SCALAR', scalar: { value: 16384 } },
    { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 31000, end: 32000 }] } },
  ];
  return {
    id,
    hostname: `host-${id}`,
    resources,
    attributes: [{ name: 'rack', type: 'TEXT', text: { value: 'r1' } }],
    registeredAt: T0,
    ...fields,
  };
}

function task(frameworkId: string, taskId: string, agentId: string, state: TaskState, taskStatus?: TaskStatus): StoredTask {
  const t: StoredTask = {
    frameworkId,
    taskId,
    agentId,
    state,
    info: {
      name: `task ${taskId}`,
      task_id: { value: taskId },
      agent_id: { value: agentId },
      resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 0.5 } }],
      command: { value: 'sleep 1000' },
    },
  };
  if (taskStatus) t.status = taskStatus;
  return t;
}

function status(taskId: string, state: TaskState): TaskStatus {
  return { task_id: { value: taskId }, state, source: 'SOURCE_AGENT', uuid: 'AAAAAAAAAAAAAAAAAAAAAA==', timestamp: 1_750_000_000.5 };
}

/** Writes a small state with a bit of everything, and returns it as `load` should. */
async function seed(store: MasterStore): Promise<StoredState> {
  const f1 = framework('f1');
  const f2 = framework('f2');
  const a1 = agent('a1', { url: 'http://127.0.0.1:5051' });
  const a2 = agent('a2', { unreachableAt: T0 + 5, maintenance: { deactivated: true, drain: { state: 'DRAINING', maxGracePeriodMs: 2_000, markGone: false } } });
  const t1 = { ...task('f1', 't1', 'a1', 'TASK_RUNNING', status('t1', 'TASK_RUNNING')), role: 'web' };
  const t2 = task('f2', 't2', 'a1', 'TASK_STAGING');
  await store.write([
    { type: 'FRAMEWORK_SAVED', framework: f1 },
    { type: 'FRAMEWORK_SAVED', framework: f2 },
    { type: 'FRAMEWORK_REMOVED', id: 'f0', removedAt: T0 },
    { type: 'AGENT_SAVED', agent: a1 },
    { type: 'AGENT_SAVED', agent: a2 },
    { type: 'AGENT_REMOVED', id: 'a0', removedAt: T0 },
    { type: 'TASK_SAVED', task: t1 },
    { type: 'TASK_SAVED', task: t2 },
    { type: 'WEIGHT_SET', role: 'web', weight: 2 },
    { type: 'QUOTA_SET', role: 'web', limits: { cpus: 2 } },
  ]);
  return {
    frameworks: [f1, f2],
    removedFrameworks: ['f0'],
    agents: [a1, a2],
    removedAgents: ['a0'],
    tasks: [t1, t2],
    weights: { web: 2 },
    quotas: { web: { cpus: 2 } },
  };
}

// Assertions -------------------------------------------------------------------------------------

/**
 * Compares a loaded state with the expected one (missing fields of `expected` mean empty). The
 * port promises no order of rows, so both sides are sorted by key first.
 */
function assertState(actual: StoredState, expected: Partial<StoredState>): void {
  const full: StoredState = {
    frameworks: [],
    removedFrameworks: [],
    agents: [],
    removedAgents: [],
    tasks: [],
    weights: {},
    quotas: {},
    ...expected,
  };
  assert.deepEqual(normalize(actual), normalize(full));
}

function normalize(s: StoredState): StoredState {
  const by = <T>(key: (x: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
  return {
    frameworks: [...s.frameworks].sort(by((f) => f.id)),
    removedFrameworks: [...s.removedFrameworks].sort(),
    agents: [...s.agents].sort(by((a) => a.id)),
    removedAgents: [...s.removedAgents].sort(),
    tasks: [...s.tasks].sort(by((t) => `${t.frameworkId}\u0000${t.taskId}`)),
    weights: { ...s.weights },
    quotas: { ...s.quotas },
  };
}

/** The error a promise rejects with; fails the test if it resolves. */
async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to fail, and it succeeded');
}

function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Targets ----------------------------------------------------------------------------------------

const MASTER_STORE_MODULE = storeModuleUrl('kysely-master-store.ts');

for (const t of STORE_TARGETS) {
  describeMasterStore(t.name, {
    fresh: () => t.fresh(),
    open: (location) => KyselyMasterStore.open(t.databases(location)),
    childProgram: (location) => `
      const { KyselyMasterStore } = await import(${JSON.stringify(MASTER_STORE_MODULE)});
      const store = await KyselyMasterStore.open(${t.childDatabases(location)});
      process.stdout.write(JSON.stringify(await store.load()));
      await store.close();
    `,
    remove: (location) => t.remove(location),
  });
}

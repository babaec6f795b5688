import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { MarathonAppJson } from '../frameworks/apps/app-definition.ts';
import type {
  AppsChange,
  AppsStore,
  StoredAppJson,
  StoredAppsState,
  StoredDeployment,
  StoredInstance,
} from '../frameworks/apps/apps-store.ts';
import { MAX_VERSIONS_PER_APP } from '../frameworks/apps/apps-store.ts';
import type { MasterStore } from '../master/master-store.ts';
import { KyselyAppsStore } from './kysely-apps-store.ts';
import { KyselyMasterStore } from './kysely-master-store.ts';
import { STORE_TARGETS, storeModuleUrl } from './store-test-targets.ts';

/**
 * The conformance suite of `AppsStore` (src/frameworks/apps/apps-store.ts): every implementation
 * runs the same tests (SQLite now, PostgreSQL later), as master-store.conformance.test.ts does for
 * the master's store.
 *
 * A target makes fresh locations (a temp dir for SQLite, a database or schema for PostgreSQL),
 * opens an apps store at one (and the master's store at the same one, to show that the two keep to
 * themselves), and gives the program a new Node process runs to print `load()` of a location as
 * JSON. The targets are built at the end of this file from `STORE_TARGETS` (store-test-targets.ts):
 * a new kind of database is one entry there, and this suite runs it.
 */
interface AppsStoreTarget {
  /** A new, empty location of its own, for one test. */
  fresh(): Promise<string>;
  open(location: string, options?: { maxVersionsPerApp?: number }): Promise<AppsStore>;
  /** The master's store at the same location (`slipway up` shares one data dir). */
  openMaster(location: string): Promise<MasterStore>;
  /**
   * An ES module body for `node --import tsx --input-type=module -e`: prints `load()` as JSON,
   * with `versions` as the array of the Map's entries.
   */
  childProgram(location: string): string;
  /** Deletes a location made by `fresh` (its stores are closed by then). */
  remove(location: string): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const execFileAsync = promisify(execFile);

function describeAppsStore(name: string, target: AppsStoreTarget): void {
  describe(`AppsStore conformance: ${name}`, () => {
    const locations: string[] = [];
    const open: { close(): Promise<void> }[] = [];

    async function freshLocation(): Promise<string> {
      const location = await target.fresh();
      locations.push(location);
      return location;
    }
    /** A store at a fresh location; closed and removed after the suite even if a test fails. */
    async function freshStore(options?: { maxVersionsPerApp?: number }): Promise<{ store: AppsStore; location: string }> {
      const location = await freshLocation();
      return { store: await openAt(location, options), location };
    }
    async function openAt(location: string, options?: { maxVersionsPerApp?: number }): Promise<AppsStore> {
      const store = await target.open(location, options);
      open.push(store);
      return store;
    }
    async function openMasterAt(location: string): Promise<MasterStore> {
      const store = await target.openMaster(location);
      open.push(store);
      return store;
    }

    after(async () => {
      // Some tests closed their stores already; the port does not say whether a second close
      // fails, so failures here are ignored rather than hiding the removal of the locations.
      await Promise.allSettled(open.map((s) => s.close()));
      await Promise.all(locations.map((l) => target.remove(l)));
    });

    it('loads an empty state from a new location', async () => {
      const { store } = await freshStore();
      const state = await store.load();
      assert.equal(state.frameworkId, undefined);
      assertAppsState(state, {});
    });

    it('round-trips every change type', async () => {
      const { store } = await freshStore();
      const web1 = app('/prod/web', 1, { env: { MODE: 'prod' }, labels: { team: 'a' } });
      const web2 = app('/prod/web', 2, { instances: 3, env: { MODE: 'prod' } });
      const worker = app('/prod/worker', 1, { constraints: [['hostname', 'UNIQUE']] });
      const d1 = deployment('d1', { steps: [[{ action: 'StartApplication', app: '/prod/web' }]], currentStep: 0 });
      const d2 = deployment('d2', null);
      const i1 = instance('prod_web.1', '/prod/web');
      const i2 = instance('prod_web.2', '/prod/web', { state: 'TASK_STAGING', agentId: 'a2', ports: [31001] });
      const i3 = instance('prod_worker.1', '/prod/worker');
      await store.write([
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-1' },
        { type: 'APP_SAVED', app: web1 },
        { type: 'APP_SAVED', app: web2 },
        { type: 'APP_SAVED', app: worker },
        { type: 'DEPLOYMENT_SAVED', deployment: d1 },
        { type: 'DEPLOYMENT_SAVED', deployment: d2 },
        { type: 'INSTANCE_SAVED', instance: i1 },
        { type: 'INSTANCE_SAVED', instance: i2 },
        { type: 'INSTANCE_SAVED', instance: i3 },
      ]);
      assertAppsState(await store.load(), {
        frameworkId: 'fw-1',
        apps: [web2, worker],
        versions: new Map([
          ['/prod/web', [web1, web2]],
          ['/prod/worker', [worker]],
        ]),
        deployments: [d1, d2],
        instances: [i1, i2, i3],
      });

      await store.write([
        { type: 'APP_REMOVED', appId: '/prod/worker' },
        { type: 'DEPLOYMENT_REMOVED', id: 'd1' },
        { type: 'INSTANCE_REMOVED', taskId: 'prod_web.1' },
        // Removing what is not there is not an error.
        { type: 'APP_REMOVED', appId: '/never' },
        { type: 'DEPLOYMENT_REMOVED', id: 'never' },
        { type: 'INSTANCE_REMOVED', taskId: 'never' },
      ]);
      assertAppsState(await store.load(), {
        frameworkId: 'fw-1',
        apps: [web2],
        versions: new Map([['/prod/web', [web1, web2]]]),
        deployments: [d2],
        // The store does not remove an app's instances with it: that is the framework's call.
        instances: [i2, i3],
      });
    });

    it('keeps documents exactly as they were saved', async () => {
      const { store } = await freshStore();
      const weird = app('/naïve/app', 1, {
        cmd: 'echo "quoted" \\ back\nslash 框架 && exit 0',
        cpus: 0.001,
        mem: 1e-7,
        env: { EMPTY: '', SECRETLESS: 'x' },
        labels: {},
        args: [],
      });
      const docs: unknown[] = [null, 0, -1.5e300, '', 'text "with" quotes', true, [], {}, [1, [2, [3, { deep: [null] }]]]];
      const deployments = docs.map((doc, i) => deployment(`d${i}`, doc));
      const instances = docs.map((doc, i) => instance(`weird/task id ${i}`, '/naïve/app', doc));
      await store.write([
        { type: 'APP_SAVED', app: weird },
        ...deployments.map((d): AppsChange => ({ type: 'DEPLOYMENT_SAVED', deployment: d })),
        ...instances.map((i): AppsChange => ({ type: 'INSTANCE_SAVED', instance: i })),
      ]);
      assertAppsState(await store.load(), {
        apps: [weird],
        versions: new Map([['/naïve/app', [weird]]]),
        deployments,
        instances,
      });
    });

    it('lets a later change of the same key win, within a batch and across batches', async () => {
      const { store } = await freshStore();
      await store.write([
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-1' },
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-2' },
        { type: 'APP_SAVED', app: app('/a', 1) },
        { type: 'APP_SAVED', app: app('/a', 2, { instances: 5 }) },
        { type: 'APP_SAVED', app: app('/b', 1) },
        { type: 'APP_REMOVED', appId: '/b' },
        { type: 'DEPLOYMENT_SAVED', deployment: deployment('d1', { step: 1 }) },
        { type: 'DEPLOYMENT_SAVED', deployment: deployment('d1', { step: 2 }) },
        { type: 'DEPLOYMENT_SAVED', deployment: deployment('d2') },
        { type: 'DEPLOYMENT_REMOVED', id: 'd2' },
        { type: 'INSTANCE_SAVED', instance: instance('t1', '/a', { state: 'TASK_STAGING' }) },
        { type: 'INSTANCE_SAVED', instance: instance('t1', '/a', { state: 'TASK_RUNNING' }) },
        { type: 'INSTANCE_SAVED', instance: instance('t2', '/a') },
        { type: 'INSTANCE_REMOVED', taskId: 't2' },
      ]);
      await store.write([
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-3' },
        { type: 'APP_SAVED', app: app('/a', 3, { instances: 1 }) },
        // Removed, then saved again: back, with only its new version.
        { type: 'APP_SAVED', app: app('/b', 4) },
        { type: 'DEPLOYMENT_SAVED', deployment: deployment('d1', { step: 3 }) },
        { type: 'DEPLOYMENT_SAVED', deployment: deployment('d2', 'again') },
        { type: 'DEPLOYMENT_REMOVED', id: 'd1' },
        // A later save moves the instance to another app id, too.
        { type: 'INSTANCE_SAVED', instance: instance('t1', '/b', { state: 'TASK_KILLED' }) },
        { type: 'INSTANCE_SAVED', instance: instance('t2', '/b') },
      ]);
      assertAppsState(await store.load(), {
        frameworkId: 'fw-3',
        apps: [app('/a', 3, { instances: 1 }), app('/b', 4)],
        versions: new Map([
          ['/a', [app('/a', 1), app('/a', 2, { instances: 5 }), app('/a', 3, { instances: 1 })]],
          ['/b', [app('/b', 4)]],
        ]),
        deployments: [deployment('d2', 'again')],
        instances: [instance('t1', '/b', { state: 'TASK_KILLED' }), instance('t2', '/b')],
      });
    });

    it('removes the versions of a removed app, and those of no other app', async () => {
      const { store } = await freshStore();
      const keep = [app('/keep', 1), app('/keep', 2)];
      await store.write([
        { type: 'APP_SAVED', app: app('/gone', 1) },
        { type: 'APP_SAVED', app: app('/gone', 2) },
        // An app whose id starts like the removed one: removal is by exact id.
        { type: 'APP_SAVED', app: app('/gone/child', 1) },
        ...keep.map((a): AppsChange => ({ type: 'APP_SAVED', app: a })),
      ]);
      await store.write([{ type: 'APP_REMOVED', appId: '/gone' }]);
      assertAppsState(await store.load(), {
        apps: [app('/gone/child', 1), keep[1] as StoredAppJson],
        versions: new Map([
          ['/gone/child', [app('/gone/child', 1)]],
          ['/keep', keep],
        ]),
      });

      // A new app of the same id starts with no history.
      await store.write([{ type: 'APP_SAVED', app: app('/gone', 7) }]);
      assert.deepEqual((await store.load()).versions.get('/gone'), [app('/gone', 7)]);
    });

    it(`keeps the newest ${MAX_VERSIONS_PER_APP} versions of an app by default, oldest first`, async () => {
      const { store } = await freshStore();
      const extra = 5;
      const saved = Array.from({ length: MAX_VERSIONS_PER_APP + extra }, (_, n) => app('/busy', n));
      await store.write([
        { type: 'APP_SAVED', app: app('/quiet', 1) },
        ...saved.map((a): AppsChange => ({ type: 'APP_SAVED', app: a })),
      ]);
      let state = await store.load();
      assert.equal(state.versions.get('/busy')?.length, MAX_VERSIONS_PER_APP);
      assertAppsState(state, {
        apps: [saved.at(-1) as StoredAppJson, app('/quiet', 1)],
        versions: new Map([
          ['/busy', saved.slice(extra)],
          ['/quiet', [app('/quiet', 1)]],
        ]),
      });

      // Across batches, one at a time: the window slides by one each time.
      const more = [app('/busy', 100), app('/busy', 101)];
      for (const a of more) await store.write([{ type: 'APP_SAVED', app: a }]);
      state = await store.load();
      assert.deepEqual(state.versions.get('/busy'), [...saved.slice(extra + more.length), ...more]);
      assert.deepEqual(state.versions.get('/quiet'), [app('/quiet', 1)]);
    });

    it('keeps one row for a version saved twice: the later document, as the newest version', async () => {
      const { store } = await freshStore({ maxVersionsPerApp: 3 });
      await store.write([
        { type: 'APP_SAVED', app: app('/a', 1) },
        { type: 'APP_SAVED', app: app('/a', 2) },
        { type: 'APP_SAVED', app: app('/a', 3) },
      ]);
      // The oldest version saved again (same version, another document): it becomes the current
      // definition, so it must be the newest version and not the one the next save prunes.
      const again = app('/a', 1, { labels: { saved: 'twice' } });
      await store.write([{ type: 'APP_SAVED', app: again }]);
      assertAppsState(await store.load(), {
        apps: [again],
        versions: new Map([['/a', [app('/a', 2), app('/a', 3), again]]]),
      });

      await store.write([{ type: 'APP_SAVED', app: app('/a', 4) }]);
      assertAppsState(await store.load(), {
        apps: [app('/a', 4)],
        versions: new Map([['/a', [app('/a', 3), again, app('/a', 4)]]]),
      });

      // The current version saved again changes nothing but its document.
      await store.write([
        { type: 'APP_SAVED', app: app('/a', 4, { cmd: 'true' }) },
        { type: 'APP_SAVED', app: app('/a', 4, { cmd: 'false' }) },
      ]);
      assertAppsState(await store.load(), {
        apps: [app('/a', 4, { cmd: 'false' })],
        versions: new Map([['/a', [app('/a', 3), again, app('/a', 4, { cmd: 'false' })]]]),
      });
    });

    it('prunes versions at the limit it is opened with, and loads no more than that limit', async () => {
      const { store, location } = await freshStore({ maxVersionsPerApp: 4 });
      const saved = Array.from({ length: 6 }, (_, n) => app('/a', n));
      await store.write(saved.map((a): AppsChange => ({ type: 'APP_SAVED', app: a })));
      assert.deepEqual((await store.load()).versions.get('/a'), saved.slice(2));
      await store.close();

      const lower = await openAt(location, { maxVersionsPerApp: 2 });
      assert.deepEqual((await lower.load()).versions.get('/a'), saved.slice(4));
      await lower.close();

      // Versions past a lower limit are not pruned by loading it: a higher limit sees them again
      // until the next save prunes them.
      const higher = await openAt(location, { maxVersionsPerApp: 10 });
      assert.deepEqual((await higher.load()).versions.get('/a'), saved.slice(2));
      await higher.close();

      await assert.rejects(target.open(location, { maxVersionsPerApp: 0 }), RangeError);
      await assert.rejects(target.open(location, { maxVersionsPerApp: 2.5 }), RangeError);
    });

    it('applies nothing of a batch when a document cannot be stored as JSON, midway', async () => {
      // A limit of 2, so that the batch also prunes a version that the rollback must bring back.
      const { store } = await freshStore({ maxVersionsPerApp: 2 });
      const before = await seed(store);
      // A BigInt has no JSON form; storing it as anything would not read back as what was saved.
      const bad = deployment('d-bad', { replicas: 10n });
      const batch: AppsChange[] = [
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-other' },
        { type: 'APP_SAVED', app: app('/a', 3) },
        { type: 'APP_SAVED', app: app('/c', 1) },
        { type: 'APP_REMOVED', appId: '/b' },
        { type: 'DEPLOYMENT_SAVED', deployment: deployment('d1', 'changed') },
        { type: 'DEPLOYMENT_SAVED', deployment: bad },
        { type: 'DEPLOYMENT_REMOVED', id: 'd1' },
        { type: 'INSTANCE_REMOVED', taskId: 't1' },
        { type: 'INSTANCE_SAVED', instance: instance('t9', '/c') },
      ];
      const failure = await rejectionOf(store.write(batch));
      assert.equal(codeOf(failure), 'STORE_WRITE_FAILED');
      assert.match(messageOf(failure), /change 6 of 9 \(DEPLOYMENT_SAVED of deployment d-bad\)/);
      assertAppsState(await store.load(), before);

      // Also in an app and an instance document.
      const badApp = { ...app('/a', 3), instances: 2n } as unknown as StoredAppJson;
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const badInstance = instance('t9', '/a', cyclic);
      for (const change of [
        { type: 'APP_SAVED', app: badApp },
        { type: 'INSTANCE_SAVED', instance: badInstance },
      ] as AppsChange[]) {
        assert.equal(codeOf(await rejectionOf(store.write([...batch.slice(0, 5), change, ...batch.slice(6)]))), 'STORE_WRITE_FAILED');
        assertAppsState(await store.load(), before);
      }

      // The store is still usable after the failure, and the batch without the bad change goes in.
      await store.write(batch.filter((c) => c.type !== 'DEPLOYMENT_SAVED' || c.deployment.id !== 'd-bad'));
      assertAppsState(await store.load(), {
        frameworkId: 'fw-other',
        apps: [app('/a', 3), app('/c', 1)],
        versions: new Map([
          ['/a', [app('/a', 2, { instances: 2 }), app('/a', 3)]],
          ['/c', [app('/c', 1)]],
        ]),
        deployments: [],
        instances: [instance('t2', '/b'), instance('t9', '/c')],
      });
    });

    it('applies nothing of a batch when the database rejects one of its changes, and names that change', async () => {
      const { store } = await freshStore({ maxVersionsPerApp: 2 });
      const before = await seed(store);
      // An instance without an app id: the type forbids it, a bug could still produce it at run
      // time, and the schema refuses it. It comes last, after changes that insert, update, prune
      // and delete rows in every table, so that all of them must be rolled back.
      const broken = { ...instance('t-bad', '/a'), appId: null } as unknown as StoredInstance;
      const failure = await rejectionOf(
        store.write([
          { type: 'FRAMEWORK_ID', frameworkId: 'fw-other' },
          { type: 'APP_SAVED', app: app('/a', 3) },
          { type: 'APP_REMOVED', appId: '/b' },
          { type: 'DEPLOYMENT_SAVED', deployment: deployment('d2') },
          { type: 'DEPLOYMENT_REMOVED', id: 'd1' },
          { type: 'INSTANCE_SAVED', instance: instance('t1', '/a', 'changed') },
          { type: 'INSTANCE_REMOVED', taskId: 't2' },
          { type: 'INSTANCE_SAVED', instance: broken },
        ]),
      );
      assert.equal(codeOf(failure), 'STORE_WRITE_FAILED');
      assert.match(messageOf(failure), /change 8 of 8 \(INSTANCE_SAVED of instance t-bad of app null\)/);
      assertAppsState(await store.load(), before);
    });

    it('goes on with the writes queued behind one that fails', async () => {
      const { store } = await freshStore();
      const broken = { type: 'DEPLOYMENT_SAVED', deployment: { id: 'bad', doc: 1n } } as unknown as AppsChange;
      const first = store.write([{ type: 'DEPLOYMENT_SAVED', deployment: deployment('a') }]);
      const second = rejectionOf(store.write([{ type: 'DEPLOYMENT_SAVED', deployment: deployment('b') }, broken]));
      const third = store.write([{ type: 'DEPLOYMENT_SAVED', deployment: deployment('c') }]);
      await first;
      assert.equal(codeOf(await second), 'STORE_WRITE_FAILED');
      await third;
      assertAppsState(await store.load(), { deployments: [deployment('a'), deployment('c')] });
    });

    it('commits concurrent writes one at a time, in the order they were called', async () => {
      const { store } = await freshStore();
      // Earlier batches are larger, so if batches ran side by side the early ones would commit
      // last and their saves of the shared keys would win.
      const n = 10;
      const settled: number[] = [];
      const writes: Promise<void>[] = [];
      let loadAfterHalf: Promise<StoredAppsState> | undefined;
      for (let i = 0; i < n; i++) {
        const batch: AppsChange[] = [];
        for (let k = 0; k < (n - i) * 30; k++) {
          batch.push({ type: 'INSTANCE_SAVED', instance: instance(`t-${i}-${k}`, '/shared') });
        }
        batch.push({ type: 'INSTANCE_SAVED', instance: instance('shared', `/app-${i}`) });
        batch.push({ type: 'APP_SAVED', app: app('/shared', i) });
        batch.push({ type: 'FRAMEWORK_ID', frameworkId: `fw-${i}` });
        writes.push(store.write(batch).then(() => void settled.push(i)));
        if (i === n / 2 - 1) loadAfterHalf = store.load();
      }
      await Promise.all(writes);

      assert.deepEqual(settled, [...Array(n).keys()]);
      const state = await store.load();
      assert.equal(state.frameworkId, `fw-${n - 1}`);
      assert.equal(state.instances.find((i) => i.taskId === 'shared')?.appId, `/app-${n - 1}`);
      assert.equal(state.instances.length, 1 + (30 * n * (n + 1)) / 2);
      assert.deepEqual(state.apps, [app('/shared', n - 1)]);
      assert.deepEqual(state.versions.get('/shared'), Array.from({ length: n }, (_, i) => app('/shared', i)));

      // A load sees exactly the writes called before it.
      assert.ok(loadAfterHalf);
      const half = await loadAfterHalf;
      assert.equal(half.frameworkId, `fw-${n / 2 - 1}`);
      assert.equal(half.versions.get('/shared')?.length, n / 2);
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
      const printed = JSON.parse(stdout) as Omit<StoredAppsState, 'versions'> & { versions: [string, StoredAppJson[]][] };
      assertAppsState({ ...printed, versions: new Map(printed.versions) }, expected);

      const reopened = await openAt(location);
      assertAppsState(await reopened.load(), expected);
      // And it is writable again, on top of what was there: versions go on after the old ones.
      await reopened.write([
        { type: 'APP_SAVED', app: app('/a', 3) },
        { type: 'INSTANCE_REMOVED', taskId: 't1' },
      ]);
      const versions = new Map(expected.versions);
      versions.set('/a', [...(expected.versions.get('/a') ?? []), app('/a', 3)]);
      assertAppsState(await reopened.load(), {
        ...expected,
        apps: [app('/a', 3), app('/b', 1)],
        versions,
        instances: expected.instances.filter((i) => i.taskId !== 't1'),
      });
    });

    it("keeps a database of its own beside the master's at the same location", async () => {
      const location = await freshLocation();
      const apps = await openAt(location);
      const master = await openMasterAt(location);
      const expected = await seed(apps);
      const framework = {
        id: 'fw-1',
        info: { name: 'slipway-apps', id: { value: 'fw-1' }, user: 'slipway' },
        registeredAt: 1_750_000_000_000,
      };
      await master.write([
        { type: 'FRAMEWORK_SAVED', framework },
        { type: 'WEIGHT_SET', role: 'web', weight: 2 },
      ]);
      await apps.close();
      await master.close();

      // Reopened in the other order: each migrates and reads only its own tables, which fails if
      // the two shared a database (each would find migrations it does not know).
      const master2 = await openMasterAt(location);
      const apps2 = await openAt(location);
      const masterState = await master2.load();
      assert.deepEqual(masterState.frameworks, [framework]);
      assert.deepEqual(masterState.weights, { web: 2 });
      assert.deepEqual(masterState.tasks, []);
      assertAppsState(await apps2.load(), expected);
      await apps2.write([{ type: 'APP_REMOVED', appId: '/a' }]);
      assert.deepEqual((await master2.load()).frameworks, [framework]);
    });

    it('refuses to load an app without the keys a stored app has, naming it and the field', async () => {
      const { store } = await freshStore();
      const damaged = { ...app('/web', 1), versionInfo: { lastScalingAt: 'then' } } as unknown as StoredAppJson;
      await store.write([{ type: 'APP_SAVED', app: damaged }]);
      const failure = await rejectionOf(store.load());
      assert.equal(codeOf(failure), 'INVALID_STORED_DOCUMENT');
      assert.match(messageOf(failure), /^stored app \/web version \S+ cannot be read: versionInfo\.lastConfigChangeAt is missing/);
      await store.write([{ type: 'APP_REMOVED', appId: '/web' }]);
      assert.deepEqual((await store.load()).apps, []);
    });

    it('refuses to load or write once closed', async () => {
      const { store } = await freshStore();
      await store.close();
      assert.equal(codeOf(await rejectionOf(store.load())), 'STORE_CLOSED');
      assert.equal(codeOf(await rejectionOf(store.write([{ type: 'FRAMEWORK_ID', frameworkId: 'x' }]))), 'STORE_CLOSED');
    });
  });
}

// Fixtures ---------------------------------------------------------------------------------------

const V0 = Date.parse('2025-06-15T12:00:00.000Z');

/** Version `n` of an app: Marathon's versions are ISO-8601 timestamps. */
function app(id: string, n: number, fields: Partial<MarathonAppJson> = {}): StoredAppJson {
  const version = new Date(V0 + n * 1000).toISOString();
  return {
    id,
    cmd: 'sleep 1000',
    instances: 1,
    cpus: 0.5,
    mem: 64,
    ...fields,
    version,
    versionInfo: { lastScalingAt: version, lastConfigChangeAt: version },
  };
}

function deployment(id: string, doc: unknown = { id, steps: [] }): StoredDeployment {
  return { id, doc };
}

function instance(taskId: string, appId: string, doc: unknown = { state: 'TASK_RUNNING', agentId: 'a1' }): StoredInstance {
  return { taskId, appId, doc };
}

/** Writes a small state with a bit of everything, and returns it as `load` should. */
async function seed(store: AppsStore): Promise<StoredAppsState> {
  const a1 = app('/a', 1);
  const a2 = app('/a', 2, { instances: 2 });
  const b1 = app('/b', 1);
  const d1 = deployment('d1');
  const t1 = instance('t1', '/a');
  const t2 = instance('t2', '/b');
  await store.write([
    { type: 'FRAMEWORK_ID', frameworkId: 'fw-1' },
    { type: 'APP_SAVED', app: a1 },
    { type: 'APP_SAVED', app: a2 },
    { type: 'APP_SAVED', app: b1 },
    { type: 'DEPLOYMENT_SAVED', deployment: d1 },
    { type: 'INSTANCE_SAVED', instance: t1 },
    { type: 'INSTANCE_SAVED', instance: t2 },
  ]);
  return {
    frameworkId: 'fw-1',
    apps: [a2, b1],
    versions: new Map([
      ['/a', [a1, a2]],
      ['/b', [b1]],
    ]),
    deployments: [d1],
    instances: [t1, t2],
  };
}

// Assertions -------------------------------------------------------------------------------------

/**
 * Compares a loaded state with the expected one (missing fields of `expected` mean empty). The
 * port promises no order of apps, deployments, instances or app ids, so those are sorted by key
 * first; the order of each app's versions is promised (oldest first) and compared as it is.
 */
function assertAppsState(actual: StoredAppsState, expected: Partial<StoredAppsState>): void {
  const full: StoredAppsState = { apps: [], versions: new Map(), deployments: [], instances: [], ...expected };
  assert.deepEqual(normalize(actual), normalize(full));
}

function normalize(s: StoredAppsState): unknown {
  const by = <T>(key: (x: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
  return {
    frameworkId: s.frameworkId,
    apps: [...s.apps].sort(by((a) => a.id)),
    versions: [...s.versions].sort(by(([id]) => id)),
    deployments: [...s.deployments].sort(by((d) => d.id)),
    instances: [...s.instances].sort(by((i) => i.taskId)),
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

const APPS_STORE_MODULE = storeModuleUrl('kysely-apps-store.ts');

for (const t of STORE_TARGETS) {
  describeAppsStore(t.name, {
    fresh: () => t.fresh(),
    open: (location, options) => KyselyAppsStore.open(t.databases(location), options),
    openMaster: (location) => KyselyMasterStore.open(t.databases(location)),
    childProgram: (location) => `
      const { KyselyAppsStore } = await import(${JSON.stringify(APPS_STORE_MODULE)});
      const store = await KyselyAppsStore.open(${t.childDatabases(location)});
      const state = await store.load();
      process.stdout.write(JSON.stringify({ ...state, versions: [...state.versions] }));
      await store.close();
    `,
    remove: (location) => t.remove(location),
  });
}

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import type { AppsStore } from '../frameworks/apps/apps-store.ts';
import type { CiChange, CiStore, StoredBuild, StoredCiState } from '../frameworks/ci/ci-store.ts';
import type { MasterStore } from '../master/master-store.ts';
import { KyselyAppsStore } from './kysely-apps-store.ts';
import { KyselyCiStore } from './kysely-ci-store.ts';
import { KyselyMasterStore } from './kysely-master-store.ts';
import { STORE_TARGETS, storeModuleUrl } from './store-test-targets.ts';

/**
 * The conformance suite of `CiStore` (src/frameworks/ci/ci-store.ts): every implementation runs
 * the same tests (SQLite now, PostgreSQL later), as apps-store.conformance.test.ts does for the
 * services framework's store.
 *
 * A target makes fresh locations (a temp dir for SQLite, a database or schema for PostgreSQL),
 * opens a CI store at one (and the master's and the services framework's stores at the same one,
 * to show that they keep to themselves), and gives the program a new Node process runs to print
 * `load()` of a location as JSON. The targets are built at the end of this file from
 * `STORE_TARGETS` (store-test-targets.ts): a new kind of database is one entry there, and this
 * suite runs it. What only one implementation promises (SQLite's query plans) is tested beside
 * it (sqlite-ci-store.test.ts).
 */
interface CiStoreTarget {
  /** A new, empty location of its own, for one test. */
  fresh(): Promise<string>;
  open(location: string): Promise<CiStore>;
  /** The master's store at the same location (`slipway up` shares one data dir). */
  openMaster(location: string): Promise<MasterStore>;
  /** The services framework's store at the same location. */
  openApps(location: string): Promise<AppsStore>;
  /**
   * An ES module body for `node --import tsx --input-type=module -e`: prints `load()` as JSON,
   * with `lastNumbers` as the array of the Map's entries.
   */
  childProgram(location: string): string;
  /** Deletes a location made by `fresh` (its stores are closed by then). */
  remove(location: string): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const execFileAsync = promisify(execFile);

function describeCiStore(name: string, target: CiStoreTarget): void {
  describe(`CiStore conformance: ${name}`, () => {
    const locations: string[] = [];
    const open: { close(): Promise<void> }[] = [];

    async function freshLocation(): Promise<string> {
      const location = await target.fresh();
      locations.push(location);
      return location;
    }
    /** A store at a fresh location; closed and removed after the suite even if a test fails. */
    async function freshStore(): Promise<{ store: CiStore; location: string }> {
      const location = await freshLocation();
      return { store: await openAt(location), location };
    }
    async function openAt(location: string): Promise<CiStore> {
      const store = await target.open(location);
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
      assert.ok(!('frameworkId' in state), 'no frameworkId key until one is saved');
      assertCiState(state, {});
      assert.deepEqual(await store.builds('a', { limit: 10 }), []);
    });

    it('round-trips every change type', async () => {
      const { store } = await freshStore();
      const builds = [build('api', 1, true), build('api', 2, false), build('web', 1, false, { status: 'QUEUED' })];
      await store.write([
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-ci' },
        { type: 'JOB_SAVED', name: 'api', doc: { repo: 'git@example:api.git', pipeline: '.slipway.yml' } },
        { type: 'JOB_SAVED', name: 'web', doc: { repo: 'git@example:web.git' } },
        { type: 'EXECUTOR_SPEC_SAVED', label: 'linux', doc: { cpus: 2, mem: 2048, max: 4 } },
        { type: 'EXECUTOR_SPEC_SAVED', label: 'docker', doc: { cpus: 1, mem: 1024, image: 'debian' } },
        { type: 'EXECUTOR_SAVED', id: 'ex-1', doc: { label: 'linux', agentId: 'a1', state: 'IDLE' } },
        { type: 'EXECUTOR_SAVED', id: 'ex-2', doc: { label: 'docker', agentId: 'a2', state: 'BUSY' } },
        { type: 'TRIGGER_STATE_SAVED', job: 'api', doc: { tags: { 'v1.0': 'abc' }, lastCron: 1_750_000_000_000 } },
        { type: 'TRIGGER_STATE_SAVED', job: 'web', doc: { heads: { main: 'def' } } },
        ...builds.map(saved),
      ]);
      assertCiState(await store.load(), {
        frameworkId: 'fw-ci',
        jobs: [
          { name: 'api', doc: { repo: 'git@example:api.git', pipeline: '.slipway.yml' } },
          { name: 'web', doc: { repo: 'git@example:web.git' } },
        ],
        executorSpecs: [
          { label: 'docker', doc: { cpus: 1, mem: 1024, image: 'debian' } },
          { label: 'linux', doc: { cpus: 2, mem: 2048, max: 4 } },
        ],
        executors: [
          { id: 'ex-1', doc: { label: 'linux', agentId: 'a1', state: 'IDLE' } },
          { id: 'ex-2', doc: { label: 'docker', agentId: 'a2', state: 'BUSY' } },
        ],
        triggerStates: [
          { job: 'api', doc: { tags: { 'v1.0': 'abc' }, lastCron: 1_750_000_000_000 } },
          { job: 'web', doc: { heads: { main: 'def' } } },
        ],
        builds,
        lastNumbers: new Map([
          ['api', 2],
          ['web', 1],
        ]),
      });
      assert.deepEqual(await store.builds('api', { limit: 10 }), [builds[1], builds[0]]);

      await store.write([
        { type: 'JOB_REMOVED', name: 'web' },
        { type: 'EXECUTOR_SPEC_REMOVED', label: 'docker' },
        { type: 'EXECUTOR_REMOVED', id: 'ex-2' },
        // Removing what is not there is not an error.
        { type: 'JOB_REMOVED', name: 'never' },
        { type: 'EXECUTOR_SPEC_REMOVED', label: 'never' },
        { type: 'EXECUTOR_REMOVED', id: 'never' },
      ]);
      assertCiState(await store.load(), {
        frameworkId: 'fw-ci',
        jobs: [{ name: 'api', doc: { repo: 'git@example:api.git', pipeline: '.slipway.yml' } }],
        executorSpecs: [{ label: 'linux', doc: { cpus: 2, mem: 2048, max: 4 } }],
        executors: [{ id: 'ex-1', doc: { label: 'linux', agentId: 'a1', state: 'IDLE' } }],
        triggerStates: [{ job: 'api', doc: { tags: { 'v1.0': 'abc' }, lastCron: 1_750_000_000_000 } }],
        builds: builds.slice(0, 2),
        // The removed job's counter stays: a job created again under its name goes on from 1.
        lastNumbers: new Map([
          ['api', 2],
          ['web', 1],
        ]),
      });
    });

    it('keeps documents and keys exactly as they were saved', async () => {
      const { store } = await freshStore();
      const text = 'text "with" quotes\nand 框架 \\ back';
      const docs: unknown[] = [null, 0, -1.5e300, '', text, true, [], {}, [1, [2, { deep: [null] }]]];
      const keys = docs.map((_, i) => `naïve/key "${i}" with spaces`);
      const changes: CiChange[] = [];
      docs.forEach((doc, i) => {
        const key = keys[i] as string;
        changes.push(
          { type: 'JOB_SAVED', name: key, doc },
          { type: 'EXECUTOR_SPEC_SAVED', label: key, doc },
          { type: 'EXECUTOR_SAVED', id: key, doc },
          { type: 'TRIGGER_STATE_SAVED', job: key, doc },
          saved(build(key, i + 1, i % 2 === 0, doc)),
        );
      });
      await store.write(changes);
      assertCiState(await store.load(), {
        jobs: docs.map((doc, i) => ({ name: keys[i] as string, doc })),
        executorSpecs: docs.map((doc, i) => ({ label: keys[i] as string, doc })),
        executors: docs.map((doc, i) => ({ id: keys[i] as string, doc })),
        triggerStates: docs.map((doc, i) => ({ job: keys[i] as string, doc })),
        builds: docs.map((doc, i) => build(keys[i] as string, i + 1, i % 2 === 0, doc)),
        lastNumbers: new Map(keys.map((key, i) => [key, i + 1])),
      });
    });

    it('lets a later change of the same key win, within a batch and across batches', async () => {
      const { store } = await freshStore();
      await store.write([
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-1' },
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-2' },
        { type: 'JOB_SAVED', name: 'a', doc: 1 },
        { type: 'JOB_SAVED', name: 'a', doc: 2 },
        { type: 'EXECUTOR_SPEC_SAVED', label: 'l', doc: 1 },
        { type: 'EXECUTOR_SPEC_REMOVED', label: 'l' },
        { type: 'EXECUTOR_SPEC_SAVED', label: 'm', doc: 1 },
        { type: 'EXECUTOR_SPEC_REMOVED', label: 'm' },
        { type: 'EXECUTOR_SPEC_SAVED', label: 'm', doc: 2 },
        { type: 'EXECUTOR_SAVED', id: 'e', doc: 'starting' },
        { type: 'EXECUTOR_SAVED', id: 'e', doc: 'idle' },
        { type: 'TRIGGER_STATE_SAVED', job: 'a', doc: 'seen 1' },
        { type: 'TRIGGER_STATE_SAVED', job: 'a', doc: 'seen 2' },
        // A build queued, started and finished within one batch.
        saved(build('a', 1, false, 'queued')),
        saved(build('a', 1, false, 'running')),
        saved(build('a', 1, true, 'success')),
        // One finished and then not (a retried build): the later change wins there too.
        saved(build('a', 2, true, 'failure')),
        saved(build('a', 2, false, 'retrying')),
      ]);
      assertCiState(await store.load(), {
        frameworkId: 'fw-2',
        jobs: [{ name: 'a', doc: 2 }],
        executorSpecs: [{ label: 'm', doc: 2 }],
        executors: [{ id: 'e', doc: 'idle' }],
        triggerStates: [{ job: 'a', doc: 'seen 2' }],
        builds: [build('a', 1, true, 'success'), build('a', 2, false, 'retrying')],
        lastNumbers: new Map([['a', 2]]),
      });

      await store.write([
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-3' },
        { type: 'EXECUTOR_REMOVED', id: 'e' },
        saved(build('a', 2, true, 'success')),
        // A job removed and created again in one batch: the new job has none of the old one's
        // builds or trigger state, and a build saved after the removal is the new job's.
        { type: 'JOB_REMOVED', name: 'a' },
        { type: 'JOB_SAVED', name: 'a', doc: 3 },
        saved(build('a', 3, false, 'queued')),
      ]);
      assertCiState(await store.load(), {
        frameworkId: 'fw-3',
        jobs: [{ name: 'a', doc: 3 }],
        executorSpecs: [{ label: 'm', doc: 2 }],
        builds: [build('a', 3, false, 'queued')],
        lastNumbers: new Map([['a', 3]]),
      });
      assert.deepEqual(await store.builds('a', { limit: 10 }), [build('a', 3, false, 'queued')]);
    });

    it("removes a job's builds and trigger state with it, keeps its number counter, and touches no other job", async () => {
      const { store, location } = await freshStore();
      // `ab` starts like `a`: removal is by exact name.
      const others = [build('ab', 1, true), build('ab', 2, false), build('b', 1, true)];
      await store.write([
        { type: 'JOB_SAVED', name: 'a', doc: 'a' },
        { type: 'JOB_SAVED', name: 'ab', doc: 'ab' },
        { type: 'JOB_SAVED', name: 'b', doc: 'b' },
        { type: 'TRIGGER_STATE_SAVED', job: 'a', doc: 'a seen' },
        { type: 'TRIGGER_STATE_SAVED', job: 'ab', doc: 'ab seen' },
        ...[1, 2, 3, 4, 5, 6].map((n) => saved(build('a', n, true))),
        saved(build('a', 7, false)),
        ...others.map(saved),
      ]);
      await store.write([{ type: 'JOB_REMOVED', name: 'a' }]);

      const expected: Partial<StoredCiState> = {
        jobs: [
          { name: 'ab', doc: 'ab' },
          { name: 'b', doc: 'b' },
        ],
        triggerStates: [{ job: 'ab', doc: 'ab seen' }],
        builds: others,
        lastNumbers: new Map([
          ['a', 7],
          ['ab', 2],
          ['b', 1],
        ]),
      };
      assertCiState(await store.load(), expected);
      assert.deepEqual(await store.builds('a', { limit: 100 }), []);
      assert.deepEqual(await store.builds('ab', { limit: 100 }), [others[1], others[0]]);

      // Still there after a reopen; a job of the same name starts with an empty history, and its
      // counter goes on from the old job's (the framework numbers the next build 8, not 1).
      await store.close();
      const reopened = await openAt(location);
      assertCiState(await reopened.load(), expected);
      await reopened.write([{ type: 'JOB_SAVED', name: 'a', doc: 'a again' }, saved(build('a', 8, false))]);
      const state = await reopened.load();
      assert.equal(state.lastNumbers.get('a'), 8);
      assert.deepEqual(await reopened.builds('a', { limit: 100 }), [build('a', 8, false)]);
    });

    it('counts the numbers of unfinished builds too, and never lowers a counter', async () => {
      const { store } = await freshStore();
      await store.write([saved(build('a', 5, false)), saved(build('a', 3, true))]);
      assert.equal((await store.load()).lastNumbers.get('a'), 5);
      // An older build saved again (finished late), in another batch.
      await store.write([saved(build('a', 4, true)), saved(build('a', 2, true))]);
      const state = await store.load();
      assert.equal(state.lastNumbers.get('a'), 5);
      assert.deepEqual(state.builds, [build('a', 4, true), build('a', 5, false)]);
      // Numbers are compared as numbers, not as text ('10' < '9' as text).
      await store.write([saved(build('a', 10, true)), saved(build('a', 9, true))]);
      const after = await store.load();
      assert.equal(after.lastNumbers.get('a'), 10);
      assert.deepEqual(after.builds, [build('a', 5, false), build('a', 10, true)]);
    });

    it("loads every unfinished build and only each job's finished build with the highest number", async () => {
      const { store } = await freshStore();
      const jobs = 12;
      const perJob = 150;
      const changes: CiChange[] = [];
      const expected: StoredBuild[] = [];
      for (let j = 0; j < jobs; j++) {
        const job = `job-${String(j).padStart(2, '0')}`;
        // Job k's builds above perJob - k are still running (none for job 0); every third job
        // also has an old build that never finished (an orphan the framework will reconcile).
        for (let n = 1; n <= perJob; n++) {
          const running = n > perJob - j || (j % 3 === 1 && n === 7);
          changes.push(saved(build(job, n, !running)));
          if (running) expected.push(build(job, n, false));
        }
        expected.push(build(job, perJob - j, true));
      }
      // A job whose builds all run: no finished one to load.
      changes.push(saved(build('only-running', 1, false)), saved(build('only-running', 2, false)));
      expected.push(build('only-running', 1, false), build('only-running', 2, false));
      // Builds that finished out of order: 20 finished first, then 19. The last finished build is
      // the one with the highest number, whichever was saved last.
      changes.push(saved(build('out-of-order', 20, true)), saved(build('out-of-order', 19, true)));
      expected.push(build('out-of-order', 20, true));
      await store.write(changes);

      const state = await store.load();
      assertCiState(state, { builds: expected, lastNumbers: state.lastNumbers });
      assert.equal(state.lastNumbers.size, jobs + 2);
      assert.equal(state.lastNumbers.get('job-00'), perJob);
      assert.equal(state.lastNumbers.get('out-of-order'), 20);

      // The finished build with the highest number started again: the next one down is the last
      // finished one now.
      await store.write([saved(build('job-00', perJob, false, 'rerun'))]);
      const rerun = (await store.load()).builds.filter((b) => b.job === 'job-00');
      assert.deepEqual(rerun, [build('job-00', perJob - 1, true), build('job-00', perJob, false, 'rerun')]);
    });

    it('loads what a model of the contract says, after any sequence of batches', async () => {
      const job = fc.constantFrom('a', 'b', 'c');
      const change: fc.Arbitrary<CiChange> = fc.oneof(
        {
          arbitrary: fc
            .record({ job, number: fc.integer({ min: 1, max: 12 }), finished: fc.boolean(), doc: fc.nat(9) })
            .map((b) => saved(b)),
          weight: 6,
        },
        { arbitrary: job.map((name): CiChange => ({ type: 'JOB_REMOVED', name })), weight: 1 },
        { arbitrary: fc.tuple(job, fc.nat(9)).map(([name, doc]): CiChange => ({ type: 'JOB_SAVED', name, doc })), weight: 1 },
        {
          arbitrary: fc.tuple(job, fc.nat(9)).map(([j, doc]): CiChange => ({ type: 'TRIGGER_STATE_SAVED', job: j, doc })),
          weight: 1,
        },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(change, { maxLength: 12 }), { maxLength: 6 }), async (batches) => {
          const { store } = await freshStore();
          const model = new CiModel();
          try {
            for (const batch of batches) {
              await store.write(batch);
              batch.forEach((c) => model.apply(c));
            }
            const state = await store.load();
            assertCiState(state, model.state());
            for (const j of ['a', 'b', 'c']) {
              assert.deepEqual(await store.builds(j, { limit: 100 }), model.history(j));
            }
          } finally {
            await store.close();
          }
        }),
        { numRuns: 40 },
      );
    });

    it("pages through a job's builds newest first, by limit and before", async () => {
      const { store } = await freshStore();
      // Numbers with gaps, some builds unfinished, saved in no particular order, beside another
      // job's builds of the same numbers.
      const numbers = [25, 3, 1, 12, 9, 10, 11, 2, 20, 21, 22, 23, 24, 4, 5, 13];
      const mine = numbers.map((n) => build('a', n, n % 4 !== 0));
      await store.write([...mine.map(saved), ...numbers.map((n) => saved(build('b', n, true, 'other')))]);
      const newestFirst = [...mine].sort((x, y) => y.number - x.number);

      // Every page, then one past the end (bounded, so that a `before` taken as inclusive fails
      // rather than pages forever).
      const pages: StoredBuild[][] = [];
      let before: number | undefined;
      for (;;) {
        const page = await store.builds('a', before === undefined ? { limit: 5 } : { limit: 5, before });
        if (page.length === 0) break;
        assert.ok(page.length <= 5);
        pages.push(page);
        assert.ok(pages.length <= numbers.length, 'paging does not end');
        before = (page.at(-1) as StoredBuild).number;
      }
      assert.deepEqual(
        pages.map((p) => p.map((b) => b.number)),
        [
          [25, 24, 23, 22, 21],
          [20, 13, 12, 11, 10],
          [9, 5, 4, 3, 2],
          [1],
        ],
      );
      assert.deepEqual(pages.flat(), newestFirst);

      assert.deepEqual(await store.builds('a', { limit: 100 }), newestFirst);
      assert.deepEqual(await store.builds('a', { limit: 3, before: 12 }), [
        build('a', 11, true),
        build('a', 10, true),
        build('a', 9, true),
      ]);
      // `before` need not be a build's number, and is exclusive.
      assert.deepEqual(
        (await store.builds('a', { limit: 3, before: 20 })).map((b) => b.number),
        [13, 12, 11],
      );
      assert.deepEqual(
        (await store.builds('a', { limit: 2, before: 1_000_000 })).map((b) => b.number),
        [25, 24],
      );
      assert.deepEqual(await store.builds('a', { limit: 5, before: 1 }), []);
      assert.deepEqual(await store.builds('a', { limit: 5, before: 0 }), []);
      assert.deepEqual(await store.builds('a', { limit: 0 }), []);
      assert.deepEqual(await store.builds('unknown', { limit: 5 }), []);
      assert.deepEqual(await store.builds('', { limit: 5 }), []);
    });

    it('refuses paging options that are not whole numbers', async () => {
      const { store } = await freshStore();
      await store.write([saved(build('a', 1, true))]);
      const refused = [
        { limit: -1 },
        { limit: 1.5 },
        { limit: Number.NaN },
        { limit: Infinity },
        { limit: 2, before: 2.5 },
        { limit: 2, before: Number.NaN },
      ];
      for (const options of refused) {
        await assert.rejects(store.builds('a', options), RangeError, JSON.stringify(options));
      }
      assert.deepEqual(await store.builds('a', { limit: 1 }), [build('a', 1, true)]);
    });

    it('applies nothing of a batch that fails midway, names the failing change, and stays usable', async () => {
      const { store } = await freshStore();
      const before = await seed(store);
      const historyBefore = await store.builds('a', { limit: 100 });
      // A change of every type before the bad one, each of which would show if it were applied:
      // a new build with a higher number would move the counter, the removal would delete builds.
      const head: CiChange[] = [
        { type: 'FRAMEWORK_ID', frameworkId: 'fw-other' },
        { type: 'JOB_SAVED', name: 'c', doc: 'new' },
        { type: 'EXECUTOR_SPEC_SAVED', label: 'linux', doc: 'changed' },
        { type: 'EXECUTOR_SPEC_REMOVED', label: 'linux' },
        { type: 'EXECUTOR_SAVED', id: 'e2', doc: 'new' },
        { type: 'EXECUTOR_REMOVED', id: 'e1' },
        { type: 'TRIGGER_STATE_SAVED', job: 'b', doc: 'new' },
        saved(build('a', 99, false)),
        saved(build('a', 3, true, 'finished')),
        { type: 'JOB_REMOVED', name: 'b' },
      ];
      const tail: CiChange[] = [saved(build('c', 1, false))];
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const bad: [CiChange, RegExp][] = [
        [saved(build('a', 4, true, { size: 1n })), /change 11 of 12 \(BUILD_SAVED of build 4 of job a\)/],
        [{ type: 'JOB_SAVED', name: 'c', doc: cyclic }, /change 11 of 12 \(JOB_SAVED of job c\)/],
        [{ type: 'EXECUTOR_SPEC_SAVED', label: 'x', doc: undefined }, /\(EXECUTOR_SPEC_SAVED of label x\)/],
        [{ type: 'EXECUTOR_SAVED', id: 'x', doc: [1n] }, /\(EXECUTOR_SAVED of executor x\)/],
        [{ type: 'TRIGGER_STATE_SAVED', job: 'a', doc: { at: 2n } }, /\(TRIGGER_STATE_SAVED of job a\)/],
        // Numbers and flags the store keys on: refused alike by every dialect.
        [saved(build('a', 4.5, true)), /\(BUILD_SAVED of build 4.5 of job a\)/],
        [saved(build('a', 0, true)), /\(BUILD_SAVED of build 0 of job a\)/],
        [saved({ ...build('a', 4, true), finished: 'yes' } as unknown as StoredBuild), /\(BUILD_SAVED of build 4 of job a\)/],
      ];
      for (const [change, message] of bad) {
        const failure = await rejectionOf(store.write([...head, change, ...tail]));
        assert.equal(codeOf(failure), 'STORE_WRITE_FAILED');
        assert.match(messageOf(failure), message);
        assertCiState(await store.load(), before);
        assert.deepEqual(await store.builds('a', { limit: 100 }), historyBefore);
      }

      // Still usable, and the batch without the bad change goes in.
      await store.write([...head, ...tail]);
      assertCiState(await store.load(), {
        frameworkId: 'fw-other',
        jobs: [
          { name: 'a', doc: 'job a' },
          { name: 'c', doc: 'new' },
        ],
        executors: [{ id: 'e2', doc: 'new' }],
        triggerStates: [{ job: 'a', doc: 'a seen' }],
        builds: [build('a', 3, true, 'finished'), build('a', 99, false), build('c', 1, false)],
        lastNumbers: new Map([
          ['a', 99],
          ['b', 1],
          ['c', 1],
        ]),
      });
    });

    it('applies nothing of a batch when the database rejects one of its changes, and names that change', async () => {
      const { store } = await freshStore();
      const before = await seed(store);
      // A job without a name: the type forbids it, a bug could still produce it at run time, and
      // the schema refuses it. It comes last, after changes that insert, update and delete rows in
      // every table, so that all of them must be rolled back.
      const broken = { type: 'JOB_SAVED', name: null, doc: 'x' } as unknown as CiChange;
      const failure = await rejectionOf(
        store.write([
          { type: 'FRAMEWORK_ID', frameworkId: 'fw-other' },
          saved(build('a', 50, true)),
          saved(build('b', 2, false)),
          { type: 'JOB_REMOVED', name: 'a' },
          { type: 'EXECUTOR_REMOVED', id: 'e1' },
          { type: 'EXECUTOR_SPEC_REMOVED', label: 'linux' },
          { type: 'TRIGGER_STATE_SAVED', job: 'b', doc: 'x' },
          broken,
        ]),
      );
      assert.equal(codeOf(failure), 'STORE_WRITE_FAILED');
      assert.match(messageOf(failure), /change 8 of 8 \(JOB_SAVED of job null\)/);
      assertCiState(await store.load(), before);
    });

    it('goes on with the writes queued behind one that fails', async () => {
      const { store } = await freshStore();
      const broken: CiChange = { type: 'EXECUTOR_SAVED', id: 'bad', doc: 1n };
      const first = store.write([{ type: 'EXECUTOR_SAVED', id: 'a', doc: 1 }]);
      const second = rejectionOf(store.write([{ type: 'EXECUTOR_SAVED', id: 'b', doc: 1 }, broken]));
      const third = store.write([{ type: 'EXECUTOR_SAVED', id: 'c', doc: 1 }]);
      await first;
      assert.equal(codeOf(await second), 'STORE_WRITE_FAILED');
      await third;
      assertCiState(await store.load(), {
        executors: [
          { id: 'a', doc: 1 },
          { id: 'c', doc: 1 },
        ],
      });
    });

    it('commits concurrent writes one at a time, in call order, and reads see the writes called before them', async () => {
      const { store } = await freshStore();
      // Earlier batches are larger, so if batches ran side by side the early ones would commit
      // last and their saves of the shared keys would win.
      const n = 10;
      const settled: number[] = [];
      const writes: Promise<void>[] = [];
      let loadAfterHalf: Promise<StoredCiState> | undefined;
      let pageAfterHalf: Promise<StoredBuild[]> | undefined;
      for (let i = 0; i < n; i++) {
        const batch: CiChange[] = [];
        for (let k = 0; k < (n - i) * 20; k++) batch.push({ type: 'EXECUTOR_SAVED', id: `e-${i}-${k}`, doc: i });
        batch.push({ type: 'JOB_SAVED', name: 'shared', doc: i });
        batch.push(saved(build('shared', i + 1, false, i)));
        batch.push({ type: 'FRAMEWORK_ID', frameworkId: `fw-${i}` });
        writes.push(store.write(batch).then(() => void settled.push(i)));
        if (i === n / 2 - 1) {
          loadAfterHalf = store.load();
          pageAfterHalf = store.builds('shared', { limit: 100 });
        }
      }
      await Promise.all(writes);

      assert.deepEqual(settled, [...Array(n).keys()]);
      const state = await store.load();
      assert.equal(state.frameworkId, `fw-${n - 1}`);
      assert.deepEqual(state.jobs, [{ name: 'shared', doc: n - 1 }]);
      assert.equal(state.executors.length, (20 * n * (n + 1)) / 2);
      assert.equal(state.lastNumbers.get('shared'), n);

      assert.ok(loadAfterHalf && pageAfterHalf);
      const half = await loadAfterHalf;
      assert.equal(half.frameworkId, `fw-${n / 2 - 1}`);
      assert.equal(half.lastNumbers.get('shared'), n / 2);
      assert.deepEqual(
        (await pageAfterHalf).map((b) => b.number),
        [5, 4, 3, 2, 1],
      );
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
      const printed = JSON.parse(stdout) as Omit<StoredCiState, 'lastNumbers'> & { lastNumbers: [string, number][] };
      assertCiState({ ...printed, lastNumbers: new Map(printed.lastNumbers) }, expected);

      const reopened = await openAt(location);
      assertCiState(await reopened.load(), expected);
      // And writable again, on top of what was there.
      await reopened.write([saved(build('a', 4, false)), { type: 'EXECUTOR_REMOVED', id: 'e1' }]);
      assertCiState(await reopened.load(), {
        ...expected,
        executors: [],
        builds: [...expected.builds, build('a', 4, false)],
        lastNumbers: new Map([...expected.lastNumbers, ['a', 4]]),
      });
    });

    it("keeps a database of its own beside the master's and the services framework's at the same location", async () => {
      const location = await freshLocation();
      const ci = await openAt(location);
      const master = await target.openMaster(location);
      open.push(master);
      const apps = await target.openApps(location);
      open.push(apps);
      const expected = await seed(ci);
      await master.write([{ type: 'WEIGHT_SET', role: 'ci', weight: 3 }]);
      await apps.write([{ type: 'FRAMEWORK_ID', frameworkId: 'fw-apps' }]);
      await Promise.all([ci.close(), master.close(), apps.close()]);

      // Reopened in the other order: each migrates and reads only its own tables, which fails if
      // two shared a database (each would find migrations it does not know).
      const apps2 = await target.openApps(location);
      open.push(apps2);
      const master2 = await target.openMaster(location);
      open.push(master2);
      const ci2 = await openAt(location);
      assertCiState(await ci2.load(), expected);
      assert.deepEqual((await master2.load()).weights, { ci: 3 });
      assert.equal((await apps2.load()).frameworkId, 'fw-apps');
      await ci2.write([{ type: 'FRAMEWORK_ID', frameworkId: 'fw-ci-2' }]);
      assert.equal((await apps2.load()).frameworkId, 'fw-apps');
    });

    it('refuses to load, write or page once closed', async () => {
      const { store } = await freshStore();
      await store.close();
      assert.equal(codeOf(await rejectionOf(store.load())), 'STORE_CLOSED');
      assert.equal(codeOf(await rejectionOf(store.write([{ type: 'FRAMEWORK_ID', frameworkId: 'x' }]))), 'STORE_CLOSED');
      assert.equal(codeOf(await rejectionOf(store.builds('a', { limit: 1 }))), 'STORE_CLOSED');
    });
  });
}

// Fixtures ---------------------------------------------------------------------------------------

function build(job: string, number: number, finished: boolean, doc?: unknown): StoredBuild {
  const defaultDoc = { status: finished ? 'SUCCESS' : 'RUNNING', commit: `c${number}` };
  return { job, number, finished, doc: doc === undefined ? defaultDoc : doc };
}

function saved(b: StoredBuild): CiChange {
  return { type: 'BUILD_SAVED', build: b };
}

/** Writes a small state with a bit of everything, and returns it as `load` should. */
async function seed(store: CiStore): Promise<StoredCiState> {
  await store.write([
    { type: 'FRAMEWORK_ID', frameworkId: 'fw-1' },
    { type: 'JOB_SAVED', name: 'a', doc: 'job a' },
    { type: 'JOB_SAVED', name: 'b', doc: 'job b' },
    { type: 'EXECUTOR_SPEC_SAVED', label: 'linux', doc: { cpus: 1 } },
    { type: 'EXECUTOR_SAVED', id: 'e1', doc: { label: 'linux' } },
    { type: 'TRIGGER_STATE_SAVED', job: 'a', doc: 'a seen' },
    { type: 'TRIGGER_STATE_SAVED', job: 'b', doc: 'b seen' },
    saved(build('a', 1, true)),
    saved(build('a', 2, true)),
    saved(build('a', 3, false)),
    saved(build('b', 1, false)),
  ]);
  return {
    frameworkId: 'fw-1',
    jobs: [
      { name: 'a', doc: 'job a' },
      { name: 'b', doc: 'job b' },
    ],
    executorSpecs: [{ label: 'linux', doc: { cpus: 1 } }],
    executors: [{ id: 'e1', doc: { label: 'linux' } }],
    triggerStates: [
      { job: 'a', doc: 'a seen' },
      { job: 'b', doc: 'b seen' },
    ],
    builds: [build('a', 2, true), build('a', 3, false), build('b', 1, false)],
    lastNumbers: new Map([
      ['a', 3],
      ['b', 1],
    ]),
  };
}

/** The contract of `CiStore` as plain data, for jobs, trigger states and builds. */
class CiModel {
  private readonly jobs = new Map<string, unknown>();
  private readonly triggers = new Map<string, unknown>();
  private readonly builds = new Map<string, Map<number, StoredBuild>>();
  private readonly counters = new Map<string, number>();

  apply(change: CiChange): void {
    switch (change.type) {
      case 'JOB_SAVED':
        this.jobs.set(change.name, change.doc);
        return;
      case 'JOB_REMOVED':
        this.jobs.delete(change.name);
        this.triggers.delete(change.name);
        this.builds.delete(change.name);
        return;
      case 'TRIGGER_STATE_SAVED':
        this.triggers.set(change.job, change.doc);
        return;
      case 'BUILD_SAVED': {
        const { job, number } = change.build;
        let builds = this.builds.get(job);
        if (!builds) this.builds.set(job, (builds = new Map()));
        builds.set(number, { ...change.build });
        this.counters.set(job, Math.max(this.counters.get(job) ?? 0, number));
        return;
      }
      default:
        throw new Error(`the model does not know ${change.type}`);
    }
  }

  state(): Partial<StoredCiState> {
    const loaded: StoredBuild[] = [];
    for (const builds of this.builds.values()) {
      const all = [...builds.values()];
      loaded.push(...all.filter((b) => !b.finished));
      const finished = all.filter((b) => b.finished).sort((x, y) => y.number - x.number);
      if (finished[0]) loaded.push(finished[0]);
    }
    return {
      jobs: [...this.jobs].map(([name, doc]) => ({ name, doc })),
      triggerStates: [...this.triggers].map(([job, doc]) => ({ job, doc })),
      builds: loaded,
      lastNumbers: new Map(this.counters),
    };
  }

  history(job: string): StoredBuild[] {
    return [...(this.builds.get(job)?.values() ?? [])].sort((x, y) => y.number - x.number);
  }
}

// Assertions -------------------------------------------------------------------------------------

/**
 * Compares a loaded state with the expected one (missing fields of `expected` mean empty). The
 * port promises no order of any list, so each is sorted by key first (builds by job, then number).
 */
function assertCiState(actual: StoredCiState, expected: Partial<StoredCiState>): void {
  const full: StoredCiState = {
    jobs: [],
    executorSpecs: [],
    executors: [],
    triggerStates: [],
    builds: [],
    lastNumbers: new Map(),
    ...expected,
  };
  assert.ok(actual.lastNumbers instanceof Map, 'lastNumbers is a Map');
  assert.deepEqual(normalize(actual), normalize(full));
}

function normalize(s: StoredCiState): unknown {
  const by =
    <T>(key: (x: T) => string) =>
    (a: T, b: T) =>
      key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  return {
    frameworkId: s.frameworkId,
    jobs: [...s.jobs].sort(by((j) => j.name)),
    executorSpecs: [...s.executorSpecs].sort(by((e) => e.label)),
    executors: [...s.executors].sort(by((e) => e.id)),
    triggerStates: [...s.triggerStates].sort(by((t) => t.job)),
    builds: [...s.builds].sort((a, b) => (a.job < b.job ? -1 : a.job > b.job ? 1 : a.number - b.number)),
    lastNumbers: [...s.lastNumbers].sort(by(([job]) => job)),
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

const CI_STORE_MODULE = storeModuleUrl('kysely-ci-store.ts');

for (const t of STORE_TARGETS) {
  describeCiStore(t.name, {
    fresh: () => t.fresh(),
    open: (location) => KyselyCiStore.open(t.databases(location)),
    openMaster: (location) => KyselyMasterStore.open(t.databases(location)),
    openApps: (location) => KyselyAppsStore.open(t.databases(location)),
    childProgram: (location) => `
      const { KyselyCiStore } = await import(${JSON.stringify(CI_STORE_MODULE)});
      const store = await KyselyCiStore.open(${t.childDatabases(location)});
      const state = await store.load();
      process.stdout.write(JSON.stringify({ ...state, lastNumbers: [...state.lastNumbers] }));
      await store.close();
    `,
    remove: (location) => t.remove(location),
  });
}

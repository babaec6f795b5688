import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, sql } from 'kysely';
import type { Compilable, Kysely } from 'kysely';
import { readBuild, type Build } from '../frameworks/ci/build.ts';
import type { CiDatabase } from './ci-database.ts';
import { KyselyCiStore, selectBuildPage, selectLastFinishedBuilds, selectUnfinishedBuilds } from './kysely-ci-store.ts';
import { SQLITE_FILES, openSqlite, sqliteDatabases } from './sqlite-database.ts';
import type { StoreDatabase } from './store-database.ts';

const CI_DATABASE_FILE = SQLITE_FILES.ci;

/**
 * What only the CI store over SQLite promises, beside the dialect-neutral conformance suite
 * (ci-store.conformance.test.ts): its file, and that `load` and `builds` stay cheap however long
 * the histories grow. That is checked by the query plans, not by timing (a timed assertion would
 * fail on a slow machine); the time of a `load` over 100,000 builds is printed as a figure.
 */
describe('KyselyCiStore over SQLite', () => {
  const JOBS = 100;
  const BUILDS_PER_JOB = 1_000;
  let dir: string;
  let database: StoreDatabase<CiDatabase>;
  let db: Kysely<CiDatabase>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipway-ci-sqlite-'));
    const store = await KyselyCiStore.open(sqliteDatabases(dir));
    await store.write([{ type: 'FRAMEWORK_ID', frameworkId: 'fw-ci' }]);
    await store.close();

    // 100,000 builds, written straight into the file (the store's write path is the conformance
    // suite's business; through it this would take seconds). Every job's last build still runs,
    // and every tenth job also has an old build that never finished.
    const raw = new SqliteDatabase(join(dir, CI_DATABASE_FILE));
    const insertBuild = raw.prepare('insert into builds (job, number, finished, doc) values (?, ?, ?, ?)');
    const insertNumber = raw.prepare('insert into job_numbers (job, last_number) values (?, ?)');
    raw.transaction(() => {
      for (let j = 0; j < JOBS; j++) {
        const job = `job-${j}`;
        insertNumber.run(job, BUILDS_PER_JOB);
        for (let n = 1; n <= BUILDS_PER_JOB; n++) {
          const running = n === BUILDS_PER_JOB || (j % 10 === 0 && n === 17);
          insertBuild.run(job, n, running ? 0 : 1, JSON.stringify(buildDoc(job, n, running)));
        }
      }
    })();
    raw.close();
    database = openSqlite<CiDatabase>(join(dir, CI_DATABASE_FILE));
    db = database.db;
  });

  after(async () => {
    await database.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The `detail` lines of SQLite's plan for a query the store runs. */
  async function planOf(query: Compilable): Promise<string[]> {
    const compiled = query.compile();
    const { rows } = await db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${compiled.sql}`, [...compiled.parameters]),
    );
    return rows.map((r) => r.detail);
  }

  /** Fails if the plan reads the builds table or an index of it from end to end. */
  function assertNoScanOfBuilds(plan: string[]): void {
    const scans = plan.filter((line) => /^SCAN (builds|b|f)\b/.test(line));
    assert.deepEqual(scans, [], `the plan scans the builds:\n${plan.join('\n')}`);
  }

  function assertHasStep(plan: string[], step: RegExp): void {
    assert.ok(
      plan.some((line) => step.test(line)),
      `no step like ${step} in the plan:\n${plan.join('\n')}`,
    );
  }

  async function assertPlans(): Promise<void> {
    const unfinished = await planOf(selectUnfinishedBuilds(db));
    assertNoScanOfBuilds(unfinished);
    assertHasStep(unfinished, /^SEARCH builds USING INDEX builds_by_finished \(finished=\?\)/);
    assert.ok(!unfinished.some((l) => l.includes('TEMP B-TREE')), `sorts in a temp b-tree:\n${unfinished.join('\n')}`);

    // One seek per job for its highest finished number, one by primary key for the build.
    const lastFinished = await planOf(selectLastFinishedBuilds(db));
    assertNoScanOfBuilds(lastFinished);
    assertHasStep(lastFinished, /^SEARCH f USING COVERING INDEX builds_by_finished \(finished=\? AND job=\?\)/);
    assertHasStep(lastFinished, /^SEARCH b USING .*INDEX \S+ \(job=\? AND number=\?\)/);

    const page = await planOf(selectBuildPage(db, 'job-1', { limit: 20, before: 500 }));
    assertNoScanOfBuilds(page);
    assertHasStep(page, /^SEARCH builds USING .*INDEX \S+ \(job=\? AND number<\?\)/);
    assert.ok(!page.some((l) => l.includes('TEMP B-TREE')), `sorts in a temp b-tree:\n${page.join('\n')}`);
    const firstPage = await planOf(selectBuildPage(db, 'job-1', { limit: 20 }));
    assertNoScanOfBuilds(firstPage);
    assert.ok(!firstPage.some((l) => l.includes('TEMP B-TREE')), `sorts in a temp b-tree:\n${firstPage.join('\n')}`);
  }

  it("keeps its database in ci.db, apart from the master's slipway.db and the services framework's apps.db", async () => {
    const files = await readdir(dir);
    assert.ok(files.includes('ci.db'), files.join(', '));
    assert.ok(!files.includes('slipway.db') && !files.includes('apps.db'), files.join(', '));
  });

  it('plans load and paging as index seeks, not scans of the builds', async () => {
    await assertPlans();
  });

  it('keeps those plans once SQLite has statistics of the tables (ANALYZE)', async () => {
    await sql`analyze`.execute(db);
    await assertPlans();
  });

  it('loads 100,000 builds over 100 jobs as the unfinished ones and one finished build per job', async (t) => {
    const store = await KyselyCiStore.open(sqliteDatabases(dir));
    try {
      const started = performance.now();
      const state = await store.load();
      const loadMs = performance.now() - started;

      // What CI does with them at start: each is read back through readBuild, not cast.
      const readStarted = performance.now();
      const builds = state.builds.map((b) => readBuild(b.doc));
      const readMs = performance.now() - readStarted;

      const pageStarted = performance.now();
      const page = await store.builds('job-42', { limit: 50, before: 600 });
      const pageMs = performance.now() - pageStarted;

      // The bound of readBuild's cost: every one of the 100,000 documents, parsed and read.
      const texts = (await db.selectFrom('builds').select('doc').execute()).map((r) => r.doc);
      const parseStarted = performance.now();
      for (const text of texts) JSON.parse(text);
      const parseMs = performance.now() - parseStarted;
      const allStarted = performance.now();
      for (const text of texts) readBuild(JSON.parse(text));
      const allMs = performance.now() - allStarted;

      assert.equal(state.frameworkId, 'fw-ci');
      const running = JOBS + JOBS / 10;
      assert.equal(state.builds.length, running + JOBS);
      assert.equal(state.builds.filter((b) => b.finished).length, JOBS);
      for (const b of state.builds) {
        if (b.finished) assert.equal(b.number, BUILDS_PER_JOB - 1, `${b.job}'s last finished build`);
        else assert.ok(b.number === BUILDS_PER_JOB || b.number === 17, `${b.job} ${b.number} runs`);
      }
      assert.equal(state.lastNumbers.size, JOBS);
      assert.ok([...state.lastNumbers.values()].every((n) => n === BUILDS_PER_JOB));
      assert.deepEqual(builds[0], buildDoc(builds[0]!.job, builds[0]!.number, !state.builds[0]!.finished));
      assert.deepEqual(
        page.map((b) => b.number),
        Array.from({ length: 50 }, (_, i) => 599 - i),
      );

      // A figure, not an assertion: with the plans above it stays in milliseconds.
      t.diagnostic(
        `load of ${JOBS * BUILDS_PER_JOB} builds over ${JOBS} jobs: ${loadMs.toFixed(1)} ms ` +
          `(${state.builds.length} builds loaded, readBuild of them: ${readMs.toFixed(1)} ms); a page of 50: ${pageMs.toFixed(1)} ms; ` +
          `readBuild of all ${texts.length} documents: ${allMs.toFixed(0)} ms with JSON.parse (JSON.parse alone: ${parseMs.toFixed(0)} ms)`,
      );
    } finally {
      await store.close();
    }
  });
});

/** A build document as CI stores it, of a two-step pipeline; finished ones succeeded. */
function buildDoc(job: string, number: number, running: boolean): Build {
  const queuedAt = 1_700_000_000_000 + number * 60_000;
  const step = (name: string, done: boolean) =>
    done ? { name, status: 'success' as const, exitCode: 0, startedAt: queuedAt + 1_000, finishedAt: queuedAt + 2_000, durationMs: 1_000 } : { name, status: 'running' as const, startedAt: queuedAt + 1_000 };
  return {
    job,
    number,
    status: running ? 'running' : 'success',
    cause: { kind: 'push', description: `commit ${String(number).padStart(7, '0')} on main` },
    event: 'push',
    repo: `https://git.example/${job}.git`,
    commit: `${job}-${number}`.padEnd(40, '0'),
    branch: 'main',
    label: 'default',
    pipeline: {
      steps: [
        { name: 'test', kind: 'commands', commands: ['npm ci', 'npm test'], environment: { NODE_ENV: 'test' }, when: [], dependsOn: [], failure: 'fail' },
        { name: 'package', kind: 'commands', image: 'node:20', commands: ['npm pack'], environment: {}, when: [{ event: ['tag'] }], dependsOn: ['test'], failure: 'fail' },
      ],
      artifacts: ['*.tgz'],
    },
    steps: [step('test', true), step('package', !running)],
    queuedAt,
    startedAt: queuedAt + 500,
    ...(running ? {} : { finishedAt: queuedAt + 3_000 }),
    executorId: `exec-${number % 4}`,
    agentId: 'agent-1',
    hostname: 'host-1',
    artifacts: running ? [] : [`${job}-${number}.tgz`],
    seq: 7,
    logBytes: { whole: 4096, steps: { test: 2048, package: running ? 0 : 2048 } },
  };
}

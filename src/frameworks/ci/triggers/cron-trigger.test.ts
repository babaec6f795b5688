import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { cronMatches, parseCron } from '../cron-schedule.ts';
import { cronDue, describeCronRun, minuteOf, watchCron } from './cron-trigger.ts';
import type { CronState } from './trigger-state.ts';

const t = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 19);

/**
 * CI on a fake clock: it looks at the clock every `stepMs` while it is up (`down` are the
 * intervals when it is not), starting to watch `expression` at `created`. The stored state is
 * what a restart reads back; a build is stored with its minute. `crashBeforeWrite` makes the
 * write of the builds of those minutes fail (CI dies) the first time.
 */
function simulate(expression: string, o: { created: number; until: number; stepMs: number; down?: [number, number][]; crashBeforeWrite?: number[] }): number[] {
  const schedule = parseCron(expression);
  const built: number[] = [];
  let stored: CronState | undefined;
  const crashes = new Set(o.crashBeforeWrite ?? []);
  for (let now = o.created; now <= o.until; now += o.stepMs) {
    if ((o.down ?? []).some(([a, b]) => now >= a && now < b)) continue;
    const watched = watchCron(stored, expression, now);
    stored = watched;
    const due = cronDue(schedule, watched, now);
    if (due === undefined) continue;
    if (crashes.delete(due)) continue; // the write never happened: nothing stored, nothing built
    stored = { ...watched, lastRun: due };
    built.push(due);
  }
  return built;
}

describe('cron triggers on a fake clock', () => {
  it('builds each matching minute once, however often CI looks', () => {
    const built = simulate('*/15 * * * *', { created: t('2024-05-01T02:59:30Z'), until: t('2024-05-01T04:00:30Z'), stepMs: 7_000 });
    assert.deepEqual(built.map(iso), ['2024-05-01T03:00:00', '2024-05-01T03:15:00', '2024-05-01T03:30:00', '2024-05-01T03:45:00', '2024-05-01T04:00:00']);
  });

  it('does not build the minute a job is created in, nor minutes before', () => {
    const built = simulate('0 3 * * *', { created: t('2024-05-01T03:00:20Z'), until: t('2024-05-02T03:00:30Z'), stepMs: 60_000 });
    assert.deepEqual(built.map(iso), ['2024-05-02T03:00:00']);
  });

  it('does not build a minute again after a restart within it', () => {
    const built = simulate('0 3 * * *', { created: t('2024-05-01T00:00:00Z'), until: t('2024-05-01T03:05:00Z'), stepMs: 1_000, down: [[t('2024-05-01T03:00:10Z'), t('2024-05-01T03:00:40Z')]] });
    assert.deepEqual(built.map(iso), ['2024-05-01T03:00:00']);
  });

  it('builds a minute CI comes back within, but does not catch up minutes it was down for', () => {
    const down: [number, number][] = [[t('2024-05-01T02:58:00Z'), t('2024-05-01T03:02:30Z')]];
    const built = simulate('* * * * *', { created: t('2024-05-01T02:55:10Z'), until: t('2024-05-01T03:03:30Z'), stepMs: 1_000, down });
    assert.deepEqual(built.map(iso), ['2024-05-01T02:56:00', '2024-05-01T02:57:00', '2024-05-01T03:02:00', '2024-05-01T03:03:00']);
  });

  it('builds a minute whose write was lost to a crash once CI is back within it', () => {
    const minute = t('2024-05-01T03:00:00Z');
    const built = simulate('0 3 * * *', { created: t('2024-05-01T02:00:00Z'), until: t('2024-05-01T03:10:00Z'), stepMs: 5_000, crashBeforeWrite: [minute] });
    assert.deepEqual(built.map(iso), ['2024-05-01T03:00:00']);
  });

  it('does not build a minute twice when the expression is edited within it', () => {
    const schedule = parseCron('0 3 * * *');
    const s = { ...watchCron(undefined, '0 3 * * *', t('2024-05-01T00:00:00Z')), lastRun: t('2024-05-01T03:00:00Z') };
    const edited = watchCron(s, '0 3 * * 1-5', t('2024-05-01T03:00:30Z'));
    assert.equal(cronDue(schedule, edited, t('2024-05-01T03:00:40Z')), undefined);
    assert.equal(watchCron(s, '0 3 * * *', t('2024-05-02T00:00:00Z')), s, 'the same expression keeps its state');
  });

  it('never builds a minute twice and builds every matching minute CI looks at (any steps, any restarts)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('* * * * *', '*/7 * * * *', '0,1,2 * * * *', '30 * * * *'),
        fc.integer({ min: 500, max: 59_000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 7_200_000 }), fc.integer({ min: 1, max: 600_000 })), { maxLength: 4 }),
        (expression, stepMs, gaps) => {
          const created = t('2024-05-01T00:00:13Z');
          const until = created + 7_200_000;
          const down = gaps.map(([a, len]) => [created + a, created + a + len] as [number, number]);
          const built = simulate(expression, { created, until, stepMs, down });
          assert.equal(new Set(built).size, built.length);
          const schedule = parseCron(expression);
          // CI starts watching at its first look; from then on, every matching minute it looks in.
          const looks: number[] = [];
          for (let now = created; now <= until; now += stepMs) if (!down.some(([a, b]) => now >= a && now < b)) looks.push(now);
          const since = looks[0] ?? Infinity;
          const expected = [...new Set(looks.map(minuteOf))].filter((m) => m >= since && cronMatches(schedule, new Date(m)));
          assert.deepEqual(built, expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('describes a run in UTC', () => {
    assert.equal(describeCronRun('0 3 * * 1-5', t('2024-05-01T03:00:00Z')), 'cron 0 3 * * 1-5 (2024-05-01 03:00 UTC)');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvalidCron, cronMatches, nextCronTime, parseCron } from './cron-schedule.ts';

const next = (expr: string, after: string): string | undefined => nextCronTime(parseCron(expr), new Date(after))?.toISOString();

describe('cron schedules', () => {
  it('reads numbers, ranges, lists, steps and names', () => {
    const s = parseCron('*/15 9-17 * JAN,jul mon-FRI');
    assert.deepEqual([...s.minutes], [0, 15, 30, 45]);
    assert.deepEqual([...s.hours], [9, 10, 11, 12, 13, 14, 15, 16, 17]);
    assert.deepEqual([...s.months], [1, 7]);
    assert.deepEqual([...s.daysOfWeek], [1, 2, 3, 4, 5]);
    assert.deepEqual([...parseCron('5/20 * * * *').minutes], [5, 25, 45]);
    assert.deepEqual([...parseCron('0 0 * * 7').daysOfWeek], [0]);
    assert.deepEqual([...parseCron('0 0 * * 1-3/2').daysOfWeek], [1, 3]);
  });

  it('reads the macros', () => {
    assert.equal(next('@daily', '2024-03-10T12:00:00Z'), '2024-03-11T00:00:00.000Z');
    assert.equal(next('@hourly', '2024-03-10T12:00:00Z'), '2024-03-10T13:00:00.000Z');
    assert.equal(next('@weekly', '2024-03-10T12:00:00Z'), '2024-03-17T00:00:00.000Z'); // a Sunday
    assert.equal(parseCron(' @Yearly ').expression, '@Yearly');
  });

  it('finds the next firing strictly after the time given, in UTC', () => {
    assert.equal(next('* * * * *', '2024-03-10T12:00:00Z'), '2024-03-10T12:01:00.000Z');
    assert.equal(next('* * * * *', '2024-03-10T12:00:59.999Z'), '2024-03-10T12:01:00.000Z');
    assert.equal(next('30 2 * * *', '2024-03-10T02:30:00Z'), '2024-03-11T02:30:00.000Z');
    assert.equal(next('0 0 29 2 *', '2024-03-01T00:00:00Z'), '2028-02-29T00:00:00.000Z');
    assert.equal(next('0 12 31 * *', '2024-04-01T00:00:00Z'), '2024-05-31T12:00:00.000Z');
    // Days 1, 8, ... 29 of December that are Mondays: the next December starting on a Monday.
    assert.equal(next('* 0 */7 12 1', '2042-12-29T00:59:00Z'), '2053-12-01T00:00:00.000Z');
  });

  it('fires on either day field when both are restricted (Vixie cron)', () => {
    // The 13th, or any Friday.
    assert.equal(next('0 0 13 * 5', '2024-09-01T00:00:00Z'), '2024-09-06T00:00:00.000Z');
    assert.equal(next('0 0 13 * 5', '2024-09-07T00:00:00Z'), '2024-09-13T00:00:00.000Z');
    // `*` in one field: both must hold, i.e. only the other counts.
    assert.equal(next('0 0 * * 5', '2024-09-01T00:00:00Z'), '2024-09-06T00:00:00.000Z');
  });

  it('refuses what it cannot read, saying which field', () => {
    const refused: [string, RegExp][] = [
      ['* * * *', /5 fields/],
      ['* * * * * *', /5 fields/],
      ['60 * * * *', /minute field: 60 is outside 0-59/],
      ['* 24 * * *', /hour field/],
      ['* * 0 * *', /day of month field: 0 is outside 1-31/],
      ['* * * 13 *', /month field/],
      ['* * * * 8', /day of week field/],
      ['*/0 * * * *', /at least 1/],
      ['5-1 * * * *', /backwards/],
      ['* * * FOO *', /"FOO" is not a number or a name/],
      ['H * * * *', /minute field/],
      ['@reboot', /unknown cron macro/],
      ['0 0 30 2 *', /names no date that exists/],
      ['', /5 fields/],
    ];
    for (const [expr, message] of refused) {
      assert.throws(() => parseCron(expr), (e: unknown) => e instanceof InvalidCron && message.test(e.message), expr);
    }
  });

  it('gives a time that matches, with no match in between (property)', () => {
    const field = (min: number, max: number) =>
      fc.oneof(fc.constant('*'), fc.integer({ min, max }).map(String), fc.integer({ min: 1, max: 7 }).map((s) => `*/${s}`));
    fc.assert(
      fc.property(
        field(0, 59),
        field(0, 23),
        field(1, 28),
        field(1, 12),
        field(0, 6),
        fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2090-01-01T00:00:00Z'), noInvalidDate: true }),
        (mi, h, dom, mo, dow, after) => {
          const schedule = parseCron(`${mi} ${h} ${dom} ${mo} ${dow}`);
          const t = nextCronTime(schedule, after);
          assert.ok(t !== undefined);
          assert.ok(t.getTime() > after.getTime());
          assert.ok(cronMatches(schedule, t));
          // Spot-check the minutes just before it (a full scan would be slow).
          for (let k = 1; k <= 120; k++) {
            const earlier = new Date(t.getTime() - k * 60_000);
            if (earlier.getTime() <= after.getTime()) break;
            assert.ok(!cronMatches(schedule, earlier), `${earlier.toISOString()} matches too`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

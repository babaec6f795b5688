import { cronMatches, type CronSchedule } from '../cron-schedule.ts';
import type { CronState } from './trigger-state.ts';

const MINUTE_MS = 60_000;

/** The start (ms) of the UTC minute that holds `at`. */
export function minuteOf(at: number): number {
  return Math.floor(at / MINUTE_MS) * MINUTE_MS;
}

/**
 * The cron state for watching `expression` from `now`: the same when it watches that expression
 * already; else a new one that starts now. A new watch keeps the last minute built, so that
 * editing the expression within a minute that was built does not build it again.
 */
export function watchCron(state: CronState | undefined, expression: string, now: number): CronState {
  if (state !== undefined && state.expression === expression) return state;
  return { expression, since: now, ...(state?.lastRun !== undefined ? { lastRun: state.lastRun } : {}) };
}

/**
 * The minute to build at `now`, if any (pure). A minute is built when the schedule matches it,
 * CI sees it (a look at the clock falls in it), it began after the watch started (a job created
 * at 03:00:20 with `0 3 * * *` waits for the next day), and it is later than the last minute
 * built (once per minute, across restarts too, since the last minute built is stored with the
 * build). Minutes that passed while CI was down, or while it did not look, are not caught up, as
 * in Jenkins and Vixie cron: a nightly build missed is not worth a burst of builds at startup.
 */
export function cronDue(schedule: CronSchedule, state: CronState, now: number): number | undefined {
  const minute = minuteOf(now);
  if (minute < state.since) return undefined;
  if (state.lastRun !== undefined && minute <= state.lastRun) return undefined;
  return cronMatches(schedule, new Date(minute)) ? minute : undefined;
}

/** `cron 0 3 * * 1-5 (2024-05-01 03:00 UTC)`: a cron build's cause. */
export function describeCronRun(expression: string, minute: number): string {
  return `cron ${expression} (${new Date(minute).toISOString().slice(0, 16).replace('T', ' ')} UTC)`;
}

import { SlipwayError } from '../../core/errors.ts';

// Five-field cron expressions (minute hour day-of-month month day-of-week), as Vixie cron and
// Jenkins without `H` read them, evaluated in UTC. Used by a job's `triggers.cron`.

/** A cron expression that cannot be read, or that names no date that exists. */
export class InvalidCron extends SlipwayError {
  readonly code = 'INVALID_CRON';
  readonly status = 422;
}

export interface CronSchedule {
  /** The expression as given (trimmed); a macro such as `@daily` stays a macro. */
  expression: string;
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  daysOfMonth: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** 0 is Sunday; 7 is read as 0. */
  daysOfWeek: ReadonlySet<number>;
  /**
   * Vixie cron's rule for the two day fields: when both are restricted (neither starts with `*`),
   * a day matches if either matches; otherwise both must.
   */
  daysOr: boolean;
}

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  /** Names for values, the first meaning `min`. */
  names?: string[];
}

const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES },
  { name: 'day of week', min: 0, max: 7, names: DAY_NAMES },
];

/** The longest each month can be (February in a leap year). */
const MONTH_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Reads a cron expression; throws InvalidCron saying which field is wrong and why. */
export function parseCron(text: string): CronSchedule {
  const expression = text.trim();
  let body = expression;
  if (expression.startsWith('@')) {
    const macro = MACROS[expression.toLowerCase()];
    if (macro === undefined) throw new InvalidCron(`unknown cron macro ${JSON.stringify(expression)} (known: ${Object.keys(MACROS).join(', ')})`);
    body = macro;
  }
  const parts = body.split(/\s+/).filter((p) => p !== '');
  if (parts.length !== 5) {
    throw new InvalidCron(`a cron expression has 5 fields (minute hour day-of-month month day-of-week), not ${parts.length}: ${JSON.stringify(expression)}`);
  }
  const sets = parts.map((part, i) => parseField(part, FIELDS[i] as FieldSpec));
  const [minutes, hours, daysOfMonth, months, rawDaysOfWeek] = sets as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  const daysOfWeek = new Set([...rawDaysOfWeek].map((d) => (d === 7 ? 0 : d)));
  const daysOr = !(parts[2] as string).startsWith('*') && !(parts[4] as string).startsWith('*');
  const schedule: CronSchedule = { expression, minutes, hours, daysOfMonth, months, daysOfWeek, daysOr };
  // `0 0 30 2 *` (February 30th) would be accepted and never run: say so now.
  const dayOfMonthOnly = !daysOr && !(parts[2] as string).startsWith('*');
  if (dayOfMonthOnly && ![...months].some((m) => [...daysOfMonth].some((d) => d <= (MONTH_MAX_DAYS[m - 1] ?? 31)))) {
    throw new InvalidCron(`${JSON.stringify(expression)} names no date that exists (day of month ${[...daysOfMonth].join(',')} in month ${[...months].join(',')})`);
  }
  return schedule;
}

function parseField(part: string, spec: FieldSpec): Set<number> {
  const values = new Set<number>();
  for (const item of part.split(',')) {
    const m = /^(\*|[^-/]+(?:-[^-/]+)?)(?:\/(\d+))?$/.exec(item);
    if (m === null) throw new InvalidCron(`cron ${spec.name} field: cannot read ${JSON.stringify(item)}`);
    const range = m[1] as string;
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw new InvalidCron(`cron ${spec.name} field: the step of ${JSON.stringify(item)} must be at least 1`);
    let from: number;
    let to: number;
    if (range === '*') {
      from = spec.min;
      to = spec.name === 'day of week' ? 6 : spec.max;
    } else if (range.includes('-')) {
      const [a, b] = range.split('-') as [string, string];
      from = valueOf(a, spec);
      to = valueOf(b, spec);
      if (from > to) throw new InvalidCron(`cron ${spec.name} field: the range ${JSON.stringify(range)} runs backwards`);
    } else {
      from = valueOf(range, spec);
      // `5/15` is Vixie's `5-max/15`.
      to = m[2] === undefined ? from : spec.max;
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

function valueOf(text: string, spec: FieldSpec): number {
  let value: number;
  if (/^\d+$/.test(text)) value = Number(text);
  else {
    const index = spec.names?.indexOf(text.toUpperCase()) ?? -1;
    if (index < 0) throw new InvalidCron(`cron ${spec.name} field: ${JSON.stringify(text)} is not a number${spec.names ? ` or a name (${spec.names.join(', ')})` : ''}`);
    value = spec.min + index;
  }
  if (value < spec.min || value > spec.max) throw new InvalidCron(`cron ${spec.name} field: ${value} is outside ${spec.min}-${spec.max}`);
  return value;
}

/** Whether the schedule fires in the UTC minute that holds `at`. */
export function cronMatches(schedule: CronSchedule, at: Date): boolean {
  return (
    schedule.minutes.has(at.getUTCMinutes()) &&
    schedule.hours.has(at.getUTCHours()) &&
    schedule.months.has(at.getUTCMonth() + 1) &&
    dayMatches(schedule, at)
  );
}

function dayMatches(s: CronSchedule, at: Date): boolean {
  const dom = s.daysOfMonth.has(at.getUTCDate());
  const dow = s.daysOfWeek.has(at.getUTCDay());
  return s.daysOr ? dom || dow : dom && dow;
}

/**
 * The first whole UTC minute strictly after `after` at which the schedule fires. Some fire
 * rarely: a minute of days 1, 8, 15, 22 and 29 of December that are Mondays waits for a December that
 * starts on a Monday, up to 11 years. The search gives up after 400 years, the Gregorian
 * calendar's whole cycle (parseCron refuses schedules that can never fire, so that does not happen).
 */
export function nextCronTime(schedule: CronSchedule, after: Date): Date | undefined {
  const t = new Date(after.getTime());
  t.setUTCSeconds(0, 0);
  t.setUTCMinutes(t.getUTCMinutes() + 1);
  const limit = after.getTime() + 400 * 366 * 24 * 3600 * 1000;
  while (t.getTime() <= limit) {
    if (!schedule.months.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1);
      t.setUTCHours(0, 0, 0, 0);
    } else if (!dayMatches(schedule, t)) {
      t.setUTCDate(t.getUTCDate() + 1);
      t.setUTCHours(0, 0, 0, 0);
    } else if (!schedule.hours.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
    } else if (!schedule.minutes.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
    } else {
      return t;
    }
  }
  return undefined;
}

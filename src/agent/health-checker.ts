import type { Clock, Timer } from '../core/clock.ts';
import { SlipwayError } from '../core/errors.ts';
import type { HealthCheck } from '../protocol/mesos.ts';
import { probeCommand, probeHttp, probeTcp, type ProbeResult } from './health-probes.ts';
import type { TaskUser } from './task-user.ts';

/** A task's health_check that cannot be run (no port, no command, bad scheme or path...). */
export class InvalidHealthCheck extends SlipwayError {
  readonly code = 'INVALID_HEALTH_CHECK';
  readonly status = 400;
}

/** Mesos's defaults for the fields a HealthCheck leaves out. */
export const HEALTH_CHECK_DEFAULTS = {
  delaySeconds: 15,
  intervalSeconds: 10,
  timeoutSeconds: 20,
  consecutiveFailures: 3,
  gracePeriodSeconds: 10,
} as const;

export interface HealthCheckerOptions {
  clock: Clock;
  /** The task's sandbox: the working directory of COMMAND checks. */
  sandbox: string;
  /** The task's whole environment; COMMAND checks run with it (plus the check's own variables). */
  env: Record<string, string>;
  /** When the task started, in clock milliseconds. The grace period counts from here. */
  startedAt: number;
  /** The task's health changed (or is known for the first time). Must not throw. */
  onHealthChanged(healthy: boolean, message: string): void;
  /** `consecutive_failures` counted failures in a row: the agent must kill the task. Must not throw. */
  onFailureThreshold(message: string): void;
  /** Where HTTP and TCP checks connect. Default 127.0.0.1 (::1 for an HTTP check with protocol IPv6). */
  host?: string;
  /** The task's user: COMMAND checks run as it (setpriv), as the task does. Default: the agent's user. */
  user?: TaskUser;
}

/** What the checker knows, for the agent's state endpoints and for tests. */
export interface HealthCheckerStatus {
  /** Checks that finished (timeouts included), counted or not. */
  checks: number;
  /** Counted failures since the last success. */
  consecutiveFailures: number;
  /** The health last reported; undefined until the first counted result. */
  healthy: boolean | undefined;
  lastResult: ProbeResult | undefined;
}

/**
 * Health checks of one task, run by the agent, with the semantics of Mesos's built-in executors
 * (docs/health-checks.md):
 *
 *   start() ──delay──► check ──finished──interval──► check ──► ... ──► threshold reached: stops
 *                        │                                              (onFailureThreshold once)
 *                        └── not finished within timeout: aborted, counts as a failure
 *   stop() at any point: timers cancelled, the check in flight aborted, no callback afterwards.
 *
 * - The next check is scheduled `interval` after the previous one finished, so checks never overlap.
 * - A failure while the task is within `grace_period_seconds` of `startedAt` is ignored, as long
 *   as no check has succeeded yet; after the first success every failure counts.
 * - `onHealthChanged` fires on the first counted result and then only when health flips.
 * - After `consecutive_failures` counted failures in a row, `onFailureThreshold` fires once and
 *   checking stops (the agent kills the task; further results would only be noise during the
 *   kill). `consecutive_failures` 0 never kills.
 * - `timeout_seconds` 0 means no timeout, as in Mesos.
 */
export class HealthChecker {
  private readonly delayMs: number;
  private readonly intervalMs: number;
  /** Infinity when the check has no timeout. */
  private readonly timeoutMs: number;
  private readonly maxFailures: number;
  private readonly graceMs: number;
  private readonly runProbe: (signal: AbortSignal) => Promise<ProbeResult>;

  private state: 'new' | 'running' | 'stopped' = 'new';
  private nextCheck: Timer | undefined;
  private inFlight: { abort: AbortController; timeout: Timer | undefined } | undefined;
  private succeededOnce = false;
  private consecutiveFailures = 0;
  private checks = 0;
  private reported: boolean | undefined;
  private lastResult: ProbeResult | undefined;

  constructor(
    private readonly check: HealthCheck,
    private readonly options: HealthCheckerOptions,
  ) {
    const d = HEALTH_CHECK_DEFAULTS;
    this.delayMs = seconds(check.delay_seconds, d.delaySeconds, 'delay_seconds');
    this.intervalMs = seconds(check.interval_seconds, d.intervalSeconds, 'interval_seconds');
    const timeoutMs = seconds(check.timeout_seconds, d.timeoutSeconds, 'timeout_seconds');
    this.timeoutMs = timeoutMs === 0 ? Infinity : timeoutMs;
    this.graceMs = seconds(check.grace_period_seconds, d.gracePeriodSeconds, 'grace_period_seconds');
    const failures = check.consecutive_failures ?? d.consecutiveFailures;
    if (!Number.isInteger(failures) || failures < 0) {
      throw new InvalidHealthCheck(`Health check consecutive_failures must be a whole number >= 0, not ${failures}`);
    }
    this.maxFailures = failures;
    this.runProbe = this.makeProbe();
  }

  /** Schedules the first check `delay_seconds` from now. Calling it twice, or after stop(), throws. */
  start(): void {
    if (this.state !== 'new') throw new Error(`HealthChecker.start() called when ${this.state}`);
    this.state = 'running';
    this.schedule(this.delayMs);
  }

  /** Stops for good: cancels timers, aborts a check in flight. No callback fires afterwards. Idempotent. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.nextCheck?.cancel();
    this.nextCheck = undefined;
    const inFlight = this.inFlight;
    this.inFlight = undefined;
    if (inFlight !== undefined) {
      inFlight.timeout?.cancel();
      inFlight.abort.abort();
    }
  }

  status(): HealthCheckerStatus {
    return {
      checks: this.checks,
      consecutiveFailures: this.consecutiveFailures,
      healthy: this.reported,
      lastResult: this.lastResult,
    };
  }

  private schedule(delayMs: number): void {
    // A callback may have stopped us while a result was being handled.
    if (this.state !== 'running') return;
    this.nextCheck = this.options.clock.setTimer(delayMs, () => {
      this.nextCheck = undefined;
      this.runCheck();
    });
  }

  private runCheck(): void {
    if (this.state !== 'running') return;
    const abort = new AbortController();
    const inFlight: { abort: AbortController; timeout: Timer | undefined } = { abort, timeout: undefined };
    this.inFlight = inFlight;
    // Whichever comes first, the probe's answer or the timeout, decides; the other is ignored.
    const settle = (result: ProbeResult): void => {
      if (this.inFlight !== inFlight) return;
      this.inFlight = undefined;
      inFlight.timeout?.cancel();
      this.onResult(result);
    };
    if (this.timeoutMs !== Infinity) {
      const timeoutSeconds = this.timeoutMs / 1000;
      inFlight.timeout = this.options.clock.setTimer(this.timeoutMs, () => {
        settle({ healthy: false, message: `${this.check.type} health check timed out after ${timeoutSeconds}s` });
        abort.abort();
      });
    }
    this.runProbe(abort.signal).then(settle, (err: unknown) => {
      // Probes resolve by contract; a rejection is a bug in a probe, reported as a failed check.
      settle({ healthy: false, message: `${this.check.type} health check failed: ${String(err)}` });
    });
  }

  private onResult(result: ProbeResult): void {
    this.checks++;
    this.lastResult = result;
    if (result.healthy) {
      this.succeededOnce = true;
      this.consecutiveFailures = 0;
      this.report(true, result.message);
      this.schedule(this.intervalMs);
      return;
    }
    // Mesos measures the grace period when the failure is processed, i.e. when the check ended.
    const inGrace = !this.succeededOnce && this.options.clock.now() - this.options.startedAt <= this.graceMs;
    if (inGrace && this.graceMs > 0) {
      this.schedule(this.intervalMs);
      return;
    }
    this.consecutiveFailures++;
    this.report(false, result.message);
    // The callback may have stopped us.
    if (this.state !== 'running') return;
    if (this.maxFailures > 0 && this.consecutiveFailures >= this.maxFailures) {
      this.state = 'stopped';
      this.options.onFailureThreshold(
        `Task killed after ${this.consecutiveFailures} consecutive health check failures: ${result.message}`,
      );
      return;
    }
    this.schedule(this.intervalMs);
  }

  private report(healthy: boolean, message: string): void {
    if (this.reported === healthy) return;
    this.reported = healthy;
    this.options.onHealthChanged(healthy, message);
  }

  /** Validates the check's own part and returns the probe that runs it. */
  private makeProbe(): (signal: AbortSignal) => Promise<ProbeResult> {
    const check = this.check;
    switch (check.type) {
      case 'HTTP': {
        const h = check.http;
        if (h === undefined || !validPort(h.port)) {
          throw new InvalidHealthCheck('An HTTP health check needs http.port (1-65535)');
        }
        const scheme = h.scheme ?? 'http';
        if (scheme !== 'http' && scheme !== 'https') {
          throw new InvalidHealthCheck(`HTTP health check scheme must be 'http' or 'https', not '${scheme}'`);
        }
        const path = h.path ?? '/';
        if (!path.startsWith('/')) {
          throw new InvalidHealthCheck(`HTTP health check path must start with '/', not '${path}'`);
        }
        const protocol = h.protocol ?? 'IPv4';
        if (protocol !== 'IPv4' && protocol !== 'IPv6') {
          throw new InvalidHealthCheck(`HTTP health check protocol must be 'IPv4' or 'IPv6', not '${protocol}'`);
        }
        const host = this.options.host ?? (protocol === 'IPv6' ? '::1' : '127.0.0.1');
        const target = { scheme, host, port: h.port, path } as const;
        return (signal) => probeHttp(target, signal);
      }
      case 'TCP': {
        const t = check.tcp;
        if (t === undefined || !validPort(t.port)) {
          throw new InvalidHealthCheck('A TCP health check needs tcp.port (1-65535)');
        }
        const host = this.options.host ?? '127.0.0.1';
        const port = t.port;
        return (signal) => probeTcp(host, port, signal);
      }
      case 'COMMAND': {
        const command = check.command;
        if (command?.value === undefined || command.value.trim() === '') {
          throw new InvalidHealthCheck('A COMMAND health check needs command.value');
        }
        const env = { ...this.options.env };
        for (const v of command.environment?.variables ?? []) env[v.name] = v.value ?? '';
        // The task's environment may lack PATH (a container image's env, say); without it even
        // `curl` in a check would not be found. The agent's PATH is the best guess there is.
        if (env.PATH === undefined && process.env.PATH !== undefined) env.PATH = process.env.PATH;
        const probe = { command, env, cwd: this.options.sandbox, ...(this.options.user !== undefined ? { user: this.options.user } : {}) };
        return (signal) => probeCommand(probe, signal);
      }
      default: {
        const type: never = check.type;
        throw new InvalidHealthCheck(`Unknown health check type '${String(type)}'`);
      }
    }
  }
}

function seconds(value: number | undefined, fallback: number, field: string): number {
  const s = value ?? fallback;
  if (!Number.isFinite(s) || s < 0) {
    throw new InvalidHealthCheck(`Health check ${field} must be a number >= 0, not ${s}`);
  }
  return s * 1000;
}

function validPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

import type { Clock, Timer } from '../../core/clock.ts';
import type { DistributiveOmit } from '../../core/distributive-omit.ts';
import { SchedulerCallRefused } from '../../core/errors.ts';
import type { FrameworkInfo } from '../../protocol/mesos.ts';
import type { Event, FrameworkCall } from '../../protocol/scheduler.ts';
import type { SchedulerSubscription, SchedulerTransport } from '../../protocol/scheduler-transport.ts';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

/** A scheduler call as a framework writes it: the session adds `framework_id`. */
export type OutgoingCall = DistributiveOmit<FrameworkCall, 'framework_id'>;

export interface FrameworkSessionOptions {
  transport: SchedulerTransport;
  /** Times the retries. */
  clock: Clock;
  /** framework_info.name; also how log lines name the framework. */
  name: string;
  role: string;
  failoverTimeoutSeconds: number;
  capabilities: NonNullable<FrameworkInfo['capabilities']>;
  /** The id stored from an earlier run: the session subscribes as that framework again. */
  frameworkId?: string;
  /** The master gave an id other than the one the session had: store it. */
  onFrameworkId(id: string): void;
  /** Subscribed (the first time or again): reconcile, revive, resume. */
  onSubscribed(sub: SchedulerSubscription): void;
  onEvent(event: Event): void;
  log(line: string): void;
}

/**
 * A framework's life on the master, as the services and CI frameworks both lead it: SUBSCRIBE
 * with the stored id (checkpointing, a failover timeout, the framework's role); on a refusal or a
 * lost stream, subscribe again after 0.5 s, doubling up to 10 s, back to 0.5 s once subscribed.
 * A framework the master removed (torn down, failover timeout passed: its tasks are gone) starts
 * over under a new id. Calls go out on the current subscription with its framework id; without
 * one they are dropped (the framework's next pass or reconciliation repairs what they missed).
 */
export class FrameworkSession {
  #subscription: SchedulerSubscription | undefined;
  #frameworkId: string | undefined;
  #stopped = false;
  #timer: Timer | undefined;
  #retryMs = FIRST_RETRY_MS;

  constructor(private readonly o: FrameworkSessionOptions) {
    this.#frameworkId = o.frameworkId;
  }

  get subscription(): SchedulerSubscription | undefined {
    return this.#subscription;
  }

  get frameworkId(): string | undefined {
    return this.#frameworkId;
  }

  /** Subscribes now, and again whenever the subscription is lost, until close(). */
  async connect(): Promise<void> {
    if (this.#stopped) return;
    const id = this.#frameworkId;
    try {
      const sub = await this.o.transport.subscribe(
        {
          type: 'SUBSCRIBE',
          ...(id !== undefined ? { framework_id: { value: id } } : {}),
          subscribe: {
            framework_info: {
              user: 'root',
              name: this.o.name,
              ...(id !== undefined ? { id: { value: id } } : {}),
              failover_timeout: this.o.failoverTimeoutSeconds,
              checkpoint: true,
              roles: [this.o.role],
              capabilities: this.o.capabilities,
            },
          },
        },
        { onEvent: (e) => this.o.onEvent(e), onClose: (reason) => this.#onClose(reason) },
      );
      if (this.#stopped) {
        sub.close();
        return;
      }
      this.#subscription = sub;
      this.#retryMs = FIRST_RETRY_MS;
      if (this.#frameworkId !== sub.frameworkId) {
        this.#frameworkId = sub.frameworkId;
        this.o.onFrameworkId(sub.frameworkId);
      }
      this.o.log(`${this.o.name} subscribed as ${sub.frameworkId}`);
      this.o.onSubscribed(sub);
    } catch (e) {
      if (e instanceof SchedulerCallRefused && e.status === 403 && /removed/.test(e.message)) {
        this.o.log(`${this.o.name} ${this.#frameworkId ?? ''} was removed by the master; subscribing anew`);
        this.#frameworkId = undefined;
      } else {
        this.o.log(`${this.o.name} cannot subscribe: ${e instanceof Error ? e.message : String(e)}`);
      }
      this.#retry();
    }
  }

  send(call: OutgoingCall): void {
    const sub = this.#subscription;
    if (sub === undefined) return;
    sub.call({ ...call, framework_id: { value: sub.frameworkId } } as FrameworkCall).catch((e: unknown) => {
      this.o.log(`${this.o.name}: ${call.type} refused: ${e instanceof Error ? e.message : String(e)}`);
    });
  }

  /** Ends the subscription (the master keeps the tasks for the failover timeout) and stops retrying. */
  close(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#subscription?.close();
  }

  #onClose(reason: string): void {
    this.#subscription = undefined;
    if (this.#stopped) return;
    this.o.log(`${this.o.name} disconnected: ${reason}`);
    this.#retry();
  }

  #retry(): void {
    if (this.#stopped) return;
    this.#timer?.cancel();
    this.#timer = this.o.clock.setTimer(this.#retryMs, () => void this.connect());
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
  }
}

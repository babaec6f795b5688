import type { SchedulerSubscription } from '../protocol/scheduler-transport.ts';
import { HttpScheduler } from './http-scheduler.ts';
import type { Offer, TaskStatus } from '../protocol/mesos.ts';
import type { Event, FrameworkCall, SubscribeCall } from '../protocol/scheduler.ts';
import { authHeaders, defaultToken } from './credentials.ts';

/** A call without its framework_id (the client adds it); distributes over the union of calls. */
export type CallBody = FrameworkCall extends infer C ? (C extends FrameworkCall ? Omit<C, 'framework_id'> & { framework_id?: { value: string } } : never) : never;

/**
 * A client of the scheduler HTTP API, as a third-party framework speaks it: SUBSCRIBE opens the
 * RecordIO event stream, later calls carry its Mesos-Stream-Id. Events are kept in arrival order;
 * `waitFor` and `waitForState` poll them with a deadline (for tools, benchmarks and tests).
 */
export class SchedulerClient {
  readonly events: Event[] = [];
  frameworkId = '';
  streamId = '';
  private subscription: (SchedulerSubscription & { streamId: string }) | undefined;
  closed = false;

  /** @param autoAcknowledge acknowledge every update with a uuid as it arrives (default). */
  constructor(
    readonly masterUrl: string,
    readonly autoAcknowledge = true,
    private readonly token: string | undefined = defaultToken(),
  ) {}

  async subscribe(call: SubscribeCall): Promise<void> {
    this.subscription = await new HttpScheduler(this.masterUrl, this.token).subscribe(call, {
      onEvent: (e) => {
        if (e.type === 'SUBSCRIBED') this.frameworkId = e.subscribed.framework_id.value;
        this.events.push(e);
        // Like Mesos's scheduler driver: acknowledge every update that asks for it, each time
        // it arrives (a resent update must be acknowledged again, or the agent keeps resending).
        const status = e.type === 'UPDATE' ? e.update.status : undefined;
        if (this.autoAcknowledge && status?.uuid !== undefined && status.agent_id !== undefined) {
          void this.call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: status.agent_id, task_id: status.task_id, uuid: status.uuid } }).catch(() => undefined);
        }
      },
      onClose: () => (this.closed = true),
    });
    this.streamId = this.subscription.streamId;
  }

  /** Sends a call; resolves with status and body text. */
  async call(call: CallBody, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
    const body = { framework_id: { value: this.frameworkId }, ...call };
    const response = await fetch(new URL('/api/v1/scheduler', this.masterUrl), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Mesos-Stream-Id': this.streamId, ...authHeaders(this.token), ...headers },
      body: JSON.stringify(body),
    });
    return { status: response.status, text: await response.text() };
  }

  offers(): Offer[] {
    return this.events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []));
  }

  updates(taskId?: string): TaskStatus[] {
    return this.events.flatMap((e) => (e.type === 'UPDATE' && (taskId === undefined || e.update.status.task_id.value === taskId) ? [e.update.status] : []));
  }

  async waitFor<T>(fn: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last events: ${JSON.stringify(this.events.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits until the task's updates include `state`. */
  async waitForState(taskId: string, state: string, timeoutMs = 15_000): Promise<TaskStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const u = this.updates(taskId).find((s) => s.state === state);
      if (u !== undefined) return u;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${taskId} to reach ${state}; its updates: ${JSON.stringify(this.updates(taskId).map((s) => [s.state, s.message]))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.subscription?.close();
  }
}

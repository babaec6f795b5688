import type { Event, FrameworkCall, SubscribeCall } from './scheduler.ts';

/**
 * How a framework talks to the master: the scheduler API's calls and events, whatever carries
 * them. Two implementations keep the same semantics: over HTTP (src/sdk, for frameworks in other
 * processes) and in process (src/server, for the built-in frameworks of `slipway up`). A framework
 * depends on this interface only, so it can run either way.
 *
 * Contract:
 * - `subscribe` resolves once SUBSCRIBED has arrived (it is also the first event passed to
 *   `onEvent`). Every later event is passed to `onEvent` only after `subscribe` has resolved, so
 *   a handler can already answer it with `call` (decline the offers that came with SUBSCRIBED).
 *   Events arrive in order, one at a time, never re-entrantly from inside a `call`.
 * - `onClose` is called once when the stream ends (the master sent ERROR, the framework failed
 *   over elsewhere, the connection dropped, or `close()` was called), with the reason.
 * - `call` resolves when the master accepted the call (HTTP 202) and rejects with
 *   SchedulerCallRefused (status and the master's message) otherwise; it needs no stream id: the
 *   transport adds what its carrier needs.
 */
export interface SchedulerHandlers {
  onEvent(event: Event): void;
  onClose(reason: string): void;
}

export interface SchedulerSubscription {
  readonly frameworkId: string;
  call(call: FrameworkCall): Promise<void>;
  /** Ends the stream from the framework's side (the master then starts its failover timeout). */
  close(): void;
}

export interface SchedulerTransport {
  subscribe(call: SubscribeCall, handlers: SchedulerHandlers): Promise<SchedulerSubscription>;
}

import type { MarathonEvent } from './marathon-events.ts';

/**
 * Takes one event. Return nothing when the event is handled; return a promise when it is not
 * yet (a stream waiting for its socket to drain): the bus hands this subscriber nothing more until
 * the promise settles, and queues what comes meanwhile. A listener that throws or rejects is
 * dropped (see `DropReason`).
 */
export type MarathonEventListener = (event: MarathonEvent) => void | PromiseLike<void>;

/** Why the bus dropped a subscriber. It is unsubscribed and its queue discarded. */
export type DropReason =
  | { kind: 'slow-subscriber'; queued: number }
  | { kind: 'listener-failed'; error: unknown };

export interface SubscribeOptions {
  /** Called once if the bus drops the subscriber; not called on `unsubscribe()`. */
  onDrop?(reason: DropReason): void;
}

export interface MarathonEventBusOptions {
  /**
   * How many events may wait for one subscriber (not counting the one it is handling) before the
   * bus drops it. Default 10,000. Marathon's counterpart is `--event_stream_max_outstanding_messages`
   * (default 50), after which Marathon 1.8+ drops the connection too.
   */
  maxQueuedPerSubscriber?: number;
}

export const DEFAULT_MAX_QUEUED_PER_SUBSCRIBER = 10_000;

/**
 * The services framework's event bus: what `/v2/events` streams.
 *
 * Contract:
 * - `publish` never blocks and never throws because of a subscriber.
 * - Each subscriber gets the events its filter lets through, in publish order, one at a time:
 *   the next only after the listener returned (or its promise settled). Events published from
 *   inside a listener are delivered after the current event has reached every subscriber, so the
 *   order is the same for all.
 * - Filter: `undefined` or an empty set lets everything through, as Marathon's `event_type`
 *   parameter does when absent; other names are matched exactly and need not be known event
 *   types. Filtered-out events never count against a subscriber's queue.
 * - Bounded memory: a subscriber that has more than `maxQueuedPerSubscriber` events waiting is
 *   dropped, not waited for. It loses its queue and learns it through `onDrop`; an SSE stream
 *   then closes its connection, and the client is expected to reconnect and re-read the state it
 *   needs (Marathon's documented contract for slow consumers).
 * - A listener that throws or rejects is dropped in the same way; the others are unaffected.
 */
export class MarathonEventBus {
  private readonly maxQueued: number;
  private readonly subscribers = new Set<Subscriber>();
  /** Events published while a publish is being delivered: they wait for their turn. */
  private readonly pending: MarathonEvent[] = [];
  private dispatching = false;

  constructor(options: MarathonEventBusOptions = {}) {
    const max = options.maxQueuedPerSubscriber ?? DEFAULT_MAX_QUEUED_PER_SUBSCRIBER;
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`maxQueuedPerSubscriber must be a whole number >= 0, not ${max}`);
    this.maxQueued = max;
  }

  /** How many subscribers are attached now (dropped and unsubscribed ones are gone). */
  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Returns `unsubscribe`, which may be called any number of times. */
  subscribe(filter: ReadonlySet<string> | undefined, listener: MarathonEventListener, options: SubscribeOptions = {}): () => void {
    const sub: Subscriber = {
      filter: filter !== undefined && filter.size > 0 ? new Set(filter) : undefined,
      listener,
      onDrop: options.onDrop,
      queue: new EventQueue(),
      busy: false,
      active: true,
    };
    this.subscribers.add(sub);
    return () => this.remove(sub);
  }

  publish(event: MarathonEvent): void {
    this.pending.push(event);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let e = this.pending.shift(); e !== undefined; e = this.pending.shift()) {
        // A snapshot: listeners may subscribe or unsubscribe while we deliver.
        for (const sub of [...this.subscribers]) {
          if (!sub.active || (sub.filter !== undefined && !sub.filter.has(e.eventType))) continue;
          sub.queue.push(e);
          // An idle subscriber has an empty queue and handles `e` at once; a busy one has
          // everything in its queue waiting.
          if (sub.busy && sub.queue.length > this.maxQueued) {
            this.drop(sub, { kind: 'slow-subscriber', queued: sub.queue.length });
            continue;
          }
          this.pump(sub);
        }
      }
    } finally {
      this.dispatching = false;
    }
  }

  /** Hands `sub` its queued events until one is still being handled or none is left. */
  private pump(sub: Subscriber): void {
    if (sub.busy) return;
    sub.busy = true;
    for (let e = sub.queue.shift(); e !== undefined && sub.active; e = sub.queue.shift()) {
      let result: void | PromiseLike<void>;
      try {
        result = sub.listener(e);
      } catch (error) {
        this.drop(sub, { kind: 'listener-failed', error });
        return;
      }
      if (isThenable(result)) {
        result.then(
          () => {
            sub.busy = false;
            if (sub.active) this.pump(sub);
          },
          (error: unknown) => this.drop(sub, { kind: 'listener-failed', error }),
        );
        return;
      }
    }
    sub.busy = false;
  }

  private drop(sub: Subscriber, reason: DropReason): void {
    if (!this.remove(sub)) return;
    try {
      sub.onDrop?.(reason);
    } catch {
      // The subscriber is gone either way; its cleanup failing is its own business.
    }
  }

  private remove(sub: Subscriber): boolean {
    if (!sub.active) return false;
    sub.active = false;
    sub.queue.clear();
    this.subscribers.delete(sub);
    return true;
  }
}

interface Subscriber {
  filter: ReadonlySet<string> | undefined;
  listener: MarathonEventListener;
  onDrop: ((reason: DropReason) => void) | undefined;
  queue: EventQueue;
  /** An event was handed to the listener and it has not finished with it. */
  busy: boolean;
  active: boolean;
}

function isThenable(value: unknown): value is PromiseLike<void> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** A FIFO with O(1) shift (Array#shift is O(n), and a queue may hold thousands). */
class EventQueue {
  private items: (MarathonEvent | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(e: MarathonEvent): void {
    this.items.push(e);
  }

  shift(): MarathonEvent | undefined {
    if (this.head >= this.items.length) return undefined;
    const e = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return e;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/**
 * Time as the master and agents see it. Everything that waits (allocation interval, offer
 * filters, failover timeouts, heartbeats) goes through a Clock, so that tests drive time with a
 * ManualClock and never sleep.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once, `delayMs` from now. */
  setTimer(delayMs: number, fn: () => void): Timer;
}

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The real clock. Timers do not keep the process alive on their own. */
export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    // setTimeout fires after 1 ms for delays over 2^31-1 ms (about 24.8 days): chain shorter ones.
    let t: ReturnType<typeof setTimeout>;
    const at = Date.now() + Math.max(0, delayMs);
    const arm = () => {
      const left = at - Date.now();
      t = setTimeout(left > MAX_TIMEOUT_MS ? arm : fn, Math.max(0, Math.min(left, MAX_TIMEOUT_MS)));
      t.unref();
    };
    arm();
    return { cancel: () => clearTimeout(t) };
  }
}

/**
 * The system clock moved by an offset that may change (`offset()`, read on every `now`): for tests
 * of behaviour that depends on the time of day (cron) in real processes, whose timers run in real
 * time. Timers are the system clock's.
 */
export class ShiftedClock implements Clock {
  private readonly system = new SystemClock();

  constructor(private readonly offset: () => number) {}

  now(): number {
    return Date.now() + this.offset();
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    return this.system.setTimer(delayMs, fn);
  }
}

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told. `advance(ms)` runs every timer due in that span in time
 * order (timers set while advancing run too when due), then leaves `now()` at the end of the span.
 * Timers sit in a binary heap, so simulations with many timers stay fast.
 */
export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly heap: ManualTimer[] = [];
  private live = 0;

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const timer: ManualTimer = { at: this.time + Math.max(0, delayMs), seq: this.seq++, fn, cancelled: false };
    this.push(timer);
    this.live++;
    return {
      cancel: () => {
        if (!timer.cancelled) {
          timer.cancelled = true;
          this.live--;
        }
      },
    };
  }

  /** Moves time forward by `ms`, running the timers that fall due. `advance(0)` runs what is due now. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const next = this.heap[0];
      if (next === undefined || next.at > end) break;
      this.pop();
      if (next.cancelled) continue;
      next.cancelled = true;
      this.live--;
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = Math.max(this.time, end);
  }

  /** When the next timer falls due, if any. */
  nextDue(): number | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0]?.at;
  }

  /** How many timers are waiting. */
  pending(): number {
    return this.live;
  }

  private before(a: ManualTimer, b: ManualTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(t: ManualTimer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

import { SchedulerCallRefused } from '../core/errors.ts';
import type { FrameworkConnection, Master } from '../master/master.ts';
import { parseCall } from '../protocol/parse-call.ts';
import type { Event, FrameworkCall, SubscribeCall } from '../protocol/scheduler.ts';
import { schedulerCallRefusal } from '../protocol/scheduler-error-reply.ts';
import type { SchedulerHandlers, SchedulerSubscription, SchedulerTransport } from '../protocol/scheduler-transport.ts';

/**
 * The scheduler API in process, for the built-in frameworks of `slipway up`: the same calls and
 * events as over HTTP, with the same checks (calls are parsed as the HTTP layer parses them) and
 * the same errors (the HTTP status a call would have had). Events are queued and delivered on a
 * later turn of the event loop, in order, so a framework is never re-entered from inside the
 * master, exactly as with a network in between.
 */
export class InProcessScheduler implements SchedulerTransport {
  /**
   * `principal` is the framework's (FrameworkInfo.principal), as the HTTP layer sets it from the
   * caller's token: a built-in framework of `slipway up` has its own (`slipway-apps`,
   * `slipway-ci`), so that no one over HTTP may subscribe with its framework id.
   */
  constructor(
    private readonly master: Master,
    private readonly principal?: string,
  ) {}

  async subscribe(call: SubscribeCall, handlers: SchedulerHandlers): Promise<SchedulerSubscription> {
    if (this.principal !== undefined) call = { ...call, subscribe: { ...call.subscribe, framework_info: { ...call.subscribe.framework_info, principal: this.principal } } };
    parseOrRefuse(call);
    const queue: Event[] = [];
    let open = true;
    let scheduled = false;
    let closeReason: string | undefined;
    let subscribed: (() => void) | undefined;
    const whenSubscribed = new Promise<void>((resolve) => (subscribed = resolve));
    const deliver = () => {
      scheduled = false;
      while (queue.length > 0) {
        const e = queue.shift()!;
        handlers.onEvent(e);
        if (e.type === 'SUBSCRIBED') {
          subscribed?.();
          // Later events wait for a later turn, after subscribe() has resolved (the contract).
          if (queue.length > 0 || closeReason !== undefined) schedule();
          return;
        }
      }
      if (closeReason !== undefined) {
        const reason = closeReason;
        closeReason = undefined;
        handlers.onClose(reason);
      }
    };
    const schedule = () => {
      if (!scheduled) {
        scheduled = true;
        setImmediate(deliver);
      }
    };
    const conn: FrameworkConnection = {
      send: (event) => {
        if (!open) return;
        queue.push(event);
        schedule();
      },
      close: () => {
        if (!open) return;
        open = false;
        const last = queue[queue.length - 1];
        closeReason = last?.type === 'ERROR' ? last.error.message : 'the master ended the stream';
        schedule();
      },
    };
    let frameworkId: string;
    try {
      frameworkId = this.master.subscribe(call, conn);
    } catch (e) {
      throw schedulerCallRefusal(e);
    }
    await whenSubscribed;
    const master = this.master;
    return {
      frameworkId,
      async call(c: FrameworkCall): Promise<void> {
        if (!open) throw new SchedulerCallRefused(403, `framework ${frameworkId} is not subscribed on this stream`);
        parseOrRefuse(c);
        try {
          master.call(c);
        } catch (e) {
          throw schedulerCallRefusal(e);
        }
      },
      close() {
        if (!open) return;
        open = false;
        master.disconnect(frameworkId, conn);
        closeReason = 'closed by the framework';
        schedule();
      },
    };
  }
}

function parseOrRefuse(call: unknown): void {
  try {
    parseCall(call);
  } catch (e) {
    throw schedulerCallRefusal(e);
  }
}


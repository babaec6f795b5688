import type { Clock, Timer } from '../../core/clock.ts';
import type { AppDefinition } from './app-definition.ts';
import type { ReadinessCheckResultJson } from './deployment/deployment-plan.ts';
import type { Instance } from './instance.ts';
import { probeReadiness, type ReadinessResult } from './readiness-probe.ts';

export interface ReadinessProberOptions {
  clock: Clock;
  /** Each result, ready or not (the framework records it in a turn of its own). */
  onResult(result: ReadinessCheckResultJson): void;
  /** One probe (probeReadiness: an HTTP GET of the instance). */
  probe?: typeof probeReadiness;
}

/**
 * Polls the readiness check of running instances until each is ready (Marathon runs readiness
 * checks itself, not the agent): the first probe at once, then every `intervalSeconds` of the
 * check, on the injected clock. The edge of the services framework: it only reports results;
 * deciding what they mean is the framework's planner's.
 *
 * Contract: at most one poll per task id; `stop` (the instance ended) and `stopAll` (the
 * framework stops) end polls, and a probe in flight when they do reports nothing.
 */
export class ReadinessProber {
  private readonly polls = new Map<string, { timer?: Timer; stopped: boolean }>();
  private readonly probe: typeof probeReadiness;

  constructor(private readonly o: ReadinessProberOptions) {
    this.probe = o.probe ?? probeReadiness;
  }

  /** Polls the instance's first readiness check of `def` (no-op if polled already or it has none). */
  start(inst: Instance, def: AppDefinition): void {
    const check = def.readinessChecks[0];
    if (check === undefined || this.polls.has(inst.taskId)) return;
    const port = inst.ports[def.portDefinitions.findIndex((p) => p.name === check.portName)];
    const poll: { timer?: Timer; stopped: boolean } = { stopped: false };
    this.polls.set(inst.taskId, poll);
    const run = async () => {
      if (poll.stopped) return;
      const r: ReadinessResult = port === undefined ? { ready: false, error: `no port named ${check.portName}` } : await this.probe(check, inst.host, port);
      if (poll.stopped) return;
      this.o.onResult({ name: check.name, taskId: inst.taskId, ready: r.ready, ...(r.lastResponse !== undefined ? { lastResponse: r.lastResponse } : {}) });
      if (r.ready) {
        this.stop(inst.taskId);
        return;
      }
      poll.timer = this.o.clock.setTimer(check.intervalSeconds * 1000, () => void run());
    };
    void run();
  }

  stop(taskId: string): void {
    const poll = this.polls.get(taskId);
    if (poll === undefined) return;
    poll.stopped = true;
    poll.timer?.cancel();
    this.polls.delete(taskId);
  }

  stopAll(): void {
    for (const id of [...this.polls.keys()]) this.stop(id);
  }
}

import type { Clock, Timer } from '../core/clock.ts';
import { isTerminal, type TaskState } from '../core/task-state.ts';
import { newUuidBase64 } from '../core/uuid.ts';
import type { AgentTask, AgentToMaster, MasterToAgent } from '../protocol/agent.ts';
import type { Attribute, FrameworkID, FrameworkInfo, Resource, TaskInfo, TaskStatus } from '../protocol/mesos.ts';

/**
 * A simulated agent: a real fake of the agent daemon, in process, like the emulated agents of the
 * Mesos paper. It speaks the agent protocol (it receives MasterToAgent messages and sends
 * AgentToMaster ones), keeps a status update stream per task with the real rules (in order per
 * task, resent until acknowledged), and "runs" tasks: a task is RUNNING at once and FINISHes after
 * its duration (label `sim.duration_ms`, else the agent's default; none: it runs until killed).
 * A task with label `sim.exit` = `failed` FAILs instead of finishing. A task with a health check
 * is RUNNING unhealthy, then healthy after label `sim.healthy_after_ms` (default: the check's
 * `delay_seconds`), as the agent's health checker would report it.
 *
 * Inbound messages are queued and handled in `drain()`, so the master is never re-entered from
 * inside one of its own calls; the harness decides when agents run.
 */

export interface SimAgentOptions {
  hostname: string;
  resources: Resource[];
  attributes?: Attribute[];
  clock: Clock;
  /** Default run time of a task; undefined: until killed. */
  taskDurationMs?: number;
  /** First resend of an unacknowledged update; doubles up to 10 minutes (Mesos's rule). */
  retryMs?: number;
}

/** What the agent sends to the master; the harness wires it to `Master.registerAgent` / `agentMessage`. */
export type AgentOutbox = (agent: SimAgent, message: AgentToMaster) => void;

interface SimTask {
  framework: FrameworkInfo & { id: FrameworkID };
  info: TaskInfo;
  state: TaskState;
  /** Updates not yet acknowledged, oldest first; only the head is in flight. */
  pending: (TaskStatus & { uuid: string })[];
  sentAt: number;
  timer: Timer | undefined;
  healthTimer?: Timer | undefined;
}

export class SimAgent {
  agentId: string | undefined;
  private agentIdObj: { value: string } | undefined;
  private readonly tasks = new Map<string, SimTask>();
  private inbox: MasterToAgent[] = [];
  private retryTimer: Timer | undefined;
  private heartbeatTimer: Timer | undefined;
  private retryMs: number;
  private readonly baseRetryMs: number;
  /** False while partitioned: nothing goes out, nothing comes in. */
  connected = false;

  constructor(
    readonly options: SimAgentOptions,
    private readonly outbox: AgentOutbox,
    /** Called when a message is queued, so the harness knows this agent has work. */
    private readonly wake: (agent: SimAgent) => void,
  ) {
    this.baseRetryMs = options.retryMs ?? 10_000;
    this.retryMs = this.baseRetryMs;
  }

  /** The agent's side of its stream: the master sends here. */
  receive(message: MasterToAgent): void {
    if (!this.connected) return;
    this.inbox.push(message);
    this.wake(this);
  }

  /** Sends REGISTER (or reregisters with its id and running tasks). */
  register(): void {
    this.connected = true;
    const tasks: AgentTask[] = [];
    const frameworks = new Map<string, FrameworkInfo>();
    for (const t of this.tasks.values()) {
      tasks.push({ framework_id: t.framework.id, task: t.info, state: t.state });
      frameworks.set(t.framework.id.value, t.framework);
    }
    this.outbox(this, {
      type: 'REGISTER',
      ...(this.agentId !== undefined ? { agent_id: { value: this.agentId } } : {}),
      hostname: this.options.hostname,
      resources: this.options.resources,
      attributes: this.options.attributes ?? [],
      tasks,
      frameworks: [...frameworks.values()],
    });
  }

  /** Cuts the agent off (a partition or a crash of its link); its tasks keep running. */
  disconnect(): void {
    this.connected = false;
    this.inbox = [];
  }

  /** Handles queued messages; returns how many. */
  drain(): number {
    const batch = this.inbox;
    this.inbox = [];
    for (const m of batch) this.handle(m);
    return batch.length;
  }

  runningTasks(): number {
    let n = 0;
    for (const t of this.tasks.values()) if (!isTerminal(t.state)) n++;
    return n;
  }

  taskState(taskId: string): TaskState | undefined {
    return this.tasks.get(taskId)?.state;
  }

  /** Ends a task as if its process exited on its own. */
  finishTask(taskId: string, state: 'TASK_FINISHED' | 'TASK_FAILED' = 'TASK_FINISHED'): void {
    const t = this.tasks.get(taskId);
    if (t !== undefined && !isTerminal(t.state)) this.transition(t, state, state === 'TASK_FAILED' ? 'Command exited with status 1' : 'Command exited with status 0');
  }

  private handle(m: MasterToAgent): void {
    switch (m.type) {
      case 'REGISTERED':
        this.agentId = m.agent_id.value;
        this.agentIdObj = m.agent_id;
        this.heartbeat(m.heartbeat_interval_seconds * 1000);
        // A new master (or a reconnection) must hear about updates still in flight.
        for (const t of this.tasks.values()) if (t.pending.length > 0) this.sendHead(t);
        return;
      case 'LAUNCH':
        this.launch(m.framework, m.task);
        return;
      case 'KILL': {
        const t = this.tasks.get(m.task_id.value);
        if (t === undefined) {
          // Unknown here: tell the master it is gone, reliably like any update.
          const ghost: SimTask = { framework: { name: '', id: m.framework_id }, info: { name: '', task_id: m.task_id, agent_id: { value: this.agentId ?? '' }, resources: [] }, state: 'TASK_STAGING', pending: [], sentAt: 0, timer: undefined };
          this.tasks.set(m.task_id.value, ghost);
          this.transition(ghost, 'TASK_LOST', 'Task is not known to the agent');
          return;
        }
        if (isTerminal(t.state)) return;
        // TASK_KILLING first, for frameworks that asked for it (Mesos's TASK_KILLING_STATE).
        if ((t.framework.capabilities ?? []).some((c) => c.type === 'TASK_KILLING_STATE')) this.transition(t, 'TASK_KILLING', undefined);
        // A kill the master decided carries its reason (DRAIN_AGENT), which the update reports.
        this.transition(t, 'TASK_KILLED', m.reason?.message ?? 'Killed by the framework', undefined, m.reason?.status);
        return;
      }
      case 'ACKNOWLEDGE': {
        const t = this.tasks.get(m.task_id.value);
        if (t === undefined || t.pending[0]?.uuid !== m.uuid) return; // Duplicate or stale ack.
        t.pending.shift();
        if (t.pending.length > 0) this.sendHead(t);
        else if (isTerminal(t.state)) this.tasks.delete(m.task_id.value);
        return;
      }
      case 'SHUTDOWN_FRAMEWORK':
        for (const [id, t] of this.tasks) {
          if (t.framework.id.value !== m.framework_id.value) continue;
          t.timer?.cancel();
          this.tasks.delete(id);
        }
        return;
      case 'HEARTBEAT':
        return;
    }
  }

  private launch(framework: FrameworkInfo & { id: FrameworkID }, info: TaskInfo): void {
    const t: SimTask = { framework, info, state: 'TASK_STAGING', pending: [], sentAt: 0, timer: undefined };
    this.tasks.set(info.task_id.value, t);
    this.transition(t, 'TASK_STARTING', undefined);
    const label = (key: string) => info.labels?.labels.find((l) => l.key === key)?.value;
    const check = info.health_check;
    this.transition(t, 'TASK_RUNNING', undefined, check !== undefined ? false : undefined);
    if (check !== undefined) {
      const after = label('sim.healthy_after_ms') !== undefined ? Number(label('sim.healthy_after_ms')) : (check.delay_seconds ?? 0) * 1000;
      t.healthTimer = this.options.clock.setTimer(after, () => {
        t.healthTimer = undefined;
        if (t.state !== 'TASK_RUNNING') return;
        this.transition(t, 'TASK_RUNNING', undefined, true);
        this.wake(this);
      });
    }
    const duration = label('sim.duration_ms') !== undefined ? Number(label('sim.duration_ms')) : this.options.taskDurationMs;
    if (duration !== undefined) {
      const end = label('sim.exit') === 'failed' ? 'TASK_FAILED' : 'TASK_FINISHED';
      t.timer = this.options.clock.setTimer(duration, () => {
        t.timer = undefined;
        this.finishTask(info.task_id.value, end);
        this.wake(this);
      });
    }
  }

  /** Heartbeats while connected, as the agent protocol asks. One timer per agent. */
  private heartbeat(intervalMs: number): void {
    this.heartbeatTimer?.cancel();
    const beat = () => {
      if (!this.connected) return;
      this.outbox(this, { type: 'HEARTBEAT' });
      this.heartbeatTimer = this.options.clock.setTimer(intervalMs, beat);
    };
    this.heartbeatTimer = this.options.clock.setTimer(intervalMs, beat);
  }

  /** Records a new state and queues its update; sends it if nothing else of the task is in flight. */
  private transition(t: SimTask, state: TaskState, message: string | undefined, healthy?: boolean, reason?: TaskStatus['reason']): void {
    t.state = state;
    if (isTerminal(state)) {
      t.timer?.cancel();
      t.timer = undefined;
      t.healthTimer?.cancel();
      t.healthTimer = undefined;
    }
    const status: TaskStatus & { uuid: string } = {
      task_id: t.info.task_id,
      state,
      source: 'SOURCE_EXECUTOR',
      uuid: newUuidBase64(),
      ...(this.agentIdObj !== undefined ? { agent_id: this.agentIdObj } : {}),
      timestamp: this.options.clock.now() / 1000,
      ...(message !== undefined ? { message } : {}),
      ...(healthy !== undefined ? { healthy } : {}),
      ...(reason !== undefined ? { reason } : {}),
    };
    t.pending.push(status);
    if (t.pending.length === 1) this.sendHead(t);
  }

  private sendHead(t: SimTask): void {
    const head = t.pending[0];
    if (head === undefined || !this.connected || this.agentId === undefined) return;
    t.sentAt = this.options.clock.now();
    this.outbox(this, { type: 'STATUS_UPDATE', framework_id: t.framework.id, status: head, latest_state: t.state });
    this.armRetry();
  }

  /** One timer per agent resends every update unacknowledged for longer than the retry interval. */
  private armRetry(): void {
    if (this.retryTimer !== undefined) return;
    this.retryTimer = this.options.clock.setTimer(this.retryMs, () => {
      this.retryTimer = undefined;
      const now = this.options.clock.now();
      const due: SimTask[] = [];
      let waiting = false;
      for (const t of this.tasks.values()) {
        if (t.pending.length === 0) continue;
        waiting = true;
        if (now - t.sentAt >= this.retryMs) due.push(t);
      }
      // Back off before resending, so that the next round waits the doubled interval.
      this.retryMs = waiting ? Math.min(this.retryMs * 2, 600_000) : this.baseRetryMs;
      for (const t of due) this.sendHead(t);
      if (waiting) this.armRetry();
    });
  }
}

import type { AgentID, Attribute, FrameworkID, FrameworkInfo, KillPolicy, Resource, TaskID, TaskInfo, TaskStatus } from './mesos.ts';
import type { TaskState, TaskStatusReason } from '../core/task-state.ts';

/**
 * Slipway's agent protocol: what an agent and the master say over the agent's one long-lived
 * stream, a WebSocket to `GET <master>/api/v1/agent` carrying one JSON message per frame.
 *
 * Contract:
 * - The agent's first message is REGISTER (with its `agent_id` when it has one, and every task it
 *   still runs); the master answers REGISTERED with the id and the heartbeat interval, or ERROR
 *   and closes the stream (bad message, an id removed by the operator).
 * - The agent sends HEARTBEAT every interval (default 5 s). The master marks the agent
 *   unreachable after 3 intervals without one, or when the stream is gone for longer than the
 *   grace period (default 5 s) without a new REGISTER. The agent reconnects with backoff
 *   (100 ms doubling to 2 s) and reregisters for as long as it runs.
 * - The master sends LAUNCH, KILL, ACKNOWLEDGE (forwarded from the framework) and
 *   SHUTDOWN_FRAMEWORK; nothing the master sends needs an answer but the status updates that
 *   follow. Messages that cannot be delivered (no stream) are dropped: the master learns the
 *   truth from the next REGISTER, the agent from the master's next command.
 * - A planned restart: an agent that stops on purpose (SIGTERM, `slipway agent` stopped, or
 *   `Agent.announceRestart()`) sends RESTARTING before its stream ends. The master then offers
 *   nothing more of it and gives it `agentRestartGraceMs` (default 120 s) instead of the reconnect
 *   grace to REGISTER again before its tasks are reported unreachable; its tasks keep running
 *   meanwhile (containers outlive the agent process). A machine that is lost sends nothing and
 *   gets the short grace. RESTARTING is cleared by the next REGISTER.
 * - KILL may carry the reason of a kill the master decided (an operator's DRAIN_AGENT): the
 *   agent reports TASK_KILLED with that reason and message.
 * - Which errors are retried: status updates, always (below); nothing else is.
 * Mesos has no public agent-to-master API; these messages carry the same information as
 * Mesos's internal ones (RegisterSlaveMessage, RunTaskMessage, StatusUpdateMessage, ...).
 *
 * Lifecycle of an agent, as the master sees it:
 *
 *   (none) ──REGISTER──► ACTIVE ──stream lost / heartbeats missed past the grace──► UNREACHABLE
 *                          ▲  │                                                        │
 *                          │  └──────────── removed by the operator ───► GONE          │
 *                          └──────────────── REREGISTER (same id) ◄──────────────────────┘
 *
 * Status updates: the agent checkpoints each update, sends it, and resends it with backoff until
 * the framework's ACKNOWLEDGE comes back through the master. Per task, only the oldest
 * unacknowledged update is in flight, so frameworks see a task's updates in order. An update
 * carries the task's latest state too, so the master knows the present even while the framework
 * is still being told the past.
 */

/** A task as the agent reports it when it (re)registers. */
export interface AgentTask {
  framework_id: FrameworkID;
  task: TaskInfo;
  state: TaskState;
}

export type AgentToMaster =
  | {
      type: 'REGISTER';
      /** Present on reregistration: the id the agent had, kept in its work dir. */
      agent_id?: AgentID;
      hostname: string;
      /** Where the agent serves sandbox files (http://host:port); the master proxies /files to it. */
      url?: string;
      /** The agent's containerizers and whether they enforce cpu and memory limits (and why not). */
      containerizers?: { kind: string; limits: { enforced: boolean; reason?: string } }[];
      resources: Resource[];
      attributes: Attribute[];
      /** The tasks the agent still runs (reregistration after an agent or master restart). */
      tasks: AgentTask[];
      /** Frameworks of those tasks, so a master that lost its state can learn them again. */
      frameworks: FrameworkInfo[];
    }
  | { type: 'HEARTBEAT' }
  | { type: 'STATUS_UPDATE'; framework_id: FrameworkID; status: TaskStatus & { uuid: string }; latest_state: TaskState }
  /** The agent stops on purpose and will be back (see the contract above): sent last, before the stream ends. */
  | { type: 'RESTARTING' };

export type MasterToAgent =
  | { type: 'REGISTERED'; agent_id: AgentID; heartbeat_interval_seconds: number }
  /**
   * `secrets`: the values of the secrets the task references (protocol/task-secrets.ts), by store
   * name; sent to this agent alone, kept in memory only (not checkpointed with the task).
   */
  | { type: 'LAUNCH'; framework: FrameworkInfo & { id: FrameworkID }; task: TaskInfo; secrets?: Record<string, string> }
  | { type: 'KILL'; framework_id: FrameworkID; task_id: TaskID; kill_policy?: KillPolicy; /** Why the master kills it (TASK_KILLED's reason and message). */ reason?: { status: TaskStatusReason; message: string } }
  | { type: 'ACKNOWLEDGE'; framework_id: FrameworkID; task_id: TaskID; uuid: string }
  | { type: 'SHUTDOWN_FRAMEWORK'; framework_id: FrameworkID }
  | { type: 'HEARTBEAT' }
  /** The master refuses the agent (bad REGISTER, removed id); the stream ends after it. */
  | { type: 'ERROR'; message: string };

import { SlipwayError } from '../core/errors.ts';
import type { CommandInfo, ContainerInfo } from '../protocol/mesos.ts';
import type { TaskUser } from './task-user.ts';

/** A containerizer that was asked for but cannot work here (unknown kind, no Docker engine). */
export class ContainerizerUnavailable extends SlipwayError {
  readonly code = 'CONTAINERIZER_UNAVAILABLE';
  readonly status = 503;
}

/**
 * The port every containerizer implements (process, docker). The agent owns tasks, states and
 * status updates; a containerizer only starts, watches, stops and finds again what runs.
 *
 * Lifecycle of a container, as the agent drives it:
 *
 *   launch() ──► running ──(exits by itself)──────────────► wait() resolves {exitCode | signal}
 *                   │
 *                   └── kill(grace) ── SIGTERM / docker stop ──(grace)── SIGKILL ──► wait() resolves
 *
 *   agent restarts:  recover(refs) ──► for each ref: still running (wait() works again on it)
 *                                       or already ended (its exit, when it can be known)
 *
 * Contracts:
 * - `launch` resolves once the container runs (the agent then reports TASK_RUNNING) and rejects
 *   with a message for the user when it cannot start (bad image, no such command...): the agent
 *   reports TASK_FAILED with REASON_CONTAINER_LAUNCH_FAILED.
 * - A ContainerRef is plain JSON: the agent checkpoints it to disk and hands it back to `recover`
 *   after a restart of the agent (kill -9 included). Containers outlive the agent process.
 * - stdout and stderr of the task go to `<sandbox>/stdout` and `<sandbox>/stderr`, appended.
 * - `wait` may be called once per ref per agent process; it resolves, never rejects.
 */

export interface LaunchSpec {
  frameworkId: string;
  taskId: string;
  agentId: string;
  /** Absolute path of the task's sandbox directory; it exists when launch is called. */
  sandbox: string;
  /**
   * A directory of the agent's own, out of the task's reach, for the containerizer's files about
   * this container (exit status, kill notes, cgroups, log positions); made if missing. Default
   * `<sandbox>/.slipway`, which is fine only while the task runs as the agent's own user: a task
   * of another user owns its sandbox and could put links there for the agent to write through.
   */
  metaDir?: string;
  /**
   * The user the task runs as (resolved on this host), when the agent runs as root: the process
   * containerizer drops to its uid, gid and groups (setpriv); the docker containerizer passes
   * `User: uid:gid` and its other groups (`GroupAdd`). Absent: the agent's own user (process) or
   * `command.user` as given, else the image's user (docker).
   */
  user?: TaskUser;
  command: CommandInfo | undefined;
  container: ContainerInfo | undefined;
  /** The whole environment of the task, computed by the agent (PORT0.., HOST, MESOS_*, task's own). */
  env: Record<string, string>;
  /** Limits from the task's resources. */
  cpus: number;
  memMb: number;
  ports: number[];
}

export type ContainerRef =
  | { kind: 'process'; pid: number; /** From /proc/<pid>/stat, to tell a recycled pid apart. */ startTime: string; sandbox: string; /** LaunchSpec.metaDir; absent: `<sandbox>/.slipway`. */ meta?: string }
  | { kind: 'docker'; containerId: string; name: string; sandbox: string; /** LaunchSpec.metaDir; absent: `<sandbox>/.slipway`. */ meta?: string };

export interface ContainerExit {
  /** Exit code, when the container exited; undefined when killed by a signal or unknown. */
  exitCode?: number;
  signal?: string;
  /** For the status update's message, e.g. "Command exited with status 3". */
  message: string;
  /** The memory limit was hit (cgroup OOM kill). */
  oomKilled?: boolean;
}

export type Recovered = { running: true } | { running: false; exit: ContainerExit };

export interface ContainerizerInfo {
  kind: 'process' | 'docker';
  /** Whether cpu and memory limits are enforced, and why not when they are not. */
  limits: { enforced: boolean; reason?: string };
}

export interface Containerizer {
  readonly kind: 'process' | 'docker';
  info(): ContainerizerInfo;
  launch(spec: LaunchSpec): Promise<ContainerRef>;
  wait(ref: ContainerRef): Promise<ContainerExit>;
  /** SIGTERM (docker stop), then SIGKILL after `gracePeriodMs`. Resolves when the signal(s) were sent. */
  kill(ref: ContainerRef, gracePeriodMs: number): Promise<void>;
  recover(refs: ContainerRef[]): Promise<Recovered[]>;
  /** Containers of this agent that no checkpoint knows (docker: by label), to be killed. */
  orphans?(agentId: string, known: ContainerRef[]): Promise<ContainerRef[]>;
  /**
   * The agent is stopping: stop watching. Containers keep running (the next agent recovers
   * them); pending and later `wait`s may never settle, and hold nothing that keeps the process
   * alive (child handles, engine connections, log followers).
   */
  release(): void;
}

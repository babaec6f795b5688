import type { RegistryAccess } from './engine/build-image-step.ts';
import type { ArtifactStoreAccess } from './engine/publish-step.ts';
import type { BuildEvent, Pipeline, StepOutput, StepStatus } from './pipeline/pipeline.ts';

/**
 * What a CI executor (`slipway ci-executor`, a task the CI framework launched on an agent) and
 * the CI server say over the executor's one stream: a WebSocket to
 * `GET <ci>/ci/v1/executor-stream?executor=<id>&token=<token>`, one JSON message per frame.
 * The launch token is in the task's environment (`SLIPWAY_EXECUTOR_TOKEN`), never on its
 * command line; it is good for a while after the launch (CI's `executorTokenTtlMs`, default 10
 * minutes) and the executor's first WELCOME gives it a session token that replaces it.
 * Woodpecker's agent/server contract (rpc/peer.go) in Slipway's terms; this module is the one
 * place it is written down.
 *
 * Lifecycle of an executor, as CI sees it:
 *
 *   (launch from an offer) ─► launching ─HELLO─► idle ◄──BUILD_DONE── busy
 *                                          │ ▲       ───BUILD────────►
 *                                          │ └─ stream lost: the executor reconnects (same id),
 *                                          │    saying which build it still runs, if any
 *                                          └─ idle past idleTerminationSeconds ─SHUTDOWN─► exits
 *   The task ending (any way) ends the executor: CI fails the build it ran, if any, as `error`.
 *
 * Contract:
 * - The executor's first message is HELLO (its id, label, and the build it runs if it
 *   reconnects mid-build). CI answers WELCOME, or ERROR and closes (unknown id, bad or expired
 *   token: the token is given to the task at launch, so only executors CI launched can connect,
 *   and only while they live).
 * - CI sends BUILD only to an idle executor; the executor runs it and reports STEP_STARTED,
 *   LOG, STEP_FINISHED and finally BUILD_DONE, then is idle again. CANCEL stops a build (BUILD_DONE
 *   follows with `cancelled`). SHUTDOWN makes an idle executor exit 0.
 * - Both sides send HEARTBEAT every 5 s; either takes the stream for lost after 3 missed.
 * - Which messages are retried: reports of a build (STEP_*, LOG, BUILD_DONE) carry a sequence
 *   number per build; the executor keeps what CI has not acknowledged (ACK with the highest
 *   number received in order) and resends it after reconnecting, so a CI restart loses no log
 *   line and no result. CI ignores numbers it has seen. Nothing else is retried.
 * - An executor whose stream stays lost for 60 s while idle exits (CI is gone, or forgot it); a
 *   busy one finishes its build first and keeps its reports until it can deliver them or the task
 *   is killed.
 */

export interface BuildSpec {
  job: string;
  number: number;
  /** Git URL or local path, and what to check out. */
  repo: string;
  commit: string;
  branch?: string;
  tag?: string;
  event: BuildEvent;
  pipeline: Pipeline;
  /** The job's env, and CI's own variables, for every step. */
  env: Record<string, string>;
  /**
   * The job's secrets, for every step's environment like `env`. The executor masks each (and its
   * base64 and URL-encoded forms) in the log it reports, a value split across pieces included;
   * CI masks them again in each piece it stores.
   */
  secrets?: Record<string, string>;
  /**
   * The job's artifact stores by name, for publish steps, each password read from the secret
   * store as the build started (masked in the log like `secrets`, and given to no step's environment).
   */
  artifactStores?: Record<string, ArtifactStoreAccess>;
  /** The job's image registries by name, for build-image steps, each password read as the artifact stores' are. */
  registries?: Record<string, RegistryAccess>;
}

export type ExecutorToServer =
  | { type: 'HELLO'; executorId: string; label: string; hostname: string; running?: { job: string; number: number } }
  | { type: 'HEARTBEAT' }
  | { type: 'STEP_STARTED'; job: string; number: number; seq: number; step: string; at: number }
  | { type: 'LOG'; job: string; number: number; seq: number; step: string; at: number; text: string }
  | {
      type: 'STEP_FINISHED';
      job: string;
      number: number;
      seq: number;
      step: string;
      at: number;
      status: StepStatus;
      exitCode?: number;
      error?: string;
      /** What the step made that outlives the build (a publish step's artifacts, a build-image step's images): added to the build's `outputs`. */
      outputs?: StepOutput[];
    }
  | {
      type: 'BUILD_DONE';
      job: string;
      number: number;
      seq: number;
      at: number;
      status: 'success' | 'failure' | 'cancelled' | 'error';
      error?: string;
      /**
       * Artifact paths (relative to the workspace), each uploaded before BUILD_DONE with
       * `PUT <ci>/ci/v1/jobs/{job}/builds/{n}/artifacts/{path}` and the executor's token: an
       * executor may run on another machine than CI, and its workspace goes with it.
       */
      artifacts: string[];
    };

export type ServerToExecutor =
  /**
   * `token`: the executor's session token, given when it proved the launch token: it proves
   * itself with this one from now on (a reconnect's HELLO, artifact uploads), since the launch
   * token expires a while after the launch.
   */
  | { type: 'WELCOME'; heartbeatIntervalSeconds: number; token?: string }
  | { type: 'ERROR'; message: string }
  | { type: 'HEARTBEAT' }
  | { type: 'BUILD'; build: BuildSpec }
  | { type: 'CANCEL'; job: string; number: number }
  | { type: 'ACK'; job: string; number: number; seq: number }
  | { type: 'SHUTDOWN' };

export const EXECUTOR_HEARTBEAT_SECONDS = 5;
export const MISSED_HEARTBEATS = 3;

import type { CommandsStep, StepOutput } from '../pipeline/pipeline.ts';

/** What a step runner gets: the step, where and with what it runs, and where its output goes. */
export interface StepRunSpec {
  step: CommandsStep;
  /** Absolute path of the workspace: the working directory (and, for an image step, the mount). */
  workspace: string;
  env: Record<string, string>;
  /** Aborted: stop the step (SIGTERM, then SIGKILL after killGraceMs) and answer `cancelled`. */
  signal: AbortSignal;
  killGraceMs: number;
  /** Output, stdout and stderr together, in the order written. */
  output: (chunk: Buffer) => void;
}

/** How a step ended: `failure` is the step's own doing (exit status), `error` the engine's (could not run it). */
export interface StepOutcome {
  status: 'success' | 'failure' | 'cancelled' | 'error';
  exitCode?: number;
  error?: string;
  /** What the step made that outlives the build (a publish step's artifacts). */
  outputs?: StepOutput[];
}

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandsStep, Pipeline, PipelineStep } from '../pipeline/pipeline.ts';
import type { BuildContext } from './build-context.ts';
import { runPipeline } from './run-pipeline.ts';
import type { PipelineEvent, PipelineResult, RunPipelineOptions, StepResult } from './run-pipeline.ts';

// Helpers of the engine's tests (run-pipeline.test.ts, image-step.test.ts): pipelines written
// short, a fresh workspace per test, and a run that records its events.

export function step(name: string, commands: string[], more: Partial<Omit<CommandsStep, 'kind'>> = {}): CommandsStep {
  return { name, kind: 'commands', commands, environment: {}, when: [], dependsOn: [], failure: 'fail', ...more };
}

/** The pipeline's rule without `depends_on`: each step waits for the one before it. */
export function sequential(...steps: PipelineStep[]): Pipeline {
  return { steps: steps.map((s, i) => (i === 0 ? s : { ...s, dependsOn: [steps[i - 1]!.name] })), artifacts: [] };
}

export function dag(...steps: PipelineStep[]): Pipeline {
  return { steps, artifacts: [] };
}

export const BUILD: BuildContext = { jobName: 'shop', number: 7, event: 'push', branch: 'main', commitSha: 'c0ffee', env: {} };

const workspaces: string[] = [];

export async function workspace(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-engine-'));
  workspaces.push(dir);
  return dir;
}

export async function removeWorkspaces(): Promise<void> {
  await Promise.all(workspaces.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

export interface Run {
  result: PipelineResult;
  events: PipelineEvent[];
  step(name: string): StepResult;
  /** The step's log, its pieces concatenated. */
  log(name: string): string;
}

export async function run(pipeline: Pipeline, options: Partial<RunPipelineOptions> & { workspace: string }): Promise<Run> {
  const events: PipelineEvent[] = [];
  const result = await runPipeline(pipeline, {
    build: BUILD,
    ...options,
    onEvent: (e) => {
      events.push(e);
      options.onEvent?.(e);
    },
  });
  return {
    result,
    events,
    step: (name) => {
      const found = result.steps.find((s) => s.name === name);
      if (found === undefined) throw new Error(`no step ${name} in the result`);
      return found;
    },
    log: (name) => events.flatMap((e) => (e.type === 'log' && e.step === name ? [e.text] : [])).join(''),
  };
}

/** A time a step wrote with `date +%s%N` into a file of the workspace, in ms since the epoch. */
export async function stamp(ws: string, file: string): Promise<number> {
  return Number(BigInt((await readFile(join(ws, file), 'utf8')).trim()) / 1_000_000n);
}

/** Commands that record when they start and end, around a sleep. */
export function timed(name: string, seconds: number): string[] {
  return [`date +%s%N > ${name}.start`, `sleep ${seconds}`, `date +%s%N > ${name}.end`];
}

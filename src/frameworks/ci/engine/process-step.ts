import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { stepArgv, stepScript } from './step-script.ts';
import type { StepOutcome, StepRunSpec } from './step-outcome.ts';

/** After the step's shell ended, how long its output pipe may stay open (held by a process that left the group). */
const PIPE_DRAIN_MS = 1_000;

/**
 * Runs a step without an image: `sh -e -c <script>` in the workspace, as the leader of a new
 * process group, with exactly `spec.env` as its environment.
 *
 *   spawn ─► running ─► shell exits ─► SIGKILL to what is left of the group ─► output drained ─► outcome
 *                │
 *                └─ signal aborted ─► SIGTERM to the group ─(killGraceMs)─► SIGKILL ─► ... ─► cancelled
 *
 * Processes a step leaves behind in its group (`server &`) are killed when the step ends, as a
 * container's are and as Jenkins's process-tree killer does: a step does not outlive itself.
 */
export async function runProcessStep(spec: StepRunSpec): Promise<StepOutcome> {
  if (spec.step.commands.length === 0) return { status: 'error', error: 'a step without an image needs commands' };
  if (spec.signal.aborted) return { status: 'cancelled' };
  const [file, ...args] = stepArgv(stepScript(spec.step.commands)) as [string, ...string[]];
  let child: ChildProcess;
  try {
    child = spawn(file, args, { cwd: spec.workspace, env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return { status: 'error', error: `cannot start the step: ${(e as Error).message}` };
  }
  const drained = Promise.all([child.stdout, child.stderr].map((stream) => new Promise<void>((resolve) => {
    stream?.on('data', spec.output);
    stream?.once('close', () => resolve());
    if (stream === null) resolve();
  })));

  let cancelled = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = (): void => {
    cancelled = true;
    signalGroup(child, 'SIGTERM');
    killTimer = setTimeout(() => signalGroup(child, 'SIGKILL'), spec.killGraceMs);
  };
  spec.signal.addEventListener('abort', onAbort, { once: true });

  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: Error }>((resolve) => {
    child.once('error', (error) => resolve({ error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  spec.signal.removeEventListener('abort', onAbort);
  if (killTimer !== undefined) clearTimeout(killTimer);
  signalGroup(child, 'SIGKILL');
  await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, PIPE_DRAIN_MS).unref())]);
  child.stdout?.destroy();
  child.stderr?.destroy();

  if ('error' in ended) return { status: 'error', error: `cannot start the step: ${ended.error.message}` };
  const exitCode = ended.code ?? 128 + (ended.signal !== null ? (constants.signals[ended.signal] ?? 0) : 0);
  if (cancelled) return { status: 'cancelled', exitCode };
  if (ended.code === 0) return { status: 'success', exitCode: 0 };
  return ended.signal !== null
    ? { status: 'failure', exitCode, error: `the step was killed by ${ended.signal}` }
    : { status: 'failure', exitCode };
}

/** Sends `signal` to the child's process group; a group already gone is what we wanted. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}

import { statSync } from 'node:fs';
import Dockerode from 'dockerode';
import { runExecutor } from '../frameworks/ci/executor/ci-executor.ts';
import { discoverHostPath, type HostPath } from '../frameworks/ci/engine/host-paths.ts';
import { EXECUTOR_TOKEN_VARIABLE } from '../frameworks/ci/executor-task.ts';

// Only what an executor needs: this module is what `slipway ci-executor` loads, and an
// executor's start-up is on the path of every cold build.

/**
 * `slipway ci-executor`: the executor program, in its task's sandbox ($MESOS_SANDBOX: the working
 * directory of a process executor, /mnt/mesos/sandbox in a Docker executor), with the agent host's
 * Docker engine for image steps when its socket is there (a Docker executor has it when its
 * spec mounts it, which CI does by default).
 */
/**
 * The launch token, taken out of `env` (the process's environment): the build's steps, git and
 * anything else the executor starts must not inherit it. Throws when it is not there.
 */
export function takeExecutorToken(env: NodeJS.ProcessEnv = process.env): string {
  const token = env[EXECUTOR_TOKEN_VARIABLE];
  delete env[EXECUTOR_TOKEN_VARIABLE];
  if (token === undefined || token === '') throw new Error(`${EXECUTOR_TOKEN_VARIABLE} is not set: CI gives an executor its token in its task's environment (slipway ci-executor is not for running by hand)`);
  return token;
}

export async function runCiExecutor(o: { serverUrl: string; id: string; label: string; log?: (line: string) => void }): Promise<number> {
  const token = takeExecutorToken();
  const docker = isSocket('/var/run/docker.sock') ? new Dockerode() : undefined;
  let hostPath: HostPath | undefined;
  if (docker !== undefined) {
    try {
      hostPath = await discoverHostPath(docker);
    } catch (e) {
      // Process steps still run; image steps end in error saying the workspace cannot be mounted.
      o.log?.(`ci-executor: ${(e as Error).message}`);
      hostPath = () => undefined;
    }
  }
  const workDir = process.env['MESOS_SANDBOX'] ?? process.cwd();
  // Handled, not the default: as PID 1 of a Docker executor, node would ignore SIGTERM, and either
  // way the build's step containers must be removed before the executor goes.
  const terminate = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => terminate.abort());
  return runExecutor({
    serverUrl: o.serverUrl,
    id: o.id,
    token,
    label: o.label,
    workDir,
    ...(docker !== undefined ? { docker } : {}),
    ...(hostPath !== undefined ? { hostPath } : {}),
    terminate: terminate.signal,
    ...(o.log !== undefined ? { log: o.log } : {}),
  });
}

/** A unix socket there (an engine's), not a directory a bind mount of a missing socket made. */
function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

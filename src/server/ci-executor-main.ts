import { existsSync } from 'node:fs';
import Dockerode from 'dockerode';
import { runExecutor } from '../frameworks/ci/executor/ci-executor.ts';

// Only what an executor needs: this module is what `slipway ci-executor` loads, and an
// executor's start-up is on the path of every cold build.

/**
 * `slipway ci-executor`: the executor program, in its task's sandbox (the working directory),
 * with the agent host's Docker engine for image steps when its socket is there.
 */
export async function runCiExecutor(o: { serverUrl: string; id: string; token: string; label: string; log?: (line: string) => void }): Promise<number> {
  const docker = existsSync('/var/run/docker.sock') ? new Dockerode() : undefined;
  return runExecutor({ serverUrl: o.serverUrl, id: o.id, token: o.token, label: o.label, workDir: process.cwd(), ...(docker !== undefined ? { docker } : {}), ...(o.log !== undefined ? { log: o.log } : {}) });
}

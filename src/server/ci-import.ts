import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readMirror } from '../frameworks/ci/git/config-mirror.ts';
import { CiClient } from '../sdk/ci-client.ts';

/**
 * `slipway ci import --from GIT`: restores the jobs and executor specs of a CI mirror repository
 * into a running CI, through its API (so every one is validated as a PUT would be). Executor specs
 * go first, so jobs find their labels. Returns what was imported.
 */
export async function importCiConfig(from: string, serverUrl: string, log: (line: string) => void = () => undefined): Promise<{ jobs: string[]; executors: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-ci-import-'));
  try {
    const config = await readMirror(from, dir);
    const ci = new CiClient(serverUrl);
    for (const [label, spec] of config.executors) {
      await ci.putExecutorSpec(label, spec);
      log(`executor spec ${label} imported`);
    }
    for (const [name, job] of config.jobs) {
      await ci.putJob(name, job);
      log(`job ${name} imported`);
    }
    return { jobs: [...config.jobs.keys()], executors: [...config.executors.keys()] };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathSegment } from '../agent/path-segment.ts';

/**
 * The sandbox of a task on whichever of these real agents ran it, found on disk: an agent keeps
 * each task's files in `<work dir>/sandboxes/<pathSegment(framework)>/<pathSegment(task)>/`
 * (agent.ts, "On disk"), whatever framework launched it. Undefined when none of them has it.
 *
 * For benches and tests that run agents on this host and read what a task wrote (its stdout,
 * stderr, the birth time of those files), without knowing how the agent names its directories.
 */
export function findTaskSandbox(agentWorkDirs: readonly string[], taskId: string): string | undefined {
  const segment = pathSegment(taskId);
  for (const workDir of agentWorkDirs) {
    const root = join(workDir, 'sandboxes');
    let frameworks: string[];
    try {
      frameworks = readdirSync(root);
    } catch {
      continue;
    }
    for (const fw of frameworks) {
      try {
        if (readdirSync(join(root, fw)).includes(segment)) return join(root, fw, segment);
      } catch {
        // Not a directory.
      }
    }
  }
  return undefined;
}

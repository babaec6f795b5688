import type { BuildCause } from '../build.ts';
import type { RemoteRefs } from '../git/git-source.ts';
import type { PollTrigger } from '../job-definition.ts';
import { cloneTriggerState, forRepo, type SeenRef, type TriggerState } from './trigger-state.ts';

/** A build a poll asks for, and the ref it marks as seen (in the same store write as the build). */
export interface PollBuild {
  ref: SeenRef;
  event: 'tag' | 'push';
  cause: BuildCause;
  /** The branch of a push build. */
  branch?: string;
}

export interface PollPlan {
  /**
   * The state without the builds' marks: first looks recorded, refs the remote no longer has
   * dropped. Each build's write carries this state plus its own mark and those of the builds
   * before it, so that a crash between two builds loses neither (the next poll finds the rest).
   */
  base: TriggerState;
  builds: PollBuild[];
  /** Why something expected was not looked at (no default branch known, ...). */
  notes: string[];
}

/**
 * What one look at the remote means for a job (pure):
 * - tags (with `poll.tags`): the first look records every tag and builds nothing; after it, a tag
 *   not seen before is built, and so is a tag now at another commit than when it was seen (moved:
 *   what the tag names changed, as Jenkins's git plugin builds a revision it has not built); a tag
 *   gone from the remote is forgotten, so that a tag deleted and pushed again is built again;
 * - the branch (with `poll.branch`): the job's `branch`, else the remote's default branch (HEAD).
 *   The first look at it records its head; after it, a head at another commit is built once (the
 *   tip only: several commits pushed at once make one build, as Jenkins's polling does). A branch
 *   gone from the remote is forgotten; when it comes back its head is new.
 * Tags are built in version order (v1.9 before v1.10).
 */
export function planPoll(state: TriggerState, refs: RemoteRefs, job: { repo: string; branch?: string; poll: PollTrigger }): PollPlan {
  const base = cloneTriggerState(forRepo(state, job.repo));
  const builds: PollBuild[] = [];
  const notes: string[] = [];

  if (job.poll.tags) {
    if (!base.tagsLooked) {
      base.tags = new Map(refs.tags);
      base.tagsLooked = true;
    } else {
      for (const name of [...base.tags.keys()]) if (!refs.tags.has(name)) base.tags.delete(name);
      const names = [...refs.tags.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
      for (const name of names) {
        const commit = refs.tags.get(name) as string;
        const before = base.tags.get(name);
        if (before === commit) continue;
        builds.push({
          ref: { kind: 'tag', name, commit },
          event: 'tag',
          cause: { kind: 'tag', description: before === undefined ? `tag ${name}` : `tag ${name} (moved from ${short(before)} to ${short(commit)})` },
        });
      }
    }
  } else {
    // Off: when it is turned on again, its first look records what exists then.
    base.tagsLooked = false;
  }

  if (job.poll.branch) {
    const branch = job.branch ?? refs.head;
    if (branch === undefined) {
      notes.push(`cannot poll the branch: the job names none and ${job.repo} does not say which is its default (HEAD)`);
    } else {
      const head = refs.branches.get(branch);
      if (base.branchLooked !== branch) {
        base.branchLooked = branch;
        if (head !== undefined) base.heads.set(branch, head);
        else base.heads.delete(branch);
      } else if (head === undefined) {
        base.heads.delete(branch);
      } else if (base.heads.get(branch) !== head) {
        builds.push({ ref: { kind: 'head', branch, commit: head }, event: 'push', branch, cause: { kind: 'push', description: `commit ${short(head)} on ${branch}` } });
      }
    }
  } else {
    delete base.branchLooked;
  }
  return { base, builds, notes };
}

export function short(commit: string): string {
  return commit.slice(0, 7);
}

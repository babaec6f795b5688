import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileAt, resolveRef } from './git/git-source.ts';
import { DEFAULT_EXECUTOR_LABEL, DEFAULT_PIPELINE_FILE, type JobDefinition } from './job-definition.ts';
import { parsePipeline } from './pipeline/parse-pipeline.ts';
import type { Pipeline } from './pipeline/pipeline.ts';

/** What a build needs to be queued, read from git at the edge before CI's turn records it. */
export type BuildSource =
  | { ok: true; commit: string; pipeline: Pipeline; label: string; branch?: string }
  | { ok: false; error: string; label: string; branch?: string; commit?: string };

export interface BuildRef {
  commit?: string;
  branch?: string;
  tag?: string;
  /** A rebuild runs the pipeline it ran before. */
  pipeline?: Pipeline;
}

/**
 * Resolves what a build of `job` runs: the commit (given, the tag's, or the branch's head), and
 * the pipeline (given, the job's inline one, or the pipeline file at that commit, read through a
 * scratch checkout under `scratchDir`), and so its executor label (the job's wins over the
 * pipeline's: the operator's setting over the repository's). Never throws: a build that cannot
 * start answers why (no such tag, no pipeline file, invalid YAML), and is queued in `error`
 * with that reason, so the user sees why a trigger did nothing.
 */
export async function resolveBuildSource(job: JobDefinition, ref: BuildRef, scratchDir: string): Promise<BuildSource> {
  const branch = ref.branch ?? (ref.tag === undefined ? job.branch : undefined);
  const base = { label: job.executor ?? DEFAULT_EXECUTOR_LABEL, ...(branch !== undefined ? { branch } : {}) };
  let commit: string | undefined = ref.commit;
  const scratch = join(scratchDir, `${job.name}-${randomBytes(6).toString('hex')}`);
  try {
    commit ??= await resolveRef(job.repo, { ...(ref.tag !== undefined ? { tag: ref.tag } : {}), ...(branch !== undefined ? { branch } : {}) });
    if (commit === undefined) throw new Error(`${ref.tag !== undefined ? `tag ${ref.tag}` : `branch ${branch ?? 'HEAD'}`} not found in ${job.repo}`);
    let pipeline = ref.pipeline;
    if (pipeline === undefined && job.pipeline !== undefined) pipeline = parsePipeline(job.pipeline);
    if (pipeline === undefined) {
      const file = job.pipelineFile ?? DEFAULT_PIPELINE_FILE;
      const text = await readFileAt(job.repo, commit, file, scratch);
      if (text === undefined) throw new Error(`no ${file} at commit ${commit.slice(0, 12)} of ${job.repo}`);
      pipeline = parsePipeline(text);
    }
    return { ...base, ok: true, commit, pipeline, label: job.executor ?? pipeline.executor ?? DEFAULT_EXECUTOR_LABEL };
  } catch (e) {
    return { ...base, ok: false, error: e instanceof Error ? e.message : String(e), ...(commit !== undefined ? { commit } : {}) };
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}

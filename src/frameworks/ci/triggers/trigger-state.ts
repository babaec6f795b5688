/**
 * What a job's triggers have seen, as CI keeps it (the document of TRIGGER_STATE_SAVED). One per
 * job, shared by git polling, webhooks and cron, so that a tag or a commit is built once whoever
 * saw it first.
 *
 * - `tags` and `heads` are what was seen of the job's `repo`: a tag (or branch head) at a commit
 *   is in the map once it was built, or recorded by polling's first look. A ref at another commit
 *   than the map says is new (a moved tag, a new head). Polling drops the refs the remote no longer
 *   has; a webhook's deletion event drops its ref.
 * - `tagsLooked` / `branchLooked`: whether polling took its first look (which records only) at the
 *   tags / at which branch. Turning tag polling off and on again, or changing the job's branch,
 *   makes a new first look, so that what exists then is not built.
 * - `repo`: the repository the maps are about; a job whose `repo` changed starts over.
 * - `cron`: the expression watched, since when (a minute that began before is not built), and the
 *   last minute built (a minute is built at most once, even across restarts).
 *
 * In memory the maps are Maps (a tag may be called `__proto__`); stored, plain objects.
 */
export interface TriggerState {
  repo?: string;
  tags: Map<string, string>;
  heads: Map<string, string>;
  tagsLooked: boolean;
  branchLooked?: string;
  cron?: CronState;
}

export interface CronState {
  expression: string;
  /** When CI started watching this expression (ms); minutes that began before are not built. */
  since: number;
  /** The start (ms, a whole UTC minute) of the last minute built. */
  lastRun?: number;
}

/** The stored form. */
export interface TriggerStateDoc {
  repo?: string;
  tags: Record<string, string>;
  heads: Record<string, string>;
  tagsLooked: boolean;
  branchLooked?: string;
  cron?: CronState;
}

export function emptyTriggerState(): TriggerState {
  return { tags: new Map(), heads: new Map(), tagsLooked: false };
}

export function cloneTriggerState(s: TriggerState): TriggerState {
  return {
    ...(s.repo !== undefined ? { repo: s.repo } : {}),
    tags: new Map(s.tags),
    heads: new Map(s.heads),
    tagsLooked: s.tagsLooked,
    ...(s.branchLooked !== undefined ? { branchLooked: s.branchLooked } : {}),
    ...(s.cron !== undefined ? { cron: { ...s.cron } } : {}),
  };
}

export function triggerStateToDoc(s: TriggerState): TriggerStateDoc {
  return {
    ...(s.repo !== undefined ? { repo: s.repo } : {}),
    tags: Object.fromEntries(s.tags),
    heads: Object.fromEntries(s.heads),
    tagsLooked: s.tagsLooked,
    ...(s.branchLooked !== undefined ? { branchLooked: s.branchLooked } : {}),
    ...(s.cron !== undefined ? { cron: { ...s.cron } } : {}),
  };
}

/** Reads a stored document; what cannot be read is left out (and is then seen afresh). */
export function triggerStateFromDoc(doc: unknown): TriggerState {
  const s = emptyTriggerState();
  if (typeof doc !== 'object' || doc === null) return s;
  const d = doc as Partial<Record<keyof TriggerStateDoc, unknown>>;
  if (typeof d.repo === 'string') s.repo = d.repo;
  s.tags = stringMap(d.tags);
  s.heads = stringMap(d.heads);
  s.tagsLooked = d.tagsLooked === true;
  if (typeof d.branchLooked === 'string') s.branchLooked = d.branchLooked;
  const c = d.cron as Partial<Record<keyof CronState, unknown>> | undefined;
  if (typeof c === 'object' && c !== null && typeof c.expression === 'string' && typeof c.since === 'number') {
    s.cron = { expression: c.expression, since: c.since, ...(typeof c.lastRun === 'number' ? { lastRun: c.lastRun } : {}) };
  }
  return s;
}

function stringMap(o: unknown): Map<string, string> {
  const m = new Map<string, string>();
  if (typeof o !== 'object' || o === null) return m;
  for (const [k, v] of Object.entries(o)) if (typeof v === 'string') m.set(k, v);
  return m;
}

/** A ref seen: a tag, or the head of a branch, at a commit. */
export type SeenRef = { kind: 'tag'; name: string; commit: string } | { kind: 'head'; branch: string; commit: string };

/** The state with `ref` marked as seen (a copy). */
export function markSeen(s: TriggerState, ref: SeenRef): TriggerState {
  const next = cloneTriggerState(s);
  if (ref.kind === 'tag') next.tags.set(ref.name, ref.commit);
  else next.heads.set(ref.branch, ref.commit);
  return next;
}

/** Whether `ref` was seen at its commit already. */
export function wasSeen(s: TriggerState, ref: SeenRef): boolean {
  return (ref.kind === 'tag' ? s.tags.get(ref.name) : s.heads.get(ref.branch)) === ref.commit;
}

/** The state for a job of `repo`: the same, or (another repo, or none recorded yet) its git part afresh. */
export function forRepo(s: TriggerState, repo: string): TriggerState {
  if (s.repo === repo) return s;
  return { repo, tags: new Map(), heads: new Map(), tagsLooked: false, ...(s.cron !== undefined ? { cron: { ...s.cron } } : {}) };
}

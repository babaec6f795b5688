import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { SlipwayError } from '../../../core/errors.ts';
import { branchProblem } from '../job-definition.ts';
import { parseJsonText } from '../../../lib/json-depth.ts';

// `POST /ci/v1/hooks/{job}`: which forge sent a call (by its event header), whether it proves the
// job's secret, and what it says was pushed. Pure: no git, no state (trigger-runner.ts acts on it).

/** A call whose body is not a push event this endpoint can read (400). */
export class InvalidWebhookPayload extends SlipwayError {
  readonly code = 'INVALID_WEBHOOK_PAYLOAD';
  readonly status = 400;
}

/** A call to a job whose `triggers.webhook` is off (403). */
export class WebhookDisabled extends SlipwayError {
  readonly code = 'WEBHOOK_DISABLED';
  readonly status = 403;
}

/** A call without the proof of the job's webhook secret, or with a wrong one (403). */
export class WebhookSignatureInvalid extends SlipwayError {
  readonly code = 'WEBHOOK_SIGNATURE_INVALID';
  readonly status = 403;
}

export type WebhookSource = 'github' | 'gitea' | 'gitlab' | 'generic';

export const SOURCE_NAMES: Readonly<Record<WebhookSource, string>> = { github: 'GitHub', gitea: 'Gitea', gitlab: 'GitLab', generic: 'generic' };

/** A ref pushed: a tag, or a branch (`name` absent: the job's branch, for a generic call that names none). */
export type PushedRef = { kind: 'tag'; name: string } | { kind: 'branch'; name?: string };

export type WebhookEvent =
  /** A push of a ref (or its deletion). `commit` absent: the ref's commit is to be looked up (generic calls). */
  | { type: 'push'; source: WebhookSource; ref: PushedRef; commit?: string; deleted: boolean }
  /** An event that builds nothing (a ping, an issue, ...): answered 202 with `message`. */
  | { type: 'ignored'; source: WebhookSource; message: string };

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The sender, by its event header. Gitea sends GitHub's and Gogs's headers too, so its own is
 * looked at first. A call with none of them is the generic payload.
 */
export function webhookSource(headers: Headers): WebhookSource {
  if (header(headers, 'x-gitea-event') !== undefined) return 'gitea';
  if (header(headers, 'x-gitlab-event') !== undefined) return 'gitlab';
  if (header(headers, 'x-github-event') !== undefined) return 'github';
  return 'generic';
}

/**
 * Why the call does not prove `secret`, or undefined when it does: GitHub's
 * `X-Hub-Signature-256` (`sha256=` and the hex HMAC-SHA256 of the body with the secret), Gitea's
 * `X-Gitea-Signature` (the hex HMAC alone), GitLab's `X-Gitlab-Token` (the secret itself), the
 * generic payload's `X-Slipway-Token` (the secret itself). Compared in constant time.
 */
export function checkWebhookSecret(source: WebhookSource, secret: string, headers: Headers, body: Buffer): string | undefined {
  const hmac = () => createHmac('sha256', secret).update(body).digest('hex');
  switch (source) {
    case 'github': {
      const given = header(headers, 'x-hub-signature-256');
      if (given === undefined) return 'the job has a webhook secret: a GitHub call must be signed (X-Hub-Signature-256)';
      return sameSecret(given.trim().toLowerCase(), `sha256=${hmac()}`) ? undefined : 'X-Hub-Signature-256 does not match the body and the job\'s secret';
    }
    case 'gitea': {
      const given = header(headers, 'x-gitea-signature');
      if (given === undefined) return 'the job has a webhook secret: a Gitea call must be signed (X-Gitea-Signature)';
      return sameSecret(given.trim().toLowerCase(), hmac()) ? undefined : 'X-Gitea-Signature does not match the body and the job\'s secret';
    }
    case 'gitlab': {
      const given = header(headers, 'x-gitlab-token');
      if (given === undefined) return 'the job has a webhook secret: a GitLab call must carry it (X-Gitlab-Token)';
      return sameSecret(given, secret) ? undefined : 'X-Gitlab-Token is not the job\'s secret';
    }
    case 'generic': {
      const given = header(headers, 'x-slipway-token');
      if (given === undefined) return 'the job has a webhook secret: a generic call must carry it (X-Slipway-Token)';
      return sameSecret(given, secret) ? undefined : 'X-Slipway-Token is not the job\'s secret';
    }
  }
}

/** Equal strings, in time that depends on neither (both are hashed first, so lengths leak nothing). */
function sameSecret(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

/** Reads what the call says was pushed; throws InvalidWebhookPayload saying what is wrong. */
export function readWebhook(source: WebhookSource, headers: Headers, body: Buffer): WebhookEvent {
  const name = SOURCE_NAMES[source];
  switch (source) {
    case 'github': {
      const event = header(headers, 'x-github-event') ?? '';
      if (event === 'ping') return { type: 'ignored', source, message: 'ping received: the webhook works; push events build' };
      if (event !== 'push') return { type: 'ignored', source, message: `GitHub event ${JSON.stringify(event)} builds nothing: only push events do` };
      return forgePush(source, payloadOf(name, headers, body), 'head_commit');
    }
    case 'gitea': {
      const event = header(headers, 'x-gitea-event') ?? '';
      if (event === 'delete') return forgeDelete(source, payloadOf(name, headers, body));
      if (event !== 'push') return { type: 'ignored', source, message: `Gitea event ${JSON.stringify(event)} builds nothing: only push events do (a new tag or branch comes with its push event)` };
      return forgePush(source, payloadOf(name, headers, body), 'head_commit');
    }
    case 'gitlab': {
      const event = header(headers, 'x-gitlab-event') ?? '';
      if (event !== 'Push Hook' && event !== 'Tag Push Hook') {
        return { type: 'ignored', source, message: `GitLab event ${JSON.stringify(event)} builds nothing: only "Push Hook" and "Tag Push Hook" do` };
      }
      return forgePush(source, payloadOf(name, headers, body), 'checkout_sha');
    }
    case 'generic':
      return genericPush(body);
  }
}

/** The JSON object of a forge's call: the body, or its `payload` form field (GitHub's other content type). */
function payloadOf(name: string, headers: Headers, body: Buffer): Record<string, unknown> {
  let text = body.toString('utf8');
  if ((header(headers, 'content-type') ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new InvalidWebhookPayload(`a form-encoded ${name} call must have a \`payload\` field with the event's JSON`);
    text = payload;
  }
  return jsonObject(text, `the body of a ${name} push event`);
}

function jsonObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseJsonText(text);
  } catch (e) {
    throw new InvalidWebhookPayload(`${what} is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidWebhookPayload(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

const ZERO_SHA = /^0+$/;
const FULL_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * A GitHub, Gitea or GitLab push event: `ref` (refs/heads/... or refs/tags/...), `after` (the new
 * value of the ref; all zeros when it was deleted; for an annotated tag, the tag object), and the
 * commit to build: GitHub's and Gitea's `head_commit.id`, GitLab's `checkout_sha` (each the commit
 * an annotated tag points to), else `after`. GitHub also says `deleted: true`.
 */
function forgePush(source: WebhookSource, p: Record<string, unknown>, commitField: 'head_commit' | 'checkout_sha'): WebhookEvent {
  const name = SOURCE_NAMES[source];
  const ref = readRef(p['ref'], `${name} push event`);
  if (typeof ref === 'string') return { type: 'ignored', source, message: ref };
  const after = p['after'];
  if (typeof after !== 'string') throw new InvalidWebhookPayload(`a ${name} push event has \`after\`, the commit the ref now points to`);
  const deleted = p['deleted'] === true || ZERO_SHA.test(after);
  if (deleted) return { type: 'push', source, ref, deleted: true };
  const named = commitField === 'head_commit' ? (p['head_commit'] as { id?: unknown } | null | undefined)?.id : p['checkout_sha'];
  const commit = (typeof named === 'string' && named !== '' ? named : after).toLowerCase();
  if (!FULL_SHA.test(commit)) throw new InvalidWebhookPayload(`${JSON.stringify(commit)} is not a full commit id (${name} push event, ${commitField === 'head_commit' ? 'head_commit.id' : 'checkout_sha'} or after)`);
  return { type: 'push', source, ref, commit, deleted: false };
}

/** Gitea's `delete` event: `ref` is the short name, `ref_type` says whether a tag or a branch. */
function forgeDelete(source: WebhookSource, p: Record<string, unknown>): WebhookEvent {
  const refType = p['ref_type'];
  const ref = p['ref'];
  if ((refType !== 'tag' && refType !== 'branch') || typeof ref !== 'string') throw new InvalidWebhookPayload('a Gitea delete event has `ref` and `ref_type` (tag or branch)');
  const full = readRef(`refs/${refType === 'tag' ? 'tags' : 'heads'}/${ref}`, 'Gitea delete event');
  if (typeof full === 'string') throw new InvalidWebhookPayload(full);
  return { type: 'push', source, ref: full, deleted: true };
}

/** A full ref as a tag or branch; a string says why it is neither (answered 202: nothing to build). */
function readRef(ref: unknown, what: string): PushedRef | string {
  if (typeof ref !== 'string' || ref === '') throw new InvalidWebhookPayload(`a ${what} has \`ref\`, the ref pushed (refs/heads/<branch> or refs/tags/<tag>)`);
  const m = /^refs\/(heads|tags)\/(.+)$/.exec(ref);
  if (m === null) return `ref ${JSON.stringify(ref)} is neither a branch nor a tag: nothing to build`;
  const name = m[2] as string;
  const problem = branchProblem(name);
  if (problem !== undefined) throw new InvalidWebhookPayload(`ref ${JSON.stringify(ref)}: the name ${problem}`);
  return m[1] === 'tags' ? { kind: 'tag', name } : { kind: 'branch', name };
}

const GENERIC_FIELDS = ['ref', 'tag', 'branch', 'commit'];

/**
 * The generic payload, `{ref?, tag?, branch?, commit?}` (all optional; an empty body is `{}`):
 * `ref` is a full ref (refs/tags/v1, refs/heads/main), or `tag` or `branch` a name (one of the
 * three at most); none means the job's branch. `commit` is the full commit id; without it, the
 * ref's commit now. Unknown fields are refused: a misspelt `tag` must not build the branch.
 */
function genericPush(body: Buffer): WebhookEvent {
  const text = body.toString('utf8').trim();
  const p = text === '' ? {} : jsonObject(text, 'the body of a generic webhook call ({ref?, tag?, branch?, commit?})');
  const unknown = Object.keys(p).filter((k) => !GENERIC_FIELDS.includes(k));
  if (unknown.length > 0) {
    throw new InvalidWebhookPayload(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} in a generic webhook call (known: ${GENERIC_FIELDS.join(', ')}; a GitHub, GitLab or Gitea call is told by its X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header)`,
    );
  }
  for (const k of GENERIC_FIELDS) {
    if (p[k] !== undefined && p[k] !== null && typeof p[k] !== 'string') throw new InvalidWebhookPayload(`\`${k}\` must be a string`);
  }
  const given = GENERIC_FIELDS.slice(0, 3).filter((k) => typeof p[k] === 'string');
  if (given.length > 1) throw new InvalidWebhookPayload(`give one of \`ref\`, \`tag\` and \`branch\`, not ${given.map((k) => `\`${k}\``).join(' and ')}`);
  let ref: PushedRef = { kind: 'branch' };
  if (typeof p['ref'] === 'string') {
    const r = readRef(p['ref'], 'generic webhook call');
    if (typeof r === 'string') throw new InvalidWebhookPayload(`\`ref\` must be refs/tags/<tag> or refs/heads/<branch>, not ${JSON.stringify(p['ref'])}`);
    ref = r;
  } else if (typeof p['tag'] === 'string' || typeof p['branch'] === 'string') {
    const kind = typeof p['tag'] === 'string' ? 'tag' : 'branch';
    const name = p[kind] as string;
    const problem = branchProblem(name);
    if (problem !== undefined) throw new InvalidWebhookPayload(`\`${kind}\` ${problem}`);
    ref = { kind, name };
  }
  const commit = typeof p['commit'] === 'string' ? p['commit'].toLowerCase() : undefined;
  if (commit !== undefined && !FULL_SHA.test(commit)) throw new InvalidWebhookPayload(`\`commit\` must be a full commit id (40 hex digits), not ${JSON.stringify(p['commit'])}`);
  return { type: 'push', source: 'generic', ref, ...(commit !== undefined ? { commit } : {}), deleted: false };
}

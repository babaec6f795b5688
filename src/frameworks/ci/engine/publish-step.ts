import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { PublishStep, StepOutput } from '../pipeline/pipeline.ts';
import { expandTemplate } from '../pipeline/step-template.ts';
import type { BuildContext } from './build-context.ts';
import { matchWorkspaceFiles } from './collect-artifacts.ts';
import type { StepOutcome } from './step-outcome.ts';

/**
 * An artifact store as a build sees it: an HTTP origin that takes PUT (WebDAV's, as nginx's
 * `dav_methods PUT` and CDN origins offer), and the Basic credentials it wants, if any (the
 * password read from the secret store when the build started).
 */
export interface ArtifactStoreAccess {
  /** `http(s)://host[:port][/path]`, no credentials, query or fragment (checked when the job is saved). */
  url: string;
  username?: string;
  password?: string;
}

export interface PublishStepSpec {
  step: PublishStep;
  workspace: string;
  build: BuildContext;
  stores: Readonly<Record<string, ArtifactStoreAccess>>;
  signal: AbortSignal;
  output: (chunk: Buffer) => void;
}

/** How long an upload may stay silent (no byte sent or received) before it is given up. */
export const PUBLISH_IDLE_TIMEOUT_MS = 60_000;

/**
 * Runs a publish step: every workspace file its `files` match is uploaded to the store twice,
 * by content at `{url}/sha256/{hex}` first (immutable: the same bytes, the same place), then by
 * name at `{url}/{target}` (a target ending in `/` takes each file under its workspace path; else
 * `files` must match one file). Each upload is a PUT with `Content-Length`, and Basic auth when
 * the store has credentials; any 2xx is success. Outcomes:
 *
 *   store not in the job, a template variable without a value ─► error (the step cannot run)
 *   a pattern matching nothing, several files for one name,
 *   the store refusing (its status and message), the store unreachable ─► failure
 *   signal aborted ─► cancelled
 *
 * Each file stored is an output (name, sha256, size, both URLs), those before a failure included:
 * they are in the store. Progress goes to the step's log, one line per upload.
 */
export async function runPublishStep(spec: PublishStepSpec): Promise<StepOutcome> {
  const { step, build } = spec;
  const say = (line: string) => spec.output(Buffer.from(`${line}\n`));
  const stop = (status: 'error' | 'failure', error: string, outputs: StepOutput[] = []): StepOutcome => {
    say(error);
    return { status, error, ...(outputs.length > 0 ? { outputs } : {}) };
  };
  const store = Object.hasOwn(spec.stores, step.store) ? spec.stores[step.store] : undefined;
  if (store === undefined) {
    const known = Object.keys(spec.stores);
    return stop('error', `artifact store ${step.store} is not configured in job ${build.jobName} (its artifactStores: ${known.length > 0 ? known.join(', ') : 'none'})`);
  }
  const expanded = expandTemplate(step.target, { tag: build.tag ?? '', commit: build.commitSha ?? '', build: String(build.number) });
  if ('missing' in expanded) {
    const why = expanded.missing === 'tag' ? `build #${build.number} was not started by a tag (event ${build.event})` : `build #${build.number} has no ${expanded.missing}`;
    return stop('error', `target ${step.target}: {{${expanded.missing}}} has no value: ${why}`);
  }
  const target = expanded.text;
  if (target.replace(/\/$/, '').split('/').some((s) => s === '' || s === '.' || s === '..')) {
    return stop('error', `target ${step.target} is ${target} in this build, which has an empty, \`.\` or \`..\` segment`);
  }

  const matched = await matchWorkspaceFiles(spec.workspace, step.files);
  for (const s of matched.skipped) say(`skipped ${s.path}: ${s.reason}`);
  if (matched.unmatched.length > 0) return stop('failure', `files: ${matched.unmatched.join(', ')} matched no file in the workspace`);
  const directory = target.endsWith('/');
  if (!directory && matched.files.length > 1) {
    const shown = matched.files.slice(0, 5).map((f) => f.path).join(', ');
    return stop('failure', `files match ${matched.files.length} files (${shown}${matched.files.length > 5 ? ', ...' : ''}), and target ${target} names one: end it with / to upload each under its path`);
  }

  const base = store.url.endsWith('/') ? store.url.slice(0, -1) : store.url; // trimmed when the job was saved
  const auth = store.password !== undefined || store.username !== undefined ? `Basic ${Buffer.from(`${store.username ?? ''}:${store.password ?? ''}`).toString('base64')}` : undefined;
  const outputs: StepOutput[] = [];
  for (const file of matched.files) {
    if (spec.signal.aborted) return { status: 'cancelled', ...(outputs.length > 0 ? { outputs } : {}) };
    const name = directory ? `${target}${file.path}` : target;
    const { sha256, size } = await digest(file.source);
    say(`+ publish ${file.path} (${size} bytes, sha256 ${sha256}) to ${step.store} as ${name}`);
    const contentUrl = `${base}/sha256/${sha256}`;
    const url = `${base}/${name.split('/').map(encodeURIComponent).join('/')}`;
    for (const at of [contentUrl, url]) {
      let answer: PutAnswer;
      try {
        answer = await put(at, file.source, size, auth, spec.signal);
      } catch (e) {
        if (spec.signal.aborted) return { status: 'cancelled', ...(outputs.length > 0 ? { outputs } : {}) };
        return stop('failure', `artifact store ${step.store} could not be reached at ${at}: ${e instanceof Error ? e.message : String(e)}`, outputs);
      }
      if (answer.status < 200 || answer.status > 299) {
        return stop('failure', `artifact store ${step.store} refused PUT ${at}: HTTP ${answer.status}${answer.statusText !== '' ? ` ${answer.statusText}` : ''}${answer.message !== '' ? `: ${answer.message}` : ''}`, outputs);
      }
      say(`  PUT ${at}: ${answer.status}${answer.statusText !== '' ? ` ${answer.statusText}` : ''}`);
    }
    outputs.push({ kind: 'artifact', step: step.name, store: step.store, name, sha256, size, url, contentUrl });
  }
  return { status: 'success', outputs };
}

async function digest(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  // The file must not change between the hash and the upload; its size is checked again then.
  return { sha256: hash.digest('hex'), size };
}

interface PutAnswer {
  status: number;
  statusText: string;
  /** The store's words: the body as text (an HTML page's title, else its text), cut short. */
  message: string;
}

function put(url: string, file: string, size: number, auth: string | undefined, signal: AbortSignal): Promise<PutAnswer> {
  return new Promise<PutAnswer>((resolve, reject) => {
    const target = new URL(url);
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
    let answered = false;
    const req = request(target, {
      method: 'PUT',
      signal,
      timeout: PUBLISH_IDLE_TIMEOUT_MS,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size), ...(auth !== undefined ? { Authorization: auth } : {}) },
    });
    req.on('timeout', () => req.destroy(new Error(`no answer for ${PUBLISH_IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', (e) => {
      // A store that refuses early (401 before the body) may close while the body is still
      // going: its answer is what counts.
      if (!answered) reject(e);
    });
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (c: Buffer) => {
        if (kept < 8192) {
          chunks.push(c);
          kept += c.length;
        }
      });
      const done = () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', message: storeMessage(Buffer.concat(chunks).toString('utf8')) });
      res.on('end', done);
      res.on('error', done);
    });
    void stat(file).then(
      (info) => {
        if (info.size !== size) {
          req.destroy(new Error(`the file changed while it was uploaded (${size} bytes hashed, ${info.size} now)`));
          return;
        }
        const body = createReadStream(file);
        body.on('error', (e) => req.destroy(e));
        body.pipe(req);
      },
      (e: unknown) => req.destroy(e instanceof Error ? e : new Error(String(e))),
    );
  });
}

/** A store's answer as one short line: an HTML page's title (nginx's `401 Authorization Required`), else the text. */
export function storeMessage(body: string): string {
  const title = /<title>([^<]*)<\/title>/i.exec(body)?.[1];
  const text = (title ?? body.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

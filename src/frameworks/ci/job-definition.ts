import { DocumentReader, type JsonObject } from '../../core/document-reader.ts';
import { secretName } from '../../core/secret-name.ts';
import { regexBacktrackingRisk } from '../../lib/regex-risk.ts';
import { InvalidExecutorSpec, InvalidJob, InvalidPipeline } from './ci-errors.ts';
import type { FieldProblem } from './ci-errors.ts';
import { InvalidCron, parseCron } from './cron-schedule.ts';
import { isReservedVariableName } from './pipeline/ci-variables.ts';
import { ENV_NAME_PATTERN, NAME_RULE, hasControlCharacter, isValidName } from './pipeline/names.ts';
import { parsePipeline } from './pipeline/parse-pipeline.ts';
import type { Pipeline } from './pipeline/pipeline.ts';

// The JSON bodies of `PUT /ci/v1/jobs/{name}` and `PUT /ci/v1/executors/{label}`, checked and
// with every default applied. docs/pipelines.md is the user's description; keep the two in step.
// Parsed values are plain JSON (no undefined fields, no class instances): what GET answers, what
// the store keeps, and what a PUT of that answer accepts again unchanged.
//
// A job's secrets (`secrets`, `triggers.webhook.secret`) are the exception to "what GET answers":
// they are write-only. `JobDefinition<S>` is a job whose secret values are of type S: plain
// strings in memory (S = string, the default), what a PUT may give (SecretInput: a value, "***"
// to keep the stored one, or a value sealed by this server), "***" in every answer, sealed in
// the store and the git mirror. job-secrets.ts turns one into another.

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

export interface JobDefinition<S = string> {
  name: string;
  /** A git URL (https, http, git, ssh, file, or scp-like `user@host:path`) or an absolute local path. */
  repo: string;
  /** The branch built by manual, cron and branch-polling builds; absent: the repository's default branch (its HEAD). */
  branch?: string;
  /** The pipeline's path in the repository (default `.slipway.yml`); absent exactly when `pipeline` is given. */
  pipelineFile?: string;
  /** The pipeline's YAML text, kept as given (already checked by parsePipeline). */
  pipeline?: string;
  triggers: JobTriggers<S>;
  /** The executor label of the job's builds; absent: the pipeline's `executor`, then `default`. */
  executor?: string;
  /** How many builds of this job may run at once (default 1: one at a time, the others wait in the queue). */
  concurrency: number;
  /** Variables of every step of every build, under the step's own `environment`. */
  env: Record<string, string>;
  /**
   * Variables of every step like `env` (no name in both), but secret: write-only through the API
   * (shown as "***"), sealed at rest, and masked in build logs with their base64 and URL-encoded
   * forms.
   */
  secrets: Record<string, S>;
  /**
   * Variables of every step like `secrets`, whose values are secrets of the secret store
   * (`/auth/v1/secrets`): variable name -> secret name (Jenkins's credentials by id). The names
   * are shown as given; the values are read from the store when a build starts, and masked in
   * its logs like `secrets`. Absent when there are none.
   */
  credentials?: Record<string, string>;
  /**
   * Where the pipeline's publish steps upload (`store: NAME`): HTTP origins that take PUT, by
   * name. Configured once here, so the pipeline in the repository names a store and never holds
   * its URL or credentials. Absent when there are none.
   */
  artifactStores?: Record<string, ArtifactStoreConfig>;
  /**
   * Where the pipeline's build-image steps push (`registry: NAME`): Docker registries, by name.
   * Configured once here, as artifact stores are. Absent when there are none.
   */
  registries?: Record<string, RegistryConfig>;
  /**
   * The delivery services (`/deliver/v1`) the pipeline's deploy steps may deploy (`service: NAME`).
   * Saving the job asks `deploy` on each (`delivery` `NAME/*`) of whoever saves it; a build's deploy
   * step gets a token for its service alone, and only for a service listed here. Absent when none.
   */
  deploys?: string[];
}

/**
 * An image registry of a job: its address, `host[:port]` without a scheme (what goes before the
 * repository in an image name: `127.0.0.1:5000`, `registry.example.com`). With `passwordSecret`
 * (a secret of the secret store, read when each build starts) the engine logs in to it with
 * `username` (default empty) and that password for the push.
 */
export interface RegistryConfig {
  address: string;
  username?: string;
  passwordSecret?: string;
}

/**
 * An artifact store of a job: an HTTP origin that accepts PUT (WebDAV's; nginx's `dav_methods
 * PUT`, CDN origins). With `passwordSecret` (a secret of the secret store, read when each build
 * starts) the uploads carry Basic credentials, `username` (default empty) and that password.
 */
export interface ArtifactStoreConfig {
  url: string;
  username?: string;
  passwordSecret?: string;
}

/** How builds start besides a manual trigger (API, CLI, Jenkins API), which always works. */
export interface JobTriggers<S = string> {
  poll?: PollTrigger;
  /** A five-field cron expression (or a macro such as `@daily`), in UTC; each firing is a `cron` build. */
  cron?: string;
  webhook?: WebhookTrigger<S>;
}

/** A secret as the store and the git mirror keep it: sealed by the server's SecretBox (`v1:...`). */
export interface SealedSecret {
  encrypted: string;
}

/** What a PUT may give for a secret: its value, REDACTED ("***": keep the stored value), or a value sealed by this server. */
export type SecretInput = string | SealedSecret;

/** How every answer shows a secret; sent back in a PUT, it keeps the stored value. */
export const REDACTED = '***';

export interface PollTrigger {
  /** Seconds between two looks at the remote (`git ls-remote`). Default 60. */
  intervalSeconds: number;
  /** Build each new tag once, as a `tag` build. Default true. */
  tags: boolean;
  /** Build each new commit on the job's branch once, as a `push` build. Default false. */
  branch: boolean;
}

export interface WebhookTrigger<S = string> {
  /**
   * Checked on every call when set: GitHub's `X-Hub-Signature-256` and Gitea's
   * `X-Gitea-Signature` HMAC-SHA256 of the body, GitLab's `X-Gitlab-Token`, or `X-Slipway-Token`
   * for the generic payload. Without it, anyone who can reach the server can start builds.
   */
  secret?: S;
  /** Build tag pushes. Default true. */
  tags: boolean;
  /** Build pushes to the job's branch. Default true. */
  branch: boolean;
}

export const JOB_FIELDS = ['name', 'repo', 'branch', 'pipelineFile', 'pipeline', 'triggers', 'executor', 'concurrency', 'env', 'secrets', 'credentials', 'artifactStores', 'registries', 'deploys'] as const;
/** The most artifact stores a job may have. */
export const MAX_ARTIFACT_STORES = 20;
/** The most registries a job may have. */
export const MAX_REGISTRIES = 20;
/** The most delivery services a job may deploy. */
export const MAX_DEPLOYS = 20;
/** Fields GET adds to a job, ignored in a PUT, so that a client can GET, edit and PUT it back. */
export const JOB_READ_ONLY_FIELDS: readonly string[] = ['lastBuild'];
export const DEFAULT_PIPELINE_FILE = '.slipway.yml';
export const DEFAULT_POLL_INTERVAL_SECONDS = 60;
export const MAX_CONCURRENCY = 1000;
/** The most `credentials` a job may name (each is a `use` check and a secret read at every build). */
export const MAX_CREDENTIALS = 100;
export const MAX_POLL_INTERVAL_SECONDS = 7 * 24 * 3600;

export function isValidJobName(name: string): boolean {
  return isValidName(name);
}

/**
 * Checks the body of `PUT /ci/v1/jobs/{name}` and applies its defaults. Throws InvalidJob with
 * every problem found; problems of an inline `pipeline` carry their path, line and column.
 * Secrets come back as given (SecretInput): resolveJobSecrets (job-secrets.ts) reads "***" and
 * sealed values against the stored job, in the turn that saves it.
 */
export function parseJobDefinition(name: string, json: unknown): JobDefinition<SecretInput> {
  const problems: FieldProblem[] = [];
  const bad = (field: string, message: string): void => {
    problems.push({ field, message });
  };
  if (!isValidName(name)) bad('name', `${JSON.stringify(name)} is not a valid job name: ${NAME_RULE}`);
  if (!isPlainObject(json)) {
    bad('', `the body must be a JSON object, not ${describeJson(json)}`);
    throw new InvalidJob(problems);
  }
  checkFields(Object.fromEntries(Object.entries(json).filter(([k]) => !JOB_READ_ONLY_FIELDS.includes(k))), '', JOB_FIELDS, bad);
  if (json['name'] !== undefined && json['name'] !== name) bad('name', `is ${JSON.stringify(json['name'])} in the body but ${JSON.stringify(name)} in the URL`);

  const job: JobDefinition<SecretInput> = { name, repo: '', triggers: {}, concurrency: 1, env: {}, secrets: {} };

  const repo = json['repo'];
  if (repo === undefined) bad('repo', 'is required: a git URL or an absolute local path');
  else if (typeof repo !== 'string') bad('repo', `must be a string, not ${describeJson(repo)}`);
  else {
    const problem = repoProblem(repo);
    if (problem !== undefined) bad('repo', problem);
    else job.repo = repo;
  }

  const branch = json['branch'];
  if (branch !== undefined && branch !== null) {
    if (typeof branch !== 'string') bad('branch', `must be a string, not ${describeJson(branch)}`);
    else {
      const problem = branchProblem(branch);
      if (problem !== undefined) bad('branch', problem);
      else job.branch = branch;
    }
  }

  const inline = json['pipeline'];
  const file = json['pipelineFile'];
  let inlinePipeline: Pipeline | undefined;
  if (inline !== undefined && inline !== null && file !== undefined && file !== null) {
    bad('pipelineFile', 'give `pipelineFile` (a file in the repo) or `pipeline` (inline YAML), not both');
  } else if (inline !== undefined && inline !== null) {
    if (typeof inline !== 'string') bad('pipeline', `must be the pipeline's YAML text (a string), not ${describeJson(inline)}`);
    else {
      try {
        inlinePipeline = parsePipeline(inline);
        job.pipeline = inline;
      } catch (e) {
        if (!(e instanceof InvalidPipeline)) throw e;
        for (const p of e.problems) problems.push({ field: 'pipeline', path: p.path, message: p.message, line: p.line, column: p.column });
      }
    }
  } else if (file !== undefined && file !== null) {
    if (typeof file !== 'string') bad('pipelineFile', `must be a string, not ${describeJson(file)}`);
    else {
      const normalized = repoPathOf(file);
      if (typeof normalized === 'object') bad('pipelineFile', normalized.problem);
      else job.pipelineFile = normalized;
    }
  } else {
    job.pipelineFile = DEFAULT_PIPELINE_FILE;
  }

  const triggers = json['triggers'];
  if (triggers !== undefined && triggers !== null) job.triggers = readTriggers(triggers, bad);

  const executor = json['executor'];
  if (executor !== undefined && executor !== null) {
    if (typeof executor !== 'string') bad('executor', `must be a string, not ${describeJson(executor)}`);
    else if (!isValidName(executor)) bad('executor', `is not a valid executor label: ${NAME_RULE}`);
    else job.executor = executor;
  }

  const concurrency = json['concurrency'];
  if (concurrency !== undefined && concurrency !== null) {
    const n = integerIn(concurrency, 1, MAX_CONCURRENCY);
    if (typeof n === 'string') bad('concurrency', n);
    else job.concurrency = n;
  }

  const env = json['env'];
  if (env !== undefined && env !== null) job.env = readEnv(env, 'env', bad);

  const secrets = json['secrets'];
  if (secrets !== undefined && secrets !== null) job.secrets = readSecrets(secrets, job.env, bad);

  const credentials = json['credentials'];
  if (credentials !== undefined && credentials !== null) {
    const read = readCredentials(credentials, job.env, job.secrets, bad);
    if (Object.keys(read).length > 0) job.credentials = read;
  }

  const stores = json['artifactStores'];
  if (stores !== undefined && stores !== null) {
    const read = readArtifactStores(stores, bad);
    if (Object.keys(read).length > 0) job.artifactStores = read;
  }
  const registries = json['registries'];
  if (registries !== undefined && registries !== null) {
    const read = readRegistries(registries, bad);
    if (Object.keys(read).length > 0) job.registries = read;
  }
  const deploys = json['deploys'];
  if (deploys !== undefined && deploys !== null) {
    const read = readDeploys(deploys, bad);
    if (read.length > 0) job.deploys = read;
  }
  // An inline pipeline's publish, build-image and deploy steps are checked against the stores,
  // registries and services now; a pipeline file's when a build runs it (the step ends in error,
  // naming them).
  inlinePipeline?.steps.forEach((s, i) => {
    if (s.kind === 'deploy' && !(job.deploys ?? []).includes(s.service)) {
      problems.push({ field: 'pipeline', path: `steps[${i}].service`, message: `${JSON.stringify(s.service)} is not in the job's deploys (${(job.deploys ?? []).length > 0 ? `it deploys: ${job.deploys!.join(', ')}` : 'it deploys none'})` });
    }
    if (s.kind === 'publish' && !Object.hasOwn(job.artifactStores ?? {}, s.store)) {
      const known = Object.keys(job.artifactStores ?? {});
      problems.push({ field: 'pipeline', path: `steps[${i}].store`, message: `no artifact store ${JSON.stringify(s.store)} in the job's artifactStores (${known.length > 0 ? `stores: ${known.join(', ')}` : 'it has none'})` });
    }
    if (s.kind === 'build-image' && !Object.hasOwn(job.registries ?? {}, s.registry)) {
      const known = Object.keys(job.registries ?? {});
      problems.push({ field: 'pipeline', path: `steps[${i}].registry`, message: `no registry ${JSON.stringify(s.registry)} in the job's registries (${known.length > 0 ? `registries: ${known.join(', ')}` : 'it has none'})` });
    }
  });

  if (problems.length > 0) throw new InvalidJob(problems);
  return job;
}

function readTriggers(json: unknown, bad: (field: string, message: string) => void): JobTriggers<SecretInput> {
  const triggers: JobTriggers<SecretInput> = {};
  if (!isPlainObject(json)) {
    bad('triggers', `must be an object ({poll?, cron?, webhook?}), not ${describeJson(json)}`);
    return triggers;
  }
  checkFields(json, 'triggers', ['poll', 'cron', 'webhook'], bad);

  const poll = json['poll'];
  if (poll === true || isPlainObject(poll)) {
    const o = poll === true ? {} : poll;
    checkFields(o, 'triggers.poll', ['intervalSeconds', 'tags', 'branch'], bad);
    const trigger: PollTrigger = { intervalSeconds: DEFAULT_POLL_INTERVAL_SECONDS, tags: true, branch: false };
    if (o['intervalSeconds'] !== undefined) {
      const n = integerIn(o['intervalSeconds'], 1, MAX_POLL_INTERVAL_SECONDS);
      if (typeof n === 'string') bad('triggers.poll.intervalSeconds', n);
      else trigger.intervalSeconds = n;
    }
    trigger.tags = booleanOr(o['tags'], true, 'triggers.poll.tags', bad);
    trigger.branch = booleanOr(o['branch'], false, 'triggers.poll.branch', bad);
    if (!trigger.tags && !trigger.branch) bad('triggers.poll', 'polls for nothing: set `tags` or `branch` to true (or leave out `poll`)');
    triggers.poll = trigger;
  } else if (poll !== undefined && poll !== null && poll !== false) {
    bad('triggers.poll', `must be true, false or an object ({intervalSeconds?, tags?, branch?}), not ${describeJson(poll)}`);
  }

  const cron = json['cron'];
  if (cron !== undefined && cron !== null) {
    if (typeof cron !== 'string') bad('triggers.cron', `must be a cron expression (a string), not ${describeJson(cron)}`);
    else {
      try {
        triggers.cron = parseCron(cron).expression;
      } catch (e) {
        if (!(e instanceof InvalidCron)) throw e;
        bad('triggers.cron', e.message);
      }
    }
  }

  const webhook = json['webhook'];
  if (webhook === true || isPlainObject(webhook)) {
    const o = webhook === true ? {} : webhook;
    checkFields(o, 'triggers.webhook', ['secret', 'tags', 'branch'], bad);
    const trigger: WebhookTrigger<SecretInput> = { tags: true, branch: true };
    const secret = o['secret'];
    if (secret !== undefined && secret !== null) {
      const value = readSecretInput(secret, 'triggers.webhook.secret', bad);
      if (value === '') bad('triggers.webhook.secret', 'must be a non-empty string');
      else if (value !== undefined) trigger.secret = value;
    }
    trigger.tags = booleanOr(o['tags'], true, 'triggers.webhook.tags', bad);
    trigger.branch = booleanOr(o['branch'], true, 'triggers.webhook.branch', bad);
    if (!trigger.tags && !trigger.branch) bad('triggers.webhook', 'accepts nothing: set `tags` or `branch` to true (or leave out `webhook`)');
    // Field order: secret first when there is one, as a reader expects it.
    triggers.webhook = trigger.secret !== undefined ? { secret: trigger.secret, tags: trigger.tags, branch: trigger.branch } : trigger;
  } else if (webhook !== undefined && webhook !== null && webhook !== false) {
    bad('triggers.webhook', `must be true, false or an object ({secret?, tags?, branch?}), not ${describeJson(webhook)}`);
  }
  return triggers;
}

/**
 * Why `repo` is not something CI can clone, or undefined. Transports are allow-listed: git's
 * `ext::` runs a command of the URL's choosing, and a repo that starts with `-` would be read by
 * git as an option.
 */
export function repoProblem(repo: string): string | undefined {
  const what = 'must be a git URL (https://, http://, git://, ssh://, file://, or user@host:path) or an absolute local path';
  if (repo === '') return `is empty: it ${what}`;
  if (repo.trim() !== repo) return 'must not start or end with spaces';
  if (hasControlCharacter(repo)) return 'must not contain control characters';
  if (repo.startsWith('/')) return undefined;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(repo)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (!['https', 'http', 'git', 'ssh', 'file'].includes(scheme)) return `the scheme ${scheme}:// is not supported: it ${what}`;
    let url: URL;
    try {
      url = new URL(repo);
    } catch {
      return `is not a valid URL: it ${what}`;
    }
    if (scheme === 'file') return url.pathname.length > 1 ? undefined : 'a file:// URL needs a path (file:///srv/git/app.git)';
    if (url.hostname === '') return `needs a host (${scheme}://host/path)`;
    if (url.pathname === '' || url.pathname === '/') return `needs the repository's path after the host (${scheme}://${url.host}/org/app.git)`;
    return undefined;
  }
  // scp-like syntax, as git reads it: user@host:path, with no slash before the colon.
  if (/^[A-Za-z0-9._~][A-Za-z0-9._~-]*@(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):(?!\/\/)[^\s]+$/.test(repo)) return undefined;
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(repo)) return `git's remote-helper syntax (transport::address) is not supported: it ${what}`;
  if (!repo.includes('://') && !repo.includes('@')) return `a local path must be absolute (the server does not run where you do): it ${what}`;
  return what;
}

/** Why `branch` is not a branch name git accepts (git check-ref-format --branch), or undefined. */
export function branchProblem(branch: string): string | undefined {
  if (branch === '') return 'must not be empty (leave `branch` out for the repository\'s default branch)';
  if (branch === 'HEAD') return 'leave `branch` out for the repository\'s default branch (HEAD)';
  if (branch.startsWith('refs/')) return `give the branch's name (${branch.replace(/^refs\/(heads\/)?/, '')}), not its ref`;
  if (branch.length > 255) return 'is longer than 255 characters';
  if (hasControlCharacter(branch, true) || /[~^:?*[\\]/.test(branch)) return 'must not contain spaces, control characters or any of ~ ^ : ? * [ \\';
  if (branch.startsWith('-')) return 'must not start with `-`';
  if (branch.includes('..') || branch.includes('@{') || branch === '@') return 'must not contain `..` or `@{`, nor be `@`';
  const parts = branch.split('/');
  if (parts.some((p) => p === '' || p.startsWith('.') || p.endsWith('.lock'))) {
    return 'has an empty part, a part starting with `.`, or one ending with `.lock`';
  }
  if (branch.endsWith('.')) return 'must not end with `.`';
  return undefined;
}

/** A path inside the repository, `./` parts dropped; or why it is not one. */
function repoPathOf(path: string): string | { problem: string } {
  if (path.trim() === '') return { problem: 'must not be empty' };
  if (hasControlCharacter(path)) return { problem: 'must not contain control characters' };
  if (path.startsWith('/')) return { problem: 'must be a path inside the repository, relative to its root' };
  const parts = path.split('/').filter((p) => p !== '.');
  if (parts.includes('..')) return { problem: 'must stay inside the repository (no `..`)' };
  if (parts.length === 0 || parts.includes('')) return { problem: 'must name a file (no empty parts, no trailing `/`)' };
  return parts.join('/');
}

// ---------------------------------------------------------------------------------------------
// Executor specs
// ---------------------------------------------------------------------------------------------

export type ExecutorContainerizer = 'process' | 'docker';
export type ExecutorConstraintOperator = 'IS' | 'LIKE' | 'UNLIKE' | 'UNIQUE' | 'MAX_PER';

/**
 * Where an executor of the label may run, Marathon's way: `field` is `hostname` or an agent
 * attribute. IS: equals `value`; LIKE / UNLIKE: `value` (a regular expression) matches / does not
 * match the whole value; UNIQUE: at most one executor of the label per value; MAX_PER: at most
 * `value` executors of the label per value. An agent without the attribute passes only UNLIKE.
 */
export interface ExecutorConstraint {
  field: string;
  operator: ExecutorConstraintOperator;
  value?: string;
}

/** A bind mount into a Docker executor (containerizer `docker`): e.g. the host's Docker socket. */
export interface ExecutorVolume {
  containerPath: string;
  hostPath: string;
  mode: 'RO' | 'RW';
}

export interface ExecutorSpec {
  label: string;
  /** Resources of one executor, taken from an offer and held while it lives (all its builds run in them). */
  cpus: number;
  /** MB. */
  mem: number;
  /** MB. */
  disk: number;
  /** How the agent runs the executor itself. Image steps always run on the agent host's Docker engine. */
  containerizer: ExecutorContainerizer;
  /** The image the executor runs in; required with containerizer `docker`, refused with `process`. */
  image?: string;
  constraints: ExecutorConstraint[];
  /** Executors of this label at once, over the whole cluster. */
  maxExecutors: number;
  /** An executor idle this long exits and its resources go back to the pool; 0: after each build. */
  idleTerminationSeconds: number;
  volumes: ExecutorVolume[];
}

export const EXECUTOR_FIELDS = [
  'label',
  'cpus',
  'mem',
  'disk',
  'containerizer',
  'image',
  'constraints',
  'maxExecutors',
  'idleTerminationSeconds',
  'volumes',
] as const;

export const DEFAULT_EXECUTOR_LABEL = 'default';

/**
 * The built-in `default` label, and the default of every field left out of a PUT. One CPU and
 * 1 GB for a build is what a small Jenkins agent has; four at once keep a share of the cluster
 * for services; 180 s of idleness is the Jenkins Mesos plugin's three minutes.
 */
export const DEFAULT_EXECUTOR_SPEC: Readonly<ExecutorSpec> = Object.freeze({
  label: DEFAULT_EXECUTOR_LABEL,
  cpus: 1,
  mem: 1024,
  disk: 4096,
  containerizer: 'process',
  constraints: [],
  maxExecutors: 4,
  idleTerminationSeconds: 180,
  volumes: [],
});

export const MAX_EXECUTORS_LIMIT = 1000;
export const MAX_IDLE_TERMINATION_SECONDS = 7 * 24 * 3600;
const CONSTRAINT_OPERATORS: readonly ExecutorConstraintOperator[] = ['IS', 'LIKE', 'UNLIKE', 'UNIQUE', 'MAX_PER'];

/** A fresh copy of the `default` label's spec (the frozen constant's arrays are not to be shared). */
export function defaultExecutorSpec(): ExecutorSpec {
  return { ...DEFAULT_EXECUTOR_SPEC, constraints: [], volumes: [] };
}

/**
 * Checks the body of `PUT /ci/v1/executors/{label}`; every field may be left out and takes the
 * `default` label's value. Throws InvalidExecutorSpec with every problem found.
 */
export function parseExecutorSpec(label: string, json: unknown): ExecutorSpec {
  const problems: FieldProblem[] = [];
  const bad = (field: string, message: string): void => {
    problems.push({ field, message });
  };
  if (!isValidName(label)) bad('label', `${JSON.stringify(label)} is not a valid executor label: ${NAME_RULE}`);
  if (!isPlainObject(json)) {
    bad('', `the body must be a JSON object, not ${describeJson(json)}`);
    throw new InvalidExecutorSpec(problems);
  }
  checkFields(json, '', EXECUTOR_FIELDS, bad);
  if (json['label'] !== undefined && json['label'] !== label) bad('label', `is ${JSON.stringify(json['label'])} in the body but ${JSON.stringify(label)} in the URL`);

  const spec = defaultExecutorSpec();
  spec.label = label;

  const number = (field: 'cpus' | 'mem' | 'disk', min: number, exclusive: boolean): void => {
    const v = json[field];
    if (v === undefined || v === null) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) bad(field, `must be a number, not ${describeJson(v)}`);
    else if (exclusive ? v <= min : v < min) bad(field, `must be ${exclusive ? 'more than' : 'at least'} ${min}`);
    else spec[field] = v;
  };
  number('cpus', 0, true);
  number('mem', 0, true);
  number('disk', 0, false);

  const containerizer = json['containerizer'];
  if (containerizer !== undefined && containerizer !== null) {
    if (containerizer === 'process' || containerizer === 'docker') spec.containerizer = containerizer;
    else bad('containerizer', `must be "process" or "docker", not ${describeJson(containerizer)}`);
  }

  const image = json['image'];
  if (image !== undefined && image !== null) {
    if (typeof image !== 'string' || image.trim() === '' || /\s/.test(image) || image.startsWith('-')) {
      bad('image', `must be an image reference (a string without spaces), not ${describeJson(image)}`);
    } else if (spec.containerizer !== 'docker') bad('image', 'is only for containerizer "docker"');
    else spec.image = image;
  } else if (spec.containerizer === 'docker') {
    bad('image', 'is required with containerizer "docker": the image the executor runs in');
  }

  const constraints = json['constraints'];
  if (constraints !== undefined && constraints !== null) {
    if (!Array.isArray(constraints)) bad('constraints', `must be a list, not ${describeJson(constraints)}`);
    else spec.constraints = constraints.flatMap((c, i) => readConstraint(c, `constraints[${i}]`, bad));
  }

  const maxExecutors = json['maxExecutors'];
  if (maxExecutors !== undefined && maxExecutors !== null) {
    const n = integerIn(maxExecutors, 1, MAX_EXECUTORS_LIMIT);
    if (typeof n === 'string') bad('maxExecutors', n);
    else spec.maxExecutors = n;
  }

  const idle = json['idleTerminationSeconds'];
  if (idle !== undefined && idle !== null) {
    const n = integerIn(idle, 0, MAX_IDLE_TERMINATION_SECONDS);
    if (typeof n === 'string') bad('idleTerminationSeconds', n);
    else spec.idleTerminationSeconds = n;
  }

  const volumes = json['volumes'];
  if (volumes !== undefined && volumes !== null) {
    if (!Array.isArray(volumes)) bad('volumes', `must be a list, not ${describeJson(volumes)}`);
    else if (volumes.length > 0 && spec.containerizer !== 'docker') bad('volumes', 'are only for containerizer "docker" (a process executor sees the host\'s files)');
    else spec.volumes = volumes.flatMap((v, i) => readVolume(v, `volumes[${i}]`, bad));
  }

  if (problems.length > 0) throw new InvalidExecutorSpec(problems);
  return spec;
}

/** Marathon's array form `["hostname", "LIKE", "web.*"]` or this module's object form. */
function readConstraint(json: unknown, field: string, bad: (field: string, message: string) => void): ExecutorConstraint[] {
  let c: { field: unknown; operator: unknown; value: unknown };
  if (Array.isArray(json)) {
    if (json.length < 2 || json.length > 3) {
      bad(field, 'must be [field, operator] or [field, operator, value]');
      return [];
    }
    c = { field: json[0], operator: json[1], value: json[2] };
  } else if (isPlainObject(json)) {
    checkFields(json, field, ['field', 'operator', 'value'], bad);
    c = { field: json['field'], operator: json['operator'], value: json['value'] };
  } else {
    bad(field, `must be [field, operator, value?] or {field, operator, value?}, not ${describeJson(json)}`);
    return [];
  }
  if (typeof c.field !== 'string' || c.field === '') {
    bad(`${field}.field`, 'must be `hostname` or an agent attribute name');
    return [];
  }
  if (typeof c.operator !== 'string' || !(CONSTRAINT_OPERATORS as readonly string[]).includes(c.operator)) {
    bad(`${field}.operator`, `must be one of ${CONSTRAINT_OPERATORS.join(', ')}, not ${describeJson(c.operator)}`);
    return [];
  }
  const operator = c.operator as ExecutorConstraintOperator;
  if (operator === 'UNIQUE') {
    if (c.value !== undefined && c.value !== null) {
      bad(`${field}.value`, 'UNIQUE takes no value');
      return [];
    }
    return [{ field: c.field, operator }];
  }
  if (typeof c.value !== 'string') {
    bad(`${field}.value`, `${operator} needs a value (a string)`);
    return [];
  }
  if (operator === 'MAX_PER' && !/^[1-9]\d*$/.test(c.value)) {
    bad(`${field}.value`, 'MAX_PER needs a positive whole number');
    return [];
  }
  if (operator === 'LIKE' || operator === 'UNLIKE') {
    try {
      new RegExp(`^(?:${c.value})$`);
    } catch (e) {
      bad(`${field}.value`, `is not a regular expression: ${(e as Error).message}`);
      return [];
    }
    // Matched against every offer's attributes, on CI's event loop: no pattern that can
    // backtrack catastrophically (issue 11, finding 2).
    const risk = regexBacktrackingRisk(c.value);
    if (risk !== undefined) {
      bad(`${field}.value`, `${risk}`);
      return [];
    }
  }
  return [{ field: c.field, operator, value: c.value }];
}

function readVolume(json: unknown, field: string, bad: (field: string, message: string) => void): ExecutorVolume[] {
  if (!isPlainObject(json)) {
    bad(field, `must be {containerPath, hostPath, mode?}, not ${describeJson(json)}`);
    return [];
  }
  checkFields(json, field, ['containerPath', 'hostPath', 'mode'], bad);
  let ok = true;
  for (const key of ['containerPath', 'hostPath'] as const) {
    const v = json[key];
    if (typeof v !== 'string' || !v.startsWith('/') || hasControlCharacter(v)) {
      bad(`${field}.${key}`, 'must be an absolute path');
      ok = false;
    }
  }
  const mode = json['mode'] ?? 'RW';
  if (mode !== 'RO' && mode !== 'RW') {
    bad(`${field}.mode`, `must be "RO" or "RW", not ${describeJson(mode)}`);
    ok = false;
  }
  if (!ok) return [];
  return [{ containerPath: json['containerPath'] as string, hostPath: json['hostPath'] as string, mode: mode as 'RO' | 'RW' }];
}

// ---------------------------------------------------------------------------------------------
// Small readers
// ---------------------------------------------------------------------------------------------

function readEnv(json: unknown, field: string, bad: (field: string, message: string) => void): Record<string, string> {
  const env: Record<string, string> = {};
  if (!isPlainObject(json)) {
    bad(field, `must be an object of NAME: "value", not ${describeJson(json)}`);
    return env;
  }
  for (const [name, value] of Object.entries(json)) {
    const f = `${field}.${name}`;
    if (!ENV_NAME_PATTERN.test(name)) bad(f, 'is not a variable name: letters, digits and `_`, not starting with a digit');
    else if (isReservedVariableName(name)) bad(f, '`CI` and `CI_*` variables are set by CI and cannot be set here');
    else if (typeof value !== 'string') bad(f, `must be a string, not ${describeJson(value)}`);
    else if (value.includes('\0')) bad(f, 'must not contain a NUL character');
    else setOwn(env, name, value);
  }
  return env;
}

/**
 * A job's `secrets`: names as in `env` (and not in `env` too), each value a string without NUL,
 * "***" (keep the stored value), or `{"encrypted": "v1:..."}` (a value this server sealed, as the
 * git mirror holds it).
 */
function readSecrets(json: unknown, env: Record<string, string>, bad: (field: string, message: string) => void): Record<string, SecretInput> {
  const secrets: Record<string, SecretInput> = {};
  if (!isPlainObject(json)) {
    bad('secrets', `must be an object of NAME: "value", not ${describeJson(json)}`);
    return secrets;
  }
  for (const [name, value] of Object.entries(json)) {
    const f = `secrets.${name}`;
    if (!ENV_NAME_PATTERN.test(name)) bad(f, 'is not a variable name: letters, digits and `_`, not starting with a digit');
    else if (isReservedVariableName(name)) bad(f, '`CI` and `CI_*` variables are set by CI and cannot be set here');
    else if (Object.prototype.hasOwnProperty.call(env, name)) bad(f, 'is also in `env`: a variable is either in `env` or in `secrets`');
    else {
      const v = readSecretInput(value, f, bad);
      if (v !== undefined) setOwnValue(secrets, name, v);
    }
  }
  return secrets;
}

/** A job's `credentials`: variable names as in `secrets` (in neither `env` nor `secrets`), each naming a secret of the store. */
function readCredentials(json: unknown, env: Record<string, string>, secrets: Record<string, unknown>, bad: (field: string, message: string) => void): Record<string, string> {
  const credentials: Record<string, string> = {};
  if (!isPlainObject(json)) {
    bad('credentials', `must be an object of NAME: "secret-name" (a secret of the secret store), not ${describeJson(json)}`);
    return credentials;
  }
  if (Object.keys(json).length > MAX_CREDENTIALS) {
    bad('credentials', `has ${Object.keys(json).length} entries; a job has at most ${MAX_CREDENTIALS}`);
    return credentials;
  }
  for (const [name, value] of Object.entries(json)) {
    const f = `credentials.${name}`;
    if (!ENV_NAME_PATTERN.test(name)) bad(f, 'is not a variable name: letters, digits and `_`, not starting with a digit');
    else if (isReservedVariableName(name)) bad(f, '`CI` and `CI_*` variables are set by CI and cannot be set here');
    else if (Object.hasOwn(env, name) || Object.hasOwn(secrets, name)) bad(f, 'is also in `env` or `secrets`: a variable is in one of them');
    else if (typeof value !== 'string') bad(f, `must be the name of a secret of the secret store, not ${describeJson(value)}`);
    else {
      const n = secretName(value);
      if ('problem' in n) bad(f, n.problem);
      else setOwnValue(credentials, name, n.name);
    }
  }
  return credentials;
}

/**
 * A job's `artifactStores`: NAME (the rule for names) -> {url, username?, passwordSecret?}. The
 * URL is http(s) with a host, without credentials (they go in `username` and the secret), query
 * or fragment; a trailing `/` is dropped.
 */
function readArtifactStores(json: unknown, bad: (field: string, message: string) => void): Record<string, ArtifactStoreConfig> {
  const stores: Record<string, ArtifactStoreConfig> = {};
  if (!isPlainObject(json)) {
    bad('artifactStores', `must be an object of NAME: {url, username?, passwordSecret?}, not ${describeJson(json)}`);
    return stores;
  }
  if (Object.keys(json).length > MAX_ARTIFACT_STORES) {
    bad('artifactStores', `has ${Object.keys(json).length} stores; a job has at most ${MAX_ARTIFACT_STORES}`);
    return stores;
  }
  for (const [name, value] of Object.entries(json)) {
    const f = `artifactStores.${name}`;
    if (!isValidName(name)) {
      bad(f, `is not a valid store name: ${NAME_RULE}`);
      continue;
    }
    if (!isPlainObject(value)) {
      bad(f, `must be an object {url, username?, passwordSecret?}, not ${describeJson(value)}`);
      continue;
    }
    checkFields(value, f, ['url', 'username', 'passwordSecret'], bad);
    const store: ArtifactStoreConfig = { url: '' };
    const url = value['url'];
    if (url === undefined || url === null) bad(`${f}.url`, 'is required: the http(s) URL files are PUT under');
    else if (typeof url !== 'string') bad(`${f}.url`, `must be a string, not ${describeJson(url)}`);
    else {
      const problem = storeUrlProblem(url);
      if (problem !== undefined) bad(`${f}.url`, problem);
      else {
        // Index scan, not /\/+$/ (quadratic on a long run of slashes not at the end).
        let end = url.length;
        while (end > 0 && url.charCodeAt(end - 1) === 0x2f) end--;
        store.url = url.slice(0, end);
      }
    }
    const username = value['username'];
    if (username !== undefined && username !== null) {
      if (typeof username !== 'string') bad(`${f}.username`, `must be a string, not ${describeJson(username)}`);
      else if (username.includes(':') || hasControlCharacter(username)) bad(`${f}.username`, 'must not contain `:` or control characters (HTTP Basic)');
      else store.username = username;
    }
    const secret = value['passwordSecret'];
    if (secret !== undefined && secret !== null) {
      if (typeof secret !== 'string') bad(`${f}.passwordSecret`, `must be the name of a secret of the secret store, not ${describeJson(secret)}`);
      else {
        const n = secretName(secret);
        if ('problem' in n) bad(`${f}.passwordSecret`, n.problem);
        else store.passwordSecret = n.name;
      }
    }
    setOwnValue(stores, name, store);
  }
  return stores;
}

/** A job's `deploys`: delivery service names (the rule for names), each once, at most MAX_DEPLOYS. */
function readDeploys(json: unknown, bad: (field: string, message: string) => void): string[] {
  if (!Array.isArray(json)) {
    bad('deploys', `must be a list of delivery service names, not ${describeJson(json)}`);
    return [];
  }
  if (json.length > MAX_DEPLOYS) {
    bad('deploys', `lists ${json.length} services; a job deploys at most ${MAX_DEPLOYS}`);
    return [];
  }
  const out: string[] = [];
  json.forEach((v: unknown, i) => {
    if (typeof v !== 'string' || !isValidName(v)) bad(`deploys[${i}]`, `is not a delivery service name: ${NAME_RULE}`);
    else if (out.includes(v)) bad(`deploys[${i}]`, `${JSON.stringify(v)} is listed twice`);
    else out.push(v);
  });
  return out;
}

/**
 * A job's `registries`: NAME (the rule for names) -> {address, username?, passwordSecret?}, the
 * address `host[:port]` (registryAddressProblem).
 */
function readRegistries(json: unknown, bad: (field: string, message: string) => void): Record<string, RegistryConfig> {
  const registries: Record<string, RegistryConfig> = {};
  if (!isPlainObject(json)) {
    bad('registries', `must be an object of NAME: {address, username?, passwordSecret?}, not ${describeJson(json)}`);
    return registries;
  }
  if (Object.keys(json).length > MAX_REGISTRIES) {
    bad('registries', `has ${Object.keys(json).length} registries; a job has at most ${MAX_REGISTRIES}`);
    return registries;
  }
  for (const [name, value] of Object.entries(json)) {
    const f = `registries.${name}`;
    if (!isValidName(name)) {
      bad(f, `is not a valid registry name: ${NAME_RULE}`);
      continue;
    }
    if (!isPlainObject(value)) {
      bad(f, `must be an object {address, username?, passwordSecret?}, not ${describeJson(value)}`);
      continue;
    }
    checkFields(value, f, ['address', 'username', 'passwordSecret'], bad);
    const registry: RegistryConfig = { address: '' };
    const address = value['address'];
    if (address === undefined || address === null) bad(`${f}.address`, 'is required: host[:port] of the registry, as in image names (127.0.0.1:5000)');
    else if (typeof address !== 'string') bad(`${f}.address`, `must be a string, not ${describeJson(address)}`);
    else {
      const problem = registryAddressProblem(address);
      if (problem !== undefined) bad(`${f}.address`, problem);
      else registry.address = address;
    }
    const username = value['username'];
    if (username !== undefined && username !== null) {
      if (typeof username !== 'string') bad(`${f}.username`, `must be a string, not ${describeJson(username)}`);
      else if (username.includes(':') || hasControlCharacter(username)) bad(`${f}.username`, 'must not contain `:` or control characters');
      else registry.username = username;
    }
    const secret = value['passwordSecret'];
    if (secret !== undefined && secret !== null) {
      if (typeof secret !== 'string') bad(`${f}.passwordSecret`, `must be the name of a secret of the secret store, not ${describeJson(secret)}`);
      else {
        const n = secretName(secret);
        if ('problem' in n) bad(`${f}.passwordSecret`, n.problem);
        else registry.passwordSecret = n.name;
      }
    }
    setOwnValue(registries, name, registry);
  }
  return registries;
}

const DNS_LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/**
 * Why `address` is not a registry address: `host[:port]`, the host a DNS name, an IPv4 address
 * or `[IPv6]`, without scheme, path or credentials. It must hold a `.` or a `:`, or be
 * `localhost`: Docker reads a first part without them as a Docker Hub namespace, not a host.
 */
export function registryAddressProblem(address: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) return `must be host[:port] without a scheme (${address.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')}): the engine chooses HTTPS, or HTTP for an insecure registry`;
  if (address.includes('/') || address.includes('@') || /\s/.test(address)) return 'must be host[:port] only: no path, credentials or spaces (give `username` and `passwordSecret`)';
  if (address.length > 253 + 6) return 'is too long for a host[:port]';
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(address);
  if (m === null) return 'is not host[:port]';
  const host = m[1] as string;
  const port = m[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return `has port ${port}; a port is 1 to 65535`;
  if (!host.startsWith('[') && !host.split('.').every((l) => DNS_LABEL.test(l))) return `host ${JSON.stringify(host)} is not a host name or an IPv4 address`;
  if (port === undefined && !host.includes('.') && !host.startsWith('[') && host !== 'localhost') {
    return `host ${JSON.stringify(host)} has no \`.\` and no port: Docker would read it as a Docker Hub namespace; give its full name or a port (${host}:5000)`;
  }
  return undefined;
}

function storeUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL: give http(s)://host[:port][/path]';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must be an http:// or https:// URL, not ${u.protocol}`;
  if (u.hostname === '') return 'needs a host';
  if (u.username !== '' || u.password !== '') return 'must not hold credentials: give `username` and `passwordSecret` (a secret of the secret store)';
  if (u.search !== '' || u.hash !== '' || url.includes('?') || url.includes('#')) return 'must not have a query or a fragment: files are PUT under its path';
  return undefined;
}

/** A secret's value in a request: a string without NUL, or `{"encrypted": "..."}`. */
function readSecretInput(value: unknown, field: string, bad: (field: string, message: string) => void): SecretInput | undefined {
  if (typeof value === 'string') {
    if (value.includes('\0')) {
      bad(field, 'must not contain a NUL character');
      return undefined;
    }
    return value;
  }
  if (isPlainObject(value) && Object.keys(value).length === 1 && typeof value['encrypted'] === 'string') return { encrypted: value['encrypted'] };
  bad(field, `must be a string, "${REDACTED}" (keep the stored value) or {"encrypted": "..."} (sealed by this server), not ${describeJson(value)}`);
  return undefined;
}

/**
 * `env[name] = value` that also works for the name `__proto__` (a valid variable name, which a
 * plain assignment would take as the object's prototype and drop).
 */
export function setOwn(target: Record<string, string>, name: string, value: string): void {
  setOwnValue(target, name, value);
}

/** setOwn, for a record of any values. */
export function setOwnValue<V>(target: Record<string, V>, name: string, value: V): void {
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
}

function checkFields(json: Record<string, unknown>, base: string, known: readonly string[], bad: (field: string, message: string) => void): void {
  for (const key of Object.keys(json)) {
    if (!known.includes(key)) bad(base === '' ? key : `${base}.${key}`, `unknown field (known: ${known.join(', ')})`);
  }
}

/** A whole number in [min, max], or the message saying why not. */
function integerIn(value: unknown, min: number, max: number): number | string {
  if (typeof value !== 'number' || !Number.isInteger(value)) return `must be a whole number, not ${describeJson(value)}`;
  if (value < min || value > max) return `must be from ${min} to ${max}`;
  return value;
}

function booleanOr(value: unknown, fallback: boolean, field: string, bad: (field: string, message: string) => void): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  bad(field, `must be true or false, not ${describeJson(value)}`);
  return fallback;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value === 'number' ? 'the number' : 'the boolean'} ${String(value)}`;
  return typeof value;
}

// ---------------------------------------------------------------------------------------------
// Stored documents: what JOB_SAVED and EXECUTOR_SPEC_SAVED stored, read back. A stored job or
// spec was parsed when it was PUT; reading it back checks its shape and version (cheaply: no
// pipeline parse, no URL or name rules), not the rules of a PUT again.
// ---------------------------------------------------------------------------------------------

/**
 * The newest `docVersion` of a stored job this code reads (absent in a document: 1). Version 2
 * has its secrets sealed (`{"encrypted": ...}`) and may have `secrets`; version 1 had neither,
 * and its webhook secret in clear. This code reads both (a secret in clear is sealed again when
 * CI starts) and writes 2, so that an older Slipway refuses a job it would misread.
 */
export const JOB_DOC_VERSION = 2;

/** A secret as a stored job has it: sealed, or in clear in a job stored before secrets were sealed. */
export type StoredSecret = SealedSecret | string;

/** A stored job, read back: `secrets` is absent in one stored before jobs had them. */
export type StoredJobDocument = Omit<JobDefinition<StoredSecret>, 'secrets'> & { secrets?: Record<string, StoredSecret> };
/** The newest `docVersion` of a stored executor spec this code reads (absent in a document: 1). */
export const EXECUTOR_SPEC_DOC_VERSION = 1;

const CONTAINERIZERS: ReadonlySet<ExecutorContainerizer> = new Set<ExecutorContainerizer>(['process', 'docker']);
const CONSTRAINT_OPERATOR_SET: ReadonlySet<ExecutorConstraintOperator> = new Set(CONSTRAINT_OPERATORS);
const VOLUME_MODES: ReadonlySet<'RO' | 'RW'> = new Set(['RO', 'RW'] as const);
const JOB_NAME = nameField('name');
const SPEC_LABEL = nameField('label');

/**
 * Reads a stored job (the document of JOB_SAVED) back: checks every field of `JobDefinition`
 * (its triggers included) and the document's `docVersion`, and returns the document itself,
 * typed, its secrets as stored (openJob, job-secrets.ts, opens them). Throws
 * `InvalidStoredDocument` naming the job and the field that does not match.
 */
export function readJobDocument(doc: unknown): StoredJobDocument {
  const r = new DocumentReader('job', doc, JOB_NAME);
  const o = r.rootObject();
  r.version(o, JOB_DOC_VERSION);
  r.string(o, 'name');
  r.string(o, 'repo');
  r.optString(o, 'branch');
  r.optString(o, 'pipelineFile');
  r.optString(o, 'pipeline');
  r.nested(o, 'triggers', checkTriggers);
  r.optString(o, 'executor');
  r.integer(o, 'concurrency');
  r.stringRecord(o, 'env');
  r.optNested(o, 'secrets', checkStoredSecrets);
  r.optNested(o, 'artifactStores', checkArtifactStores);
  r.optNested(o, 'registries', checkRegistries);
  r.optStrings(o, 'deploys');
  return o as unknown as StoredJobDocument;
}

/**
 * Reads a stored executor spec (the document of EXECUTOR_SPEC_SAVED) back: checks every field of
 * `ExecutorSpec` (constraints and volumes included) and the document's `docVersion`, and returns
 * the document itself, typed. Throws `InvalidStoredDocument` naming the label and the field that
 * does not match.
 */
export function readExecutorSpecDocument(doc: unknown): ExecutorSpec {
  const r = new DocumentReader('executor spec', doc, SPEC_LABEL);
  const o = r.rootObject();
  r.version(o, EXECUTOR_SPEC_DOC_VERSION);
  r.string(o, 'label');
  r.number(o, 'cpus');
  r.number(o, 'mem');
  r.number(o, 'disk');
  r.oneOf(o, 'containerizer', CONTAINERIZERS);
  r.optString(o, 'image');
  r.objects(o, 'constraints', checkConstraint);
  r.integer(o, 'maxExecutors');
  r.number(o, 'idleTerminationSeconds');
  r.objects(o, 'volumes', checkVolume);
  return o as unknown as ExecutorSpec;
}

function checkArtifactStores(r: DocumentReader, stores: JsonObject): void {
  for (const name of Object.keys(stores)) r.nested(stores, name, checkArtifactStore);
}

function checkRegistries(r: DocumentReader, registries: JsonObject): void {
  for (const name of Object.keys(registries)) r.nested(registries, name, checkRegistry);
}

function checkRegistry(r: DocumentReader, registry: JsonObject): void {
  r.string(registry, 'address');
  r.optString(registry, 'username');
  r.optString(registry, 'passwordSecret');
}

function checkArtifactStore(r: DocumentReader, store: JsonObject): void {
  r.string(store, 'url');
  r.optString(store, 'username');
  r.optString(store, 'passwordSecret');
}

function checkTriggers(r: DocumentReader, t: JsonObject): void {
  r.optNested(t, 'poll', checkPoll);
  r.optString(t, 'cron');
  r.optNested(t, 'webhook', checkWebhook);
}

function checkPoll(r: DocumentReader, poll: JsonObject): void {
  r.number(poll, 'intervalSeconds');
  r.boolean(poll, 'tags');
  r.boolean(poll, 'branch');
}

function checkWebhook(r: DocumentReader, webhook: JsonObject): void {
  checkStoredSecret(r, webhook, 'secret', true);
  r.boolean(webhook, 'tags');
  r.boolean(webhook, 'branch');
}

function checkStoredSecrets(r: DocumentReader, secrets: JsonObject): void {
  for (const name of Object.keys(secrets)) checkStoredSecret(r, secrets, name, false);
}

/** A sealed secret (`{"encrypted": "..."}`) or one in clear (a string), at `key`. */
function checkStoredSecret(r: DocumentReader, o: JsonObject, key: string, optional: boolean): void {
  const v = o[key];
  if (v === undefined && optional) return;
  if (typeof v === 'string') return;
  r.nested(o, key, checkSealed);
}

function checkSealed(r: DocumentReader, sealed: JsonObject): void {
  r.string(sealed, 'encrypted');
}

function checkConstraint(r: DocumentReader, c: JsonObject): void {
  r.string(c, 'field');
  r.oneOf(c, 'operator', CONSTRAINT_OPERATOR_SET);
  r.optString(c, 'value');
  // A spec stored before such patterns were refused is left out (with the reason in the log)
  // rather than matched against every offer on the event loop.
  const value = c['value'];
  if ((c['operator'] === 'LIKE' || c['operator'] === 'UNLIKE') && typeof value === 'string') {
    const risk = regexBacktrackingRisk(value);
    if (risk !== undefined) r.fail('value', risk);
  }
}

function checkVolume(r: DocumentReader, v: JsonObject): void {
  r.string(v, 'containerPath');
  r.string(v, 'hostPath');
  r.oneOf(v, 'mode', VOLUME_MODES);
}

/** Names a document in errors by its string field `key`, if it has one. */
function nameField(key: string): (doc: unknown) => string | undefined {
  return (doc) => {
    const v = isPlainObject(doc) ? doc[key] : undefined;
    return typeof v === 'string' ? v : undefined;
  };
}

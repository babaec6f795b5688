import { secretName } from '../core/secret-name.ts';
import { InvalidConfig, type ConfigProblem } from './config-errors.ts';

/**
 * The config center's documents, as `PUT` takes them and `GET` answers them (docs/config.md):
 *
 *   service      {repo, ref, files: [{name, template, destination, mode?}], apps?: {env: appId}, rollout?,
 *                apollo?: {accessKeySecret: "<secret name>"}}
 *   environment  {description?}
 *   values       {"key": <any JSON>, "password": {"$secret": "..."}}   (per service and environment,
 *                and shared per environment)
 *
 * Names (services, environments, file names) are `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 100.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface ConfigFile {
  /** The file's name in the release (unique in the service): what watchers and Apollo's namespaces call it. */
  name: string;
  /** The template's path in the repository. */
  template: string;
  /** Where the file goes in the container: absolute, or relative to the sandbox. */
  destination: string;
  /** Octal file mode, e.g. `0644`; default 0600 (a rendered file may hold secrets). */
  mode: string;
}

export type Rollout = 'restart' | 'hot' | 'none';

export interface ConfigService {
  name: string;
  /** A git URL or a local path of the repository that holds the templates. */
  repo: string;
  /** The branch, tag or commit the templates are taken from. */
  ref: string;
  files: ConfigFile[];
  /** The Marathon app that uses the service in each environment: environment -> app id. */
  apps: Record<string, string>;
  /** How a release reaches running instances unless the release says otherwise. */
  rollout: Rollout;
  /** Apollo's client API: absent, or the access key its clients sign with (docs/config.md). */
  apollo?: ApolloSettings;
}

export interface ApolloSettings {
  /**
   * The name (never the value) of the secret store's secret that is the access key of the appId:
   * Apollo clients that sign their requests with it (`apollo.access-key.secret`) need no token.
   */
  accessKeySecret: string;
}

export interface ConfigEnvironment {
  name: string;
  description: string;
}

/** A secret value in a values document: stored sealed, shown as `{"$secret": "***"}`. */
export const SECRET_KEY = '$secret';
export const REDACTED = '***';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const NAME_RULE = 'letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 100 characters';
const ROLLOUTS: readonly Rollout[] = ['restart', 'hot', 'none'];
const MAX_FILES = 100;

export function isConfigName(name: string): boolean {
  return NAME.test(name) && name !== '.' && name !== '..';
}

/** A name from a URL, or InvalidConfig naming `field`. */
export function configName(name: string, field: string): string {
  if (!isConfigName(name)) throw new InvalidConfig([{ field, message: `${JSON.stringify(name.slice(0, 120))} is not a valid name: ${NAME_RULE}` }]);
  return name;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `the string ${JSON.stringify(v.slice(0, 60))}` : `${typeof v === 'object' ? 'an object' : `the ${typeof v} ${String(v)}`}`;
}

function unknownFields(o: Record<string, unknown>, known: readonly string[], at: string, bad: (f: string, m: string) => void): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) bad(at === '' ? k : `${at}.${k}`, `unknown field (known: ${known.join(', ')})`);
}

/** A repository path: relative, no `..`, no NUL; what `git show <commit>:<path>` reads. */
function repoPath(p: string): string | undefined {
  if (p === '' || p.includes('\0') || p.startsWith('/') || p.split('/').some((s) => s === '..' || s === '')) return undefined;
  return p.startsWith('./') ? p.slice(2) : p;
}

/** Checks a `PUT /config/v1/services/{name}` body; throws InvalidConfig with every problem. */
export function parseService(name: string, json: unknown): ConfigService {
  const problems: ConfigProblem[] = [];
  const bad = (field: string, message: string) => void problems.push({ field, message });
  if (!isConfigName(name)) bad('name', `${JSON.stringify(name.slice(0, 120))} is not a valid service name: ${NAME_RULE}`);
  if (!isObject(json)) throw new InvalidConfig([...problems, { field: '', message: `the body must be a JSON object, not ${describe(json)}` }]);
  // `linkedApps` is what GET adds (read-only): accepted and ignored, so that GET, edit, PUT works.
  unknownFields(json, ['name', 'repo', 'ref', 'files', 'apps', 'rollout', 'apollo', 'linkedApps'], '', bad);
  if (json['name'] !== undefined && json['name'] !== name) bad('name', `is ${JSON.stringify(json['name'])} in the body but ${JSON.stringify(name)} in the URL`);
  const service: ConfigService = { name, repo: '', ref: 'main', files: [], apps: {}, rollout: 'restart' };
  const repo = json['repo'];
  if (typeof repo !== 'string' || repo.trim() === '') bad('repo', 'is required: a git URL or an absolute path of the repository of templates');
  else if (repo.includes('\0') || /^-/.test(repo) || /^(ext|fd)::/.test(repo)) bad('repo', 'is not a repository git may clone safely (no leading -, no ext:: or fd:: transports)');
  else if (!/^(https?|git|ssh|file):\/\//.test(repo) && !/^[^/:]+@[^:]+:/.test(repo) && !repo.startsWith('/')) bad('repo', 'must be a git URL (https, http, git, ssh, file) or an absolute path');
  else service.repo = repo;
  const ref = json['ref'];
  if (ref !== undefined) {
    if (typeof ref !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/.test(ref) || ref.includes('..')) bad('ref', 'must be a branch, tag or commit id (letters, digits, `.`, `_`, `-`, `/`)');
    else service.ref = ref;
  }
  const files = json['files'];
  if (!Array.isArray(files) || files.length === 0) bad('files', 'is required: a list of {name, template, destination, mode?}');
  else if (files.length > MAX_FILES) bad('files', `has ${files.length} entries; a service has at most ${MAX_FILES} files`);
  else {
    const names = new Set<string>();
    const destinations = new Set<string>();
    files.forEach((f, i) => {
      const at = `files[${i}]`;
      if (!isObject(f)) return bad(at, `must be an object {name, template, destination, mode?}, not ${describe(f)}`);
      unknownFields(f, ['name', 'template', 'destination', 'mode'], at, bad);
      const fname = f['name'];
      const template = f['template'];
      const destination = f['destination'];
      // 0600 unless said otherwise: a rendered file may hold secrets.
      const mode = f['mode'] ?? '0600';
      let ok = true;
      const fail = (field: string, message: string) => {
        ok = false;
        bad(field, message);
      };
      if (typeof fname !== 'string' || !isConfigName(fname)) fail(`${at}.name`, `must be a file name: ${NAME_RULE}`);
      else if (names.has(fname)) fail(`${at}.name`, `'${fname}' is the name of another file of the service`);
      else names.add(fname);
      const tpath = typeof template === 'string' ? repoPath(template) : undefined;
      if (tpath === undefined) fail(`${at}.template`, 'must be a path in the repository (relative, without ..)');
      if (typeof destination !== 'string' || destination === '' || destination.includes('\0') || destination.split('/').includes('..') || destination.endsWith('/')) {
        ok = false;
        bad(`${at}.destination`, 'must be a file path in the container (absolute, or relative to the sandbox), without ..');
      } else {
        // The same file, or a file where another needs a directory, once placed under a sandbox
        // (`/etc/a`, `etc/a` and `etc//./a` are one path there; `etc/a` and `etc/a/b` cannot both be).
        const path = destination.split('/').filter((c) => c !== '' && c !== '.').join('/');
        const parents = path.split('/').map((_, k, all) => all.slice(0, k).join('/')).filter((x) => x !== '');
        const clash = destinations.has(path) ? path : (parents.find((x) => destinations.has(x)) ?? [...destinations].find((d) => d.startsWith(`${path}/`)));
        if (path === '') fail(`${at}.destination`, 'must name a file, not the sandbox or the root');
        else if (clash !== undefined) fail(`${at}.destination`, clash === path ? `'${destination}' is the destination of another file` : `'${destination}' and the destination of another file ('${clash}') are a file and a directory of one another`);
        else destinations.add(path);
      }
      if (typeof mode !== 'string' || !/^0?[0-7]{3}$/.test(mode)) fail(`${at}.mode`, 'must be an octal mode such as "0644"');
      if (ok) {
        service.files.push({ name: fname as string, template: tpath!, destination: destination as string, mode: (mode as string).padStart(4, '0') });
      }
    });
  }
  const apps = json['apps'];
  if (apps !== undefined) {
    if (!isObject(apps)) bad('apps', 'must be an object {"environment": "/app/id"}');
    else
      for (const [env, id] of Object.entries(apps)) {
        if (!isConfigName(env)) bad(`apps.${env}`, `is not an environment name: ${NAME_RULE}`);
        else if (typeof id !== 'string' || !id.startsWith('/') || id.length > 500 || id.includes('\0')) bad(`apps.${env}`, 'must be a Marathon app id (/group/app)');
        else service.apps[env] = id;
      }
  }
  const rollout = json['rollout'];
  if (rollout !== undefined) {
    if (typeof rollout !== 'string' || !(ROLLOUTS as readonly string[]).includes(rollout)) bad('rollout', `must be one of ${ROLLOUTS.join(', ')}`);
    else service.rollout = rollout as Rollout;
  }
  const apollo = json['apollo'];
  if (apollo !== undefined) {
    if (!isObject(apollo)) bad('apollo', `must be an object {"accessKeySecret": "<secret name>"}, not ${describe(apollo)}`);
    else {
      unknownFields(apollo, ['accessKeySecret'], 'apollo', bad);
      const key = apollo['accessKeySecret'];
      const n = typeof key === 'string' ? secretName(key) : undefined;
      if (key === undefined) bad('apollo.accessKeySecret', 'is required: the name of a secret of the secret store (slipway secret put NAME)');
      else if (n === undefined) bad('apollo.accessKeySecret', `must be the name of a secret of the secret store (slipway secret put NAME), not ${describe(key)}`);
      else if ('problem' in n) bad('apollo.accessKeySecret', n.problem);
      else service.apollo = { accessKeySecret: n.name };
    }
  }
  if (problems.length > 0) throw new InvalidConfig(problems);
  return service;
}

/** Checks a `PUT /config/v1/environments/{name}` body. */
export function parseEnvironment(name: string, json: unknown): ConfigEnvironment {
  const problems: ConfigProblem[] = [];
  const bad = (field: string, message: string) => void problems.push({ field, message });
  if (!isConfigName(name)) bad('name', `${JSON.stringify(name.slice(0, 120))} is not a valid environment name: ${NAME_RULE}`);
  const body = json ?? {};
  if (!isObject(body)) throw new InvalidConfig([...problems, { field: '', message: `the body must be a JSON object, not ${describe(body)}` }]);
  unknownFields(body, ['name', 'description'], '', bad);
  if (body['name'] !== undefined && body['name'] !== name) bad('name', `is ${JSON.stringify(body['name'])} in the body but ${JSON.stringify(name)} in the URL`);
  const description = body['description'] ?? '';
  if (typeof description !== 'string' || description.length > 1000) bad('description', 'must be a string of at most 1000 characters');
  if (problems.length > 0) throw new InvalidConfig(problems);
  return { name, description: description as string };
}

/** A value as given: JSON, or a secret `{"$secret": "..."}` ("***" keeps the stored secret). */
export type ValueInput = Json | { [SECRET_KEY]: string };

const MAX_VALUES = 10_000;
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,199}$/;

/** Whether `v` holds an object with a `$sealed` key at any depth (the store's mark of a sealed secret). */
function holdsSealedKey(v: unknown, depth = 0): boolean {
  if (depth > 64 || typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some((x) => holdsSealedKey(x, depth + 1));
  return Object.hasOwn(v, '$sealed') || Object.values(v).some((x) => holdsSealedKey(x, depth + 1));
}

export function isSecretValue(v: unknown): v is { [SECRET_KEY]: string } {
  return isObject(v) && Object.keys(v).length === 1 && typeof v[SECRET_KEY] === 'string';
}

/**
 * Checks a values document (`PUT` body, or the `set` of a `PATCH`): keys are variable names the
 * templates use (`[A-Za-z_][A-Za-z0-9_.-]*`), values any JSON; `{"$secret": "..."}` marks a secret.
 */
export function parseValues(json: unknown, field = 'values'): Record<string, ValueInput> {
  if (!isObject(json)) throw new InvalidConfig([{ field, message: `must be a JSON object of "key": value, not ${describe(json)}` }]);
  const problems: ConfigProblem[] = [];
  const keys = Object.keys(json);
  if (keys.length > MAX_VALUES) throw new InvalidConfig([{ field, message: `has ${keys.length} keys; at most ${MAX_VALUES}` }]);
  const out: Record<string, ValueInput> = {};
  for (const k of keys) {
    const v = json[k];
    if (!KEY.test(k)) problems.push({ field: `${field}.${k.slice(0, 80)}`, message: 'is not a key the templates can use: a letter or `_`, then letters, digits, `_`, `.`, `-`' });
    else if (isObject(v) && Object.hasOwn(v, SECRET_KEY) && !isSecretValue(v)) problems.push({ field: `${field}.${k}`, message: 'a secret is {"$secret": "value"} (a string), and nothing else' });
    else if (holdsSealedKey(v)) problems.push({ field: `${field}.${k}`, message: "'$sealed' is the config center's own mark of a stored secret, and cannot be a key of a value" });
    else if (isSecretValue(v) && v[SECRET_KEY].includes('\0')) problems.push({ field: `${field}.${k}`, message: 'a secret may not hold a NUL character' });
    else Object.defineProperty(out, k, { value: v as ValueInput, enumerable: true, writable: true, configurable: true });
  }
  if (problems.length > 0) throw new InvalidConfig(problems);
  return out;
}

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createTwoFilesPatch } from 'diff';
import type { Clock, Timer } from '../core/clock.ts';
import { SecretMask } from '../lib/secret-mask.ts';
import { isSecretValue, parseEnvironment, parseService, parseValues, REDACTED, SECRET_KEY, type ConfigEnvironment, type ConfigService, type Json, type Rollout, type ValueInput } from './config-definitions.ts';
import { ConfigConflict, ConfigNotFound, InvalidConfig, RenderFailed } from './config-errors.ts';
import type { ConfigStore, GrayTarget, StoredGray, StoredRelease, StoredRollout, StoredValue, StoredValues } from './config-store.ts';
import type { ReleaseRepository } from './release-repository.ts';
import type { ConfigInstance, ServicesPort } from './services-port.ts';
import { renderFiles, type RenderedFile } from './render-files.ts';
import type { TemplateSource } from './template-source.ts';

/**
 * The config center (issue 13; docs/config.md): services whose templates live in git, values per
 * environment (and shared per environment), releases that render every file at one template
 * commit and one values version, immutable, each committed to an audit repository, diffed,
 * rolled back, and waited for by watchers.
 *
 *   PUT values ──► values version n (a draft until released)
 *   POST release ──► templates at the ref's commit + values ──render──► files
 *        same bytes as the last release ──► "unchanged" (no release, as the original did)
 *        else ──► release v+1 (stored, audit commit) ──► watchers of (service, env) told at once
 *   POST rollback {to} ──► release v+1 with the files of `to`, byte for byte
 *
 * Contracts: a release is all or nothing (stored in one write, after rendering succeeded); its
 * audit commit follows (watchers are told first), and one that a crash left unmade is made at the
 * next start;
 * releases of one (service, env) are made one at a time; secrets are sealed at rest, shown as
 * `{"$secret": "***"}`, and masked (`****`) in diffs and in the audit repository.
 */

/** Seals and opens secrets (lib's SecretBox). */
export interface ConfigSealer {
  seal(plaintext: string, context: string): string;
  open(sealed: string, context: string): string;
}

export interface ReleaseView {
  service: string;
  env: string;
  version: number;
  templateCommit: string;
  templateRef: string;
  valuesVersion: number;
  sharedVersion: number;
  change: StoredRelease['change'];
  rolledBackTo?: number;
  auditCommit?: string;
  files: { name: string; destination: string; mode: string; sha256: string }[];
  note: string;
  createdBy: string;
  createdAt: string;
  /** Its rollout, when it was rolled out through the services framework. */
  rollout?: { id: string; state: StoredRollout['state']; reason?: string };
  /** When it is (or was) a gray release: for whom, and how it ended. */
  gray?: GrayView;
}

export interface GrayView {
  id: string;
  state: StoredGray['state'];
  main: number;
  target: GrayTarget;
  size?: number;
  members: string[];
  rollout?: { id: string; state: StoredRollout['state']; reason?: string };
  reason?: string;
  by: string;
  startedAt: string;
  endedAt?: string;
  endedBy?: string;
}

/** What happens in the config center, as `/config/v1/events` streams it (one JSON object per event, with its `type`). */
export type ConfigEvent =
  | { type: 'release_created'; service: string; env: string; version: number; change: StoredRelease['change']; rolledBackTo?: number; gray?: true; by: string; at: string }
  | { type: 'rollout_started' | 'rollout_succeeded' | 'rollout_failed'; service: string; env: string; id: string; release: number; appId: string; reason?: string; at: string }
  | { type: 'gray_started' | 'gray_promoted' | 'gray_abandoned'; service: string; env: string; release: number; main: number; members: string[]; by: string; reason?: string; at: string };

export type ReleaseOutcome = { change: 'unchanged'; release: ReleaseView | undefined } | { change: StoredRelease['change']; release: ReleaseView };

const SHARED = '*';
const scopeOf = (service: string, env: string) => `${service}/${env}`;
const valueContext = (scope: string, key: string) => `config values ${scope} ${key}`;
const fileContext = (service: string, env: string, version: number, name: string) => `config release ${service}/${env}#${version} ${name}`;
/** How long a rollout has for every instance to run the release and be healthy, when neither the call nor the app says (services-port's rolloutDeadlineOf). */
export const DEFAULT_ROLLOUT_DEADLINE_MS = 5 * 60 * 1000;
/** How often a running rollout looks at the instances. */
const ROLLOUT_CHECK_MS = 500;
const rolloutId = (service: string, env: string, version: number) => `${service}.${env}.${version}`;
const grayId = (service: string, env: string, version: number) => `${service}.${env}.${version}.gray`;
/** How long a gray slot handed to a launch counts before its instance is seen (the plan may not have been carried out). */
const HANDED_MS = 60_000;
const ALIVE = new Set(['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING']);

/** How long a task's signed file URL is good for: its launch fetches it at once; a relaunch gets a new one. */
export const FETCH_URL_TTL_MS = 60 * 60 * 1000;
/** How long a watch is held at most (the long poll's ceiling). */
export const MAX_WATCH_MS = 60_000;

/** Releases are immutable: one view each, shared by every watcher it is handed to (a fan-out to 1,000 makes one). */
const views = new WeakMap<StoredRelease, ReleaseView>();

function viewOf(r: StoredRelease): ReleaseView {
  let v = views.get(r);
  if (v === undefined) {
    v = makeView(r);
    views.set(r, v);
  }
  return v;
}

function makeView(r: StoredRelease): ReleaseView {
  return {
    service: r.service,
    env: r.env,
    version: r.version,
    templateCommit: r.templateCommit,
    templateRef: r.templateRef,
    valuesVersion: r.valuesVersion,
    sharedVersion: r.sharedVersion,
    change: r.change,
    ...(r.rolledBackTo !== undefined ? { rolledBackTo: r.rolledBackTo } : {}),
    ...(r.auditCommit !== undefined ? { auditCommit: r.auditCommit } : {}),
    files: r.files.map((f) => ({ name: f.name, destination: f.destination, mode: f.mode, sha256: f.sha256 })),
    note: r.note,
    createdBy: r.createdBy,
    createdAt: new Date(r.createdAt).toISOString(),
  };
}

export class ConfigCenter {
  private readonly services = new Map<string, ConfigService>();
  private readonly environments = new Map<string, ConfigEnvironment>();
  /** Every values version by scope, oldest first. */
  private readonly values = new Map<string, StoredValues[]>();
  /** Every release by `service/env`, oldest first. */
  private readonly releases = new Map<string, StoredRelease[]>();
  /** Watchers of `service/env`, told when what it serves changes (a release, a gray release promoted or abandoned). */
  private readonly watchers = new Map<string, Set<() => void>>();
  /** Gray releases by id; at most one `active` per `service/env`. */
  private readonly grays = new Map<string, StoredGray>();
  /** Launches handed a gray release, by task id, not yet seen as instances (deliveryFor). */
  private readonly handed = new Map<string, { gray: string; at: number }>();
  /** The release under way per `service/env` (one at a time). */
  private readonly releasing = new Map<string, Promise<unknown>>();
  /** Every secret value seen, for the masks of diffs and of the audit copy. */
  private secretValues = new Set<string>();
  /** Rollouts by id; those running are followed (`follow`). */
  private readonly rollouts = new Map<string, StoredRollout>();
  private readonly rolloutTimers = new Map<string, Timer>();
  /** Rollouts being ended (their end is being stored). */
  private readonly endingRollouts = new Set<string>();
  private closing = false;
  private readonly eventListeners = new Set<(e: ConfigEvent) => void>();
  /** The values write under way per scope (writes of a scope are serialized). */
  private readonly valueWrites = new Map<string, Promise<void>>();

  private constructor(
    /**
     * `fetchKey`: the key of the signed URLs tasks' files are fetched with (`fetchUrl`); `server`:
     * where tasks reach the config center (their `CONFIG_SERVER`), known once the server listens.
     */
    private readonly o: { store: ConfigStore; sealer: ConfigSealer; templates: TemplateSource; audit: ReleaseRepository; clock: Clock; fetchKey: Buffer; server: () => string; services?: ServicesPort; log?: (line: string) => void },
  ) {}

  static async open(o: ConfigCenter['o']): Promise<ConfigCenter> {
    const c = new ConfigCenter(o);
    const loaded = await o.store.load();
    for (const s of loaded.services) c.services.set(s.name, s);
    for (const e of loaded.environments) c.environments.set(e.name, e);
    for (const v of loaded.values.sort((a, b) => a.version - b.version)) {
      c.listOf(c.values, v.scope).push(v);
      c.noteSecrets(v);
    }
    for (const r of loaded.releases.sort((a, b) => a.version - b.version)) c.listOf(c.releases, scopeOf(r.service, r.env)).push(r);
    for (const r of loaded.rollouts) c.rollouts.set(r.id, r);
    for (const g of loaded.grays) {
      // Its record is written before its release, both stamped with one time: a record whose release
      // is not there (a crash in between), or is another release of that version made since, is void.
      if (c.releases.get(scopeOf(g.service, g.env))?.some((r) => r.version === g.release && r.createdAt === g.startedAt) !== true) continue;
      c.grays.set(g.id, g);
    }
    try {
      await c.recoverAudit();
    } catch (e) {
      o.log?.(`config: the missing audit copies could not be made now (again at the next start): ${e instanceof Error ? e.message : String(e)}`);
    }
    return c;
  }

  private listOf<T>(m: Map<string, T[]>, key: string): T[] {
    let list = m.get(key);
    if (list === undefined) {
      list = [];
      m.set(key, list);
    }
    return list;
  }

  private noteSecrets(v: StoredValues): void {
    for (const [key, value] of Object.entries(v.values)) {
      if (isSealed(value)) this.secretValues.add(this.o.sealer.open(value.$sealed, valueContext(v.scope, key)));
    }
  }

  private mask(text: string): string {
    return new SecretMask([...this.secretValues].filter((s) => s.length > 0)).mask(text);
  }

  // --- services and environments ---------------------------------------------------------------

  listServices(): ConfigService[] {
    return [...this.services.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  service(name: string): ConfigService {
    const s = this.services.get(name);
    if (s === undefined) throw new ConfigNotFound(`no config service '${name.slice(0, 100)}'`);
    return s;
  }

  /**
   * The app the service's files go to in `env`: the one delivery's environment gives it (issue 14:
   * which app id a service has in an environment is defined once, by delivery's environment, for
   * the delivery service whose `configService` this is), else the service's own `apps[env]` (a
   * service delivery does not deploy).
   */
  appOf(service: ConfigService, env: string): string | undefined {
    return this.o.services?.appIdOf?.(service.name, env) ?? (Object.hasOwn(service.apps, env) ? service.apps[env] : undefined);
  }

  /** The service's apps per environment as they hold: its own `apps`, delivery's mapping over them. */
  appsOf(service: ConfigService): Record<string, string> {
    const out = new Map(Object.entries(service.apps));
    for (const env of this.environments.keys()) {
      const id = this.appOf(service, env);
      if (id !== undefined) out.set(env, id);
    }
    return Object.fromEntries(out);
  }

  async putService(name: string, body: unknown): Promise<{ service: ConfigService; created: boolean }> {
    const service = parseService(name, body);
    const unknownEnvs = Object.keys(service.apps).filter((e) => !this.environments.has(e));
    if (unknownEnvs.length > 0) throw new InvalidConfig(unknownEnvs.map((e) => ({ field: `apps.${e}`, message: `no environment '${e}' (PUT /config/v1/environments/${e} first)` })));
    // The app id is defined once: an entry that says otherwise than delivery's environment is refused.
    const contradicting = Object.entries(service.apps).flatMap(([env, id]) => {
      const delivered = this.o.services?.appIdOf?.(name, env);
      return delivered !== undefined && delivered !== id ? [{ field: `apps.${env}`, message: `delivery's environment gives service ${name} the app ${delivered} in ${env}: the app id is defined once, by delivery's environment (leave apps.${env} out)` }] : [];
    });
    if (contradicting.length > 0) throw new InvalidConfig(contradicting);
    await this.o.store.saveService(service);
    const created = !this.services.has(name);
    this.services.set(name, service);
    return { service, created };
  }

  async deleteService(name: string): Promise<void> {
    this.service(name);
    const running = [...this.rollouts.values()].find((r) => r.service === name && r.state === 'running');
    if (running !== undefined) throw new ConfigConflict(`the rollout ${running.id} of ${name} is under way: wait for it before deleting the service`);
    const gray = [...this.grays.values()].find((g) => g.service === name && g.state === 'active');
    if (gray !== undefined) throw new ConfigConflict(`the gray release ${gray.release} of ${name} in ${gray.env} is active: promote or abandon it before deleting the service`);
    await this.o.store.deleteService(name);
    this.services.delete(name);
  }

  listEnvironments(): ConfigEnvironment[] {
    return [...this.environments.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  environment(name: string): ConfigEnvironment {
    const e = this.environments.get(name);
    if (e === undefined) throw new ConfigNotFound(`no environment '${name.slice(0, 100)}'`);
    return e;
  }

  async putEnvironment(name: string, body: unknown): Promise<{ environment: ConfigEnvironment; created: boolean }> {
    const environment = parseEnvironment(name, body);
    await this.o.store.saveEnvironment(environment);
    const created = !this.environments.has(name);
    this.environments.set(name, environment);
    return { environment, created };
  }

  async deleteEnvironment(name: string): Promise<void> {
    this.environment(name);
    const used = [...this.releases.keys()].filter((k) => k.endsWith(`/${name}`) && (this.releases.get(k)?.length ?? 0) > 0);
    if (used.length > 0) throw new ConfigConflict(`environment '${name}' has releases (${used.slice(0, 5).join(', ')}): it is kept, as they are`);
    await this.o.store.deleteEnvironment(name);
    this.environments.delete(name);
  }

  // --- values -------------------------------------------------------------------------------------

  /** The scope of a service's values in an environment (`*` for the shared ones), both known. */
  private scope(service: string, env: string): string {
    if (service !== SHARED) this.service(service);
    this.environment(env);
    return scopeOf(service, env);
  }

  private latest(scope: string): StoredValues | undefined {
    const list = this.values.get(scope);
    return list?.[list.length - 1];
  }

  /** The values as shown: secrets `{"$secret": "***"}`; `version` 0 when there are none yet. */
  valuesOf(service: string, env: string, version?: number): { version: number; values: Record<string, Json>; createdBy?: string; createdAt?: string } {
    const scope = this.scope(service, env);
    const v = version === undefined ? this.latest(scope) : this.values.get(scope)?.find((x) => x.version === version);
    if (v === undefined) {
      if (version !== undefined) throw new ConfigNotFound(`no values version ${version} of ${scope}`);
      return { version: 0, values: {} };
    }
    return { version: v.version, values: redact(v.values), createdBy: v.createdBy, createdAt: new Date(v.createdAt).toISOString() };
  }

  valuesVersions(service: string, env: string): { version: number; createdBy: string; createdAt: string; keys: number }[] {
    const scope = this.scope(service, env);
    return (this.values.get(scope) ?? []).map((v) => ({ version: v.version, createdBy: v.createdBy, createdAt: new Date(v.createdAt).toISOString(), keys: Object.keys(v.values).length }));
  }

  /**
   * Replaces the values (`PUT`) or changes some (`PATCH {set?, unset?}`): a new version either
   * way. A secret given as `{"$secret": "***"}` keeps the stored one of that key.
   */
  async writeValues(service: string, env: string, body: unknown, o: { patch: boolean; by: string }): Promise<{ version: number; values: Record<string, Json> }> {
    const scope = this.scope(service, env);
    // One write of a scope at a time: each reads the version before it and makes the next.
    const prior = this.valueWrites.get(scope) ?? Promise.resolve();
    const run = prior.then(() => this.writeValuesNow(scope, body, o));
    const settled = run.then(() => undefined, () => undefined);
    this.valueWrites.set(scope, settled);
    void settled.then(() => {
      if (this.valueWrites.get(scope) === settled) this.valueWrites.delete(scope);
    });
    return run;
  }

  private async writeValuesNow(scope: string, body: unknown, o: { patch: boolean; by: string }): Promise<{ version: number; values: Record<string, Json> }> {
    const before = this.latest(scope);
    let next: Record<string, ValueInput>;
    if (o.patch) {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidConfig([{ field: '', message: 'a PATCH body is {"set": {...}, "unset": ["key", ...]}' }]);
      const b = body as Record<string, unknown>;
      const extra = Object.keys(b).filter((k) => k !== 'set' && k !== 'unset');
      if (extra.length > 0) throw new InvalidConfig(extra.map((k) => ({ field: k, message: 'unknown field (known: set, unset)' })));
      const set = b['set'] === undefined ? {} : parseValues(b['set'], 'set');
      const unset = b['unset'] ?? [];
      if (!Array.isArray(unset) || !unset.every((k): k is string => typeof k === 'string')) throw new InvalidConfig([{ field: 'unset', message: 'must be a list of keys' }]);
      next = {};
      for (const [k, v] of Object.entries(before?.values ?? {})) if (!unset.includes(k)) defineValue(next, k, isSealed(v) ? { [SECRET_KEY]: REDACTED } : v);
      for (const [k, v] of Object.entries(set)) defineValue(next, k, v);
    } else {
      next = parseValues(body);
    }
    const stored: Record<string, StoredValue> = {};
    const problems: { field: string; message: string }[] = [];
    for (const [k, v] of Object.entries(next)) {
      if (isSecretValue(v)) {
        if (v[SECRET_KEY] === REDACTED) {
          const kept = before?.values[k];
          if (kept === undefined || !isSealed(kept) || !Object.hasOwn(before!.values, k)) problems.push({ field: `values.${k}`, message: `is {"$secret": "***"}, which keeps the stored secret, but ${scope} has none stored under '${k}': give the value` });
          else defineValue(stored, k, kept);
        } else defineValue(stored, k, { $sealed: this.o.sealer.seal(v[SECRET_KEY], valueContext(scope, k)) });
      } else defineValue(stored, k, v);
    }
    if (problems.length > 0) throw new InvalidConfig(problems);
    const version: StoredValues = { scope, version: (before?.version ?? 0) + 1, values: stored, createdBy: o.by, createdAt: this.o.clock.now() };
    await this.o.store.appendValues(version);
    this.listOf(this.values, scope).push(version);
    this.noteSecrets(version);
    return { version: version.version, values: redact(stored) };
  }

  /** The values a release of `service` in `env` renders with: the shared ones, overridden by the service's; secrets opened. */
  private renderValues(service: string, env: string): { values: Record<string, Json>; valuesVersion: number; sharedVersion: number } {
    const shared = this.latest(scopeOf(SHARED, env));
    const own = this.latest(scopeOf(service, env));
    const values: Record<string, Json> = {};
    for (const v of [shared, own]) {
      if (v === undefined) continue;
      for (const [k, value] of Object.entries(v.values)) defineValue(values, k, isSealed(value) ? this.o.sealer.open(value.$sealed, valueContext(v.scope, k)) : value);
    }
    return { values, valuesVersion: own?.version ?? 0, sharedVersion: shared?.version ?? 0 };
  }

  // --- releases -----------------------------------------------------------------------------------

  listReleases(service: string, env: string): ReleaseView[] {
    this.scope(service, env);
    return (this.releases.get(scopeOf(service, env)) ?? []).map((r) => this.view(r));
  }

  /** A release as shown, with its rollout's state. */
  private view(r: StoredRelease): ReleaseView {
    const rollout = this.rollouts.get(rolloutId(r.service, r.env, r.version));
    const gray = this.grays.get(grayId(r.service, r.env, r.version));
    return { ...viewOf(r), ...(rollout !== undefined ? { rollout: rolloutSummary(rollout) } : {}), ...(gray !== undefined ? { gray: this.grayView(gray) } : {}) };
  }

  private grayView(g: StoredGray): GrayView {
    const rollout = this.rollouts.get(g.id);
    return {
      id: g.id,
      state: g.state,
      main: g.main,
      target: g.target,
      ...(g.size !== undefined ? { size: g.size } : {}),
      members: this.grayMembers(g),
      ...(rollout !== undefined ? { rollout: rolloutSummary(rollout) } : {}),
      ...(g.reason !== undefined ? { reason: g.reason } : {}),
      by: g.by,
      startedAt: new Date(g.startedAt).toISOString(),
      ...(g.endedAt !== undefined ? { endedAt: new Date(g.endedAt).toISOString() } : {}),
      ...(g.endedBy !== undefined ? { endedBy: g.endedBy } : {}),
    };
  }

  private stored(service: string, env: string, version: number): StoredRelease {
    this.scope(service, env);
    const r = this.releases.get(scopeOf(service, env))?.find((x) => x.version === version);
    if (r === undefined) throw new ConfigNotFound(`no release ${version} of ${service} in ${env}`);
    return r;
  }

  /**
   * The environment's release: the newest one that is not a gray release still active or
   * abandoned (a promoted one is the environment's from then on).
   */
  current(service: string, env: string): StoredRelease | undefined {
    const list = this.releases.get(scopeOf(service, env)) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const g = this.grays.get(grayId(service, env, list[i]!.version));
      if (g === undefined || g.state === 'promoted') return list[i];
    }
    return undefined;
  }

  /** The newest release, gray or not (the next one's version follows it). */
  private newest(service: string, env: string): StoredRelease | undefined {
    const list = this.releases.get(scopeOf(service, env));
    return list?.[list.length - 1];
  }

  /** The gray release of (`service`, `env`) under way, if any. */
  activeGray(service: string, env: string): StoredGray | undefined {
    for (const g of this.grays.values()) if (g.service === service && g.env === env && g.state === 'active') return g;
    return undefined;
  }

  /** While watchers are told (notify): the members of each gray release, worked out once for all of them. */
  private membersMemo: Map<string, Set<string>> | undefined;

  private memberSet(g: StoredGray): Set<string> {
    const memo = this.membersMemo?.get(g.id);
    if (memo !== undefined) return memo;
    const set = new Set(this.grayMembers(g));
    this.membersMemo?.set(g.id, set);
    return set;
  }

  /** The instances of a gray release: those chosen at its start, those handed it at launch, and those that run it. */
  private grayMembers(g: StoredGray, instances?: readonly ConfigInstance[]): string[] {
    if (g.state !== 'active' || g.appId === undefined) return [...g.members];
    const list = instances ?? this.o.services?.instancesOf(g.appId) ?? [];
    const now = this.o.clock.now();
    const out = new Set<string>();
    // Chosen members count while they run (hot: they take the gray release from their watchers); for
    // `restart` they are killed, and their replacements, started with the gray release, count instead.
    const chosen = g.rollout !== 'restart';
    for (const i of list) {
      if (!ALIVE.has(i.state) || i.killing === true) continue;
      if ((chosen && g.members.includes(i.taskId)) || (i.configRelease?.service === g.service && i.configRelease.env === g.env && i.configRelease.version === g.release)) out.add(i.taskId);
    }
    const seen = new Set(list.map((i) => i.taskId));
    for (const [taskId, h] of this.handed) {
      if (h.gray !== g.id) continue;
      if (seen.has(taskId) || now - h.at > HANDED_MS) this.handed.delete(taskId);
      else out.add(taskId);
    }
    return [...out].sort();
  }

  /** What an instance (`taskId`, if given) of (`service`, `env`) is to run: the gray release for its members, else the environment's. */
  targetFor(service: string, env: string, taskId?: string): StoredRelease | undefined {
    if (taskId !== undefined) {
      const g = this.activeGray(service, env);
      if (g !== undefined && this.memberSet(g).has(taskId)) return this.releases.get(scopeOf(service, env))?.find((r) => r.version === g.release);
    }
    return this.current(service, env);
  }

  release(service: string, env: string, version: number): ReleaseView {
    return this.view(this.stored(service, env, version));
  }

  /** A file of a release, as rendered (secrets in it included: for the task that runs with it). */
  fileContent(service: string, env: string, version: number, name: string): { content: string; sha256: string; mode: string; destination: string } {
    const r = this.stored(service, env, version);
    const f = r.files.find((x) => x.name === name);
    if (f === undefined) throw new ConfigNotFound(`release ${version} of ${service} in ${env} has no file '${name.slice(0, 100)}'`);
    return { content: this.o.sealer.open(f.sealed, fileContext(service, env, version, name)), sha256: f.sha256, mode: f.mode, destination: f.destination };
  }

  /** Renders what a release would be now, without making it. */
  private async renderNow(service: string, env: string): Promise<{ commit: string; files: RenderedFile[]; valuesVersion: number; sharedVersion: number }> {
    const s = this.service(service);
    this.environment(env);
    const commit = await this.o.templates.resolve(s.repo, s.ref);
    const texts: { file: (typeof s.files)[number]; text: string }[] = [];
    const missing: { field: string; message: string }[] = [];
    const read = await this.o.templates.readAll(s.repo, commit, s.files.map((f) => f.template));
    for (const file of s.files) {
      const text = read.get(file.template);
      if (text === undefined) missing.push({ field: `files.${file.name}`, message: `the template ${file.template} is not in ${s.repo} at ${s.ref} (${commit.slice(0, 12)})` });
      else texts.push({ file, text });
    }
    if (missing.length > 0) throw new RenderFailed(missing);
    const { values, valuesVersion, sharedVersion } = this.renderValues(service, env);
    const rendered = await renderFiles(texts, values);
    // A parser's message may quote the rendered text, secrets included: masked (best effort).
    if ('problems' in rendered) throw new RenderFailed(rendered.problems.map((p) => ({ field: p.field, message: this.mask(p.message) })));
    return { commit, files: rendered.files, valuesVersion, sharedVersion };
  }

  /** Whether `files` are what `last` holds, byte for byte and in place. */
  private sameFiles(files: readonly { name: string; destination: string; mode: string; sha256: string }[], last: StoredRelease | undefined): boolean {
    if (last === undefined || last.files.length !== files.length) return false;
    return files.every((f) => last.files.some((l) => l.name === f.name && l.destination === f.destination && l.mode === f.mode && l.sha256 === f.sha256));
  }

  /** What a release now would do: its change, and the diff against the current release. */
  async preview(service: string, env: string): Promise<{ change: ReleaseOutcome['change']; files: { name: string; patch: string }[] }> {
    const now = await this.renderNow(service, env);
    const last = this.current(service, env);
    const change = this.sameFiles(now.files, last) ? 'unchanged' : last === undefined ? 'first' : last.templateCommit !== now.commit ? 'template-changed' : 'values-changed';
    const before = new Map((last?.files ?? []).map((f) => [f.name, this.o.sealer.open(f.sealed, fileContext(service, env, last!.version, f.name))] as const));
    return { change, files: this.patches(before, new Map(now.files.map((f) => [f.name, f.content] as const)), last?.version ?? 0, 'draft') };
  }

  /**
   * Makes a release of `service` in `env` from the templates at the ref and the values now; or
   * answers `unchanged` (and makes none) when the files would be the current release's.
   */
  async makeRelease(service: string, env: string, o: { note?: string; by: string; rollout?: Rollout; deadlineMs?: number; gray?: GrayTarget }): Promise<ReleaseOutcome> {
    return this.oneAtATime(service, env, async () => {
      this.refuseDuringRollout(service, env);
      const last = this.current(service, env);
      const mode = o.rollout ?? this.service(service).rollout;
      const active = this.activeGray(service, env);
      if (active !== undefined) throw new ConfigConflict(`the gray release ${active.release} of ${service} in ${env} is active: promote or abandon it before another release`);
      const gray = o.gray !== undefined ? this.planGray(service, env, o.gray, last) : undefined;
      const now = await this.renderNow(service, env);
      if (this.sameFiles(now.files, last)) return { change: 'unchanged' as const, release: last !== undefined ? this.view(last) : undefined };
      const change = last === undefined ? 'first' : last.templateCommit !== now.commit ? 'template-changed' : 'values-changed';
      const release = await this.store({ service, env, files: now.files, templateCommit: now.commit, valuesVersion: now.valuesVersion, sharedVersion: now.sharedVersion, change, note: o.note ?? '', by: o.by, ...(gray !== undefined ? { gray: { ...gray, rollout: mode } } : {}) });
      if (gray !== undefined) await this.rollOutGray(this.grays.get(grayId(service, env, release.version))!, o.deadlineMs);
      else await this.maybeRollOut(release, last?.version, mode, o.deadlineMs, false);
      return { change, release: this.view(release) };
    });
  }

  /**
   * Who a gray release would be for, now: checked (a release before it, no other gray release,
   * the named instances exist), its members chosen (the oldest task ids first for a count).
   */
  private planGray(service: string, env: string, target: GrayTarget, main: StoredRelease | undefined): Omit<StoredGray, 'id' | 'release' | 'rollout' | 'state' | 'by' | 'startedAt'> {
    if (main === undefined) throw new ConfigConflict(`${service} has no release in ${env} yet: a gray release is tried beside one (make a release first)`);
    const active = this.activeGray(service, env);
    if (active !== undefined) throw new ConfigConflict(`the gray release ${active.release} of ${service} in ${env} is active: promote or abandon it first`);
    const appId = this.appOf(this.service(service), env);
    const wantedAll = appId !== undefined ? this.o.services?.wantedInstances(appId) : undefined;
    if (appId === undefined || wantedAll === undefined) throw new ConfigConflict(`a gray release is for some instances of the app ${service} names in ${env}, and ${appId === undefined ? 'it names none (apps.' + env + ')' : `there is no app ${appId}`}`);
    const alive = this.o.services!.instancesOf(appId).filter((i) => ALIVE.has(i.state));
    const ids = alive.map((i) => i.taskId).sort();
    let members: string[];
    let size: number | undefined;
    if (target.taskIds !== undefined) {
      const unknown = target.taskIds.filter((t) => !ids.includes(t));
      if (unknown.length > 0) throw new InvalidConfig(unknown.slice(0, 10).map((t) => ({ field: 'gray.taskIds', message: `${t.slice(0, 200)} is not a running instance of ${appId ?? `the app of ${service} in ${env} (none is linked)`}` })));
      members = [...new Set(target.taskIds)].sort();
      size = members.length;
    } else if (target.agents !== undefined) {
      const want = target.agents;
      members = alive.filter((i) => agentMatches(want, i.host, i.attributes ?? {})).map((i) => i.taskId).sort();
    } else {
      size = target.instances ?? Math.ceil((wantedAll * (target.percent ?? 0)) / 100);
      members = ids.slice(0, size);
    }
    // Some, not none and not all: else it is a release (or nothing), and would block the environment's.
    if (size !== undefined && (size < 1 || size >= wantedAll)) {
      throw new ConfigConflict(`a gray release of ${size} instance(s) of ${appId}, which runs ${wantedAll}, ${size < 1 ? 'is for none' : 'is for all of them'}: a gray release is for some (1 to ${Math.max(wantedAll - 1, 0)}); release to all without gray`);
    }
    return { service, env, main: main.version, ...(appId !== undefined ? { appId } : {}), target, ...(size !== undefined ? { size } : {}), members };
  }

  /** With `restart`: the members are killed, and their replacements start with the gray release (deliveryFor); followed like a rollout. */
  private async rollOutGray(g: StoredGray, deadlineMs: number | undefined): Promise<void> {
    this.emit({ type: 'gray_started', service: g.service, env: g.env, release: g.release, main: g.main, members: [...g.members], by: g.by, at: new Date(g.startedAt).toISOString() });
    this.notify(g.service, g.env);
    if (g.rollout !== 'restart' || g.appId === undefined || g.members.length === 0 || this.o.services?.wantedInstances(g.appId) === undefined) return;
    const now = this.o.clock.now();
    const rollout: StoredRollout = {
      id: g.id,
      service: g.service,
      env: g.env,
      release: g.release,
      appId: g.appId,
      previous: g.main,
      isRollback: false,
      gray: true,
      state: 'running',
      startedAt: now,
      deadline: now + (deadlineMs ?? this.o.services.rolloutDeadlineMs(g.appId) ?? DEFAULT_ROLLOUT_DEADLINE_MS),
    };
    try {
      await this.o.services.killTasks(g.appId, g.members);
    } catch (e) {
      rollout.state = 'failed';
      rollout.reason = `the members of the gray release could not be restarted: ${e instanceof Error ? e.message : String(e)}`;
      rollout.endedAt = now;
    }
    await this.o.store.saveRollout(rollout);
    this.rollouts.set(rollout.id, rollout);
    this.emit({ type: rollout.state === 'running' ? 'rollout_started' : 'rollout_failed', service: rollout.service, env: rollout.env, id: rollout.id, release: rollout.release, appId: g.appId, ...(rollout.reason !== undefined ? { reason: rollout.reason } : {}), at: new Date(now).toISOString() });
    if (rollout.state === 'running') this.scheduleCheck(rollout, ROLLOUT_CHECK_MS);
  }

  /**
   * Completes the gray release `version`: it becomes the environment's release, rolled out to
   * every instance as `rollout` says (the gray release's own mode by default).
   */
  async promote(service: string, env: string, version: number, o: { by: string; rollout?: Rollout; deadlineMs?: number }): Promise<ReleaseView> {
    return this.oneAtATime(service, env, async () => {
      const g = this.grayOf(service, env, version);
      await this.endOwnRollout(g, 'succeeded', `ended by the promotion of the gray release (by ${o.by})`);
      this.stillActive(g);
      this.refuseDuringRollout(service, env);
      await this.endGray(g, 'promoted', o.by, undefined);
      await this.maybeRollOut(this.stored(service, env, version), g.main, o.rollout ?? g.rollout, o.deadlineMs, false);
      return this.view(this.stored(service, env, version));
    });
  }

  /** Ends the gray release `version`: its members go back to the environment's release (restarted when `rollout` is restart). */
  async abandon(service: string, env: string, version: number, o: { by: string; rollout?: Rollout; reason?: string }): Promise<ReleaseView> {
    return this.oneAtATime(service, env, async () => {
      const g = this.grayOf(service, env, version);
      await this.endOwnRollout(g, 'failed', `the gray release was abandoned (by ${o.by})${o.reason !== undefined ? `: ${o.reason}` : ''}`);
      this.stillActive(g);
      this.refuseDuringRollout(service, env);
      await this.abandonNow(g, o.by, o.rollout ?? g.rollout, o.reason);
      return this.view(this.stored(service, env, version));
    });
  }

  /** Ends the gray release's own rollout, if it runs: a promotion or an abandon decides before its deadline. */
  private async endOwnRollout(g: StoredGray, state: 'succeeded' | 'failed', reason: string): Promise<void> {
    const r = this.rollouts.get(g.id);
    if (r?.state !== 'running') return;
    this.rolloutTimers.get(r.id)?.cancel();
    this.rolloutTimers.delete(r.id);
    await this.endRollout(r, state, reason);
  }

  /** 409 when the gray release ended meanwhile (its rollout's deadline abandoned it while we waited). */
  private stillActive(g: StoredGray): void {
    if (g.state !== 'active') throw new ConfigConflict(`the gray release ${g.release} of ${g.service} in ${g.env} was ${g.state} meanwhile${g.reason !== undefined ? ` (${g.reason})` : ''}`);
  }

  private grayOf(service: string, env: string, version: number): StoredGray {
    this.stored(service, env, version);
    const g = this.grays.get(grayId(service, env, version));
    if (g === undefined) throw new ConfigConflict(`release ${version} of ${service} in ${env} is not a gray release`);
    if (g.state !== 'active') throw new ConfigConflict(`the gray release ${version} of ${service} in ${env} was ${g.state} already`);
    return g;
  }

  private async abandonNow(g: StoredGray, by: string, mode: Rollout, reason: string | undefined): Promise<void> {
    const members = this.grayMembers(g);
    await this.endGray(g, 'abandoned', by, reason);
    if (mode === 'restart' && g.appId !== undefined && members.length > 0 && this.o.services?.wantedInstances(g.appId) !== undefined) {
      // Killed and replaced: their replacements start with the environment's release.
      await this.o.services.killTasks(g.appId, members);
    }
  }

  private async endGray(g: StoredGray, state: 'promoted' | 'abandoned', by: string, reason: string | undefined): Promise<void> {
    const members = this.grayMembers(g);
    const ended: StoredGray = { ...g, members, state, endedAt: this.o.clock.now(), endedBy: by, ...(reason !== undefined ? { reason } : {}) };
    await this.o.store.saveGray(ended);
    Object.assign(g, ended);
    for (const [taskId, h] of this.handed) if (h.gray === g.id) this.handed.delete(taskId);
    this.o.log?.(`config: gray release ${g.release} of ${g.service} in ${g.env}: ${state} by ${by}${reason !== undefined ? ` (${reason})` : ''}`);
    this.emit({ type: state === 'promoted' ? 'gray_promoted' : 'gray_abandoned', service: g.service, env: g.env, release: g.release, main: g.main, members, by, ...(reason !== undefined ? { reason } : {}), at: new Date(ended.endedAt!).toISOString() });
    this.notify(g.service, g.env);
  }

  /**
   * 409 while a rollout of (`service`, `env`) runs: one change of an environment at a time; and
   * while delivery promotes the linked app (a promotion and a config rollout of one app take turns).
   */
  private refuseDuringRollout(service: string, env: string): void {
    for (const r of this.rollouts.values()) {
      if (r.service === service && r.env === env && r.state === 'running') throw new ConfigConflict(`the rollout ${r.id} of release ${r.release} of ${service} in ${env} is under way: wait for it (GET .../rollouts/${r.id}) before another release`);
    }
    const known = this.services.get(service);
    const appId = known !== undefined ? this.appOf(known, env) : undefined;
    const promotion = appId !== undefined ? this.o.services?.promotionOf?.(appId) : undefined;
    if (promotion !== undefined) throw new ConfigConflict(`delivery's promotion ${promotion} of app ${appId} is under way: a config release waits for it to end`);
  }

  /** The rollout under way on the app, if any (delivery asks before a promotion of it). */
  runningRolloutOf(appId: string): string | undefined {
    for (const r of this.rollouts.values()) if (r.appId === appId && r.state === 'running') return r.id;
    return undefined;
  }

  /** A new release with the files of release `to`, byte for byte. */
  async rollback(service: string, env: string, to: number, o: { note?: string; by: string; rollout?: Rollout; deadlineMs?: number }): Promise<ReleaseView> {
    return this.oneAtATime(service, env, async () => {
      this.refuseDuringRollout(service, env);
      const active = this.activeGray(service, env);
      if (active !== undefined) throw new ConfigConflict(`the gray release ${active.release} of ${service} in ${env} is active: promote or abandon it before a rollback`);
      const last = this.current(service, env);
      const target = this.stored(service, env, to);
      const files = target.files.map((f) => ({ name: f.name, destination: f.destination, mode: f.mode, sha256: f.sha256, content: this.o.sealer.open(f.sealed, fileContext(service, env, to, f.name)) }));
      const release = await this.store({ service, env, files, templateCommit: target.templateCommit, valuesVersion: target.valuesVersion, sharedVersion: target.sharedVersion, change: 'rollback', rolledBackTo: to, note: o.note ?? `rollback to release ${to}`, by: o.by });
      await this.maybeRollOut(release, last?.version, o.rollout ?? this.service(service).rollout, o.deadlineMs, false);
      return this.view(release);
    });
  }

  // --- rollouts through the services framework ------------------------------------------------

  /** Rolls `release` out when asked (`restart`) and there is a linked app to restart. */
  private async maybeRollOut(release: StoredRelease, previous: number | undefined, mode: Rollout, deadlineMs: number | undefined, isRollback: boolean): Promise<void> {
    const appId = this.appOf(this.service(release.service), release.env);
    if (mode !== 'restart' || appId === undefined || this.o.services?.wantedInstances(appId) === undefined) return;
    const now = this.o.clock.now();
    const rollout: StoredRollout = {
      id: rolloutId(release.service, release.env, release.version),
      service: release.service,
      env: release.env,
      release: release.version,
      appId,
      ...(previous !== undefined ? { previous } : {}),
      isRollback,
      state: 'running',
      startedAt: now,
      deadline: now + (deadlineMs ?? this.o.services!.rolloutDeadlineMs(appId) ?? DEFAULT_ROLLOUT_DEADLINE_MS),
    };
    try {
      rollout.deploymentId = (await this.o.services!.restart(appId, { force: isRollback })).deploymentId;
    } catch (e) {
      // Nothing was restarted: the release is current, its instances still run the one before.
      rollout.state = 'failed';
      rollout.reason = `the restart of ${appId} was refused: ${e instanceof Error ? e.message : String(e)}`;
      rollout.endedAt = now;
    }
    await this.o.store.saveRollout(rollout);
    this.rollouts.set(rollout.id, rollout);
    this.o.log?.(`config: rollout ${rollout.id} of ${appId}: ${rollout.state}${rollout.reason !== undefined ? ` (${rollout.reason})` : ''}`);
    this.emit({ type: rollout.state === 'running' ? 'rollout_started' : 'rollout_failed', service: rollout.service, env: rollout.env, id: rollout.id, release: rollout.release, appId, ...(rollout.reason !== undefined ? { reason: rollout.reason } : {}), at: new Date(now).toISOString() });
    if (rollout.state === 'running') this.scheduleCheck(rollout, ROLLOUT_CHECK_MS);
  }

  /**
   * Goes on with the rollouts under way when the center stopped, from where the instances are;
   * called once the services framework is there (`server` starts the config center first).
   */
  resumeRollouts(): void {
    for (const r of this.rollouts.values()) if (r.state === 'running' && !this.rolloutTimers.has(r.id)) this.scheduleCheck(r, 0);
  }

  private scheduleCheck(r: StoredRollout, ms: number): void {
    if (this.closing) return;
    this.rolloutTimers.set(
      r.id,
      this.o.clock.setTimer(ms, () => {
        this.rolloutTimers.delete(r.id);
        void this.checkRollout(r.id).catch((e: unknown) => {
          this.o.log?.(`config: rollout ${r.id}: ${e instanceof Error ? e.message : String(e)}; checked again`);
          const again = this.rollouts.get(r.id);
          if (again?.state === 'running') this.scheduleCheck(again, ROLLOUT_CHECK_MS);
        });
      }),
    );
  }

  /** Where a running rollout stands: how many instances run the release and are healthy, of how many. */
  rolloutProgress(r: StoredRollout): { onRelease: number; wanted: number; deploymentRunning: boolean; waitingFor?: string } {
    const services = this.o.services;
    const gray = r.gray === true ? this.grays.get(r.id) : undefined;
    const wanted = gray !== undefined ? (gray.size ?? gray.members.length) : (services?.wantedInstances(r.appId) ?? 0);
    const onRelease = (services?.instancesOf(r.appId) ?? []).filter((i) => i.configRelease?.service === r.service && i.configRelease.env === r.env && i.configRelease.version === r.release && i.state === 'TASK_RUNNING' && i.healthy !== false).length;
    const deploymentRunning = r.deploymentId !== undefined && services !== undefined && services.deploymentRunning(r.deploymentId);
    const waitingFor = r.state !== 'running' ? undefined : onRelease < wanted ? `${wanted - onRelease} of ${wanted} instance(s) to run release ${r.release} and be healthy` : deploymentRunning ? `the deployment ${r.deploymentId} to finish` : undefined;
    return { onRelease, wanted, deploymentRunning, ...(waitingFor !== undefined ? { waitingFor } : {}) };
  }

  private async checkRollout(id: string): Promise<void> {
    const r = this.rollouts.get(id);
    if (r === undefined || r.state !== 'running') return;
    const p = this.rolloutProgress(r);
    const now = this.o.clock.now();
    if (this.o.services?.wantedInstances(r.appId) === undefined) {
      // A gray release of an app that is gone ends with it: else a new app of that id would start on it.
      const g = r.gray === true ? this.grays.get(r.id) : undefined;
      if (g?.state === 'active') await this.endGray(g, 'abandoned', 'slipway-config', `the app ${r.appId} is gone`);
      await this.endRollout(r, 'failed', `the app ${r.appId} is gone`);
      return;
    }
    if (!p.deploymentRunning && p.onRelease >= p.wanted) {
      await this.endRollout(r, 'succeeded', undefined);
      return;
    }
    if (now < r.deadline) {
      this.scheduleCheck(r, ROLLOUT_CHECK_MS);
      return;
    }
    const reason = `after ${Math.round((now - r.startedAt) / 1000)} s, ${p.onRelease} of ${p.wanted} instance(s) run release ${r.release} and are healthy${p.deploymentRunning ? `; the deployment ${r.deploymentId} is still under way` : ''}`;
    if (r.gray === true) {
      // A gray release that fails goes no further: abandoned, its members back on the environment's release.
      const g = this.grays.get(r.id);
      let problem: string | undefined;
      if (g?.state === 'active') {
        try {
          await this.abandonNow(g, 'slipway-config', 'restart', `its rollout failed: ${reason}`);
        } catch (e) {
          problem = e instanceof Error ? e.message : String(e);
        }
      }
      await this.endRollout(r, 'failed', problem === undefined ? `${reason}; the gray release is abandoned` : `${reason}; abandoning the gray release failed: ${problem}`);
      return;
    }
    if (r.isRollback || r.previous === undefined) {
      await this.endRollout(r, 'failed', reason);
      return;
    }
    // Back to the release before, rolled out the same way (a failure of that one goes no further
    // back). The rollout stays `running` until the way back is made, so that no release of the
    // environment comes in between (refuseDuringRollout); then it is `failed`, naming both.
    let backId: string | undefined;
    let backProblem: string | undefined;
    try {
      const target = this.stored(r.service, r.env, r.previous);
      const files = target.files.map((f) => ({ name: f.name, destination: f.destination, mode: f.mode, sha256: f.sha256, content: this.o.sealer.open(f.sealed, fileContext(r.service, r.env, target.version, f.name)) }));
      const back = await this.store({ service: r.service, env: r.env, files, templateCommit: target.templateCommit, valuesVersion: target.valuesVersion, sharedVersion: target.sharedVersion, change: 'rollback', rolledBackTo: target.version, note: `automatic rollback: the rollout of release ${r.release} failed: ${reason}`, by: 'slipway-config' });
      await this.maybeRollOut(back, r.release, 'restart', r.deadline - r.startedAt, true);
      backId = this.rollouts.get(rolloutId(back.service, back.env, back.version))?.id;
    } catch (e) {
      backProblem = e instanceof Error ? e.message : String(e);
    }
    // Named before it ends: whoever sees it failed sees its way back too.
    if (backId !== undefined) r.rolledBackBy = backId;
    await this.endRollout(r, 'failed', backProblem === undefined ? reason : `${reason}; the way back to release ${r.previous} failed: ${backProblem}`);
  }

  private async endRollout(r: StoredRollout, state: 'succeeded' | 'failed', reason: string | undefined): Promise<void> {
    // Ended once: a gray release's rollout may be ended by a promotion or an abandon while its check runs.
    if (r.state !== 'running' || this.endingRollouts.has(r.id)) return;
    this.endingRollouts.add(r.id);
    try {
      await this.endRolloutNow(r, state, reason);
    } finally {
      this.endingRollouts.delete(r.id);
    }
  }

  private async endRolloutNow(r: StoredRollout, state: 'succeeded' | 'failed', reason: string | undefined): Promise<void> {
    const ended: StoredRollout = { ...r, state, endedAt: this.o.clock.now(), ...(reason !== undefined ? { reason } : {}) };
    await this.o.store.saveRollout(ended);
    Object.assign(r, ended);
    this.o.log?.(`config: rollout ${r.id} of ${r.appId}: ${state}${reason !== undefined ? ` (${reason})` : ''}`);
    this.emit({ type: state === 'succeeded' ? 'rollout_succeeded' : 'rollout_failed', service: r.service, env: r.env, id: r.id, release: r.release, appId: r.appId, ...(reason !== undefined ? { reason } : {}), at: new Date(ended.endedAt!).toISOString() });
  }

  rollout(service: string, env: string, id: string): StoredRollout & { progress: ReturnType<ConfigCenter['rolloutProgress']> } {
    this.scope(service, env);
    const r = this.rollouts.get(id);
    if (r === undefined || r.service !== service || r.env !== env) throw new ConfigNotFound(`no rollout '${id.slice(0, 100)}' of ${service} in ${env}`);
    return { ...r, progress: this.rolloutProgress(r) };
  }

  listRollouts(service: string, env: string): StoredRollout[] {
    this.scope(service, env);
    return [...this.rollouts.values()].filter((r) => r.service === service && r.env === env).sort((a, b) => a.startedAt - b.startedAt);
  }

  private async oneAtATime<T>(service: string, env: string, run: () => Promise<T>): Promise<T> {
    const key = scopeOf(service, env);
    if (this.releasing.has(key)) throw new ConfigConflict(`a release of ${service} in ${env} is under way: try again when it is done`);
    const p = run();
    this.releasing.set(key, p);
    try {
      return await p;
    } finally {
      this.releasing.delete(key);
    }
  }

  private async store(o: { service: string; env: string; files: readonly { name: string; destination: string; mode: string; sha256: string; content: string }[]; templateCommit: string; valuesVersion: number; sharedVersion: number; change: StoredRelease['change']; rolledBackTo?: number; note: string; by: string; gray?: Omit<StoredGray, 'id' | 'release' | 'state' | 'by' | 'startedAt'> }): Promise<StoredRelease> {
    const s = this.service(o.service);
    const version = (this.newest(o.service, o.env)?.version ?? 0) + 1;
    const at = this.o.clock.now();
    const release: StoredRelease = {
      service: o.service,
      env: o.env,
      version,
      templateCommit: o.templateCommit,
      templateRef: s.ref,
      valuesVersion: o.valuesVersion,
      sharedVersion: o.sharedVersion,
      files: o.files.map((f) => ({ name: f.name, destination: f.destination, mode: f.mode, sha256: f.sha256, sealed: this.o.sealer.seal(f.content, fileContext(o.service, o.env, version, f.name)) })),
      change: o.change,
      ...(o.rolledBackTo !== undefined ? { rolledBackTo: o.rolledBackTo } : {}),
      note: o.note,
      createdBy: o.by,
      createdAt: at,
    };
    // A gray release's record first (one without its release is dropped at load), then the release
    // in one write: it is there whole, or not at all; in memory both at once, before watchers hear.
    const gray: StoredGray | undefined = o.gray !== undefined ? { ...o.gray, id: grayId(o.service, o.env, version), release: version, state: 'active', by: o.by, startedAt: at } : undefined;
    if (gray !== undefined) await this.o.store.saveGray(gray);
    await this.o.store.appendRelease(release);
    if (gray !== undefined) this.grays.set(gray.id, gray);
    this.listOf(this.releases, scopeOf(o.service, o.env)).push(release);
    this.notify(o.service, o.env);
    this.o.log?.(`config: ${o.service} in ${o.env}: release ${version} (${o.change}) by ${o.by}`);
    this.emit({ type: 'release_created', service: o.service, env: o.env, version, change: o.change, ...(o.rolledBackTo !== undefined ? { rolledBackTo: o.rolledBackTo } : {}), ...(gray !== undefined ? { gray: true } : {}), by: o.by, at: new Date(at).toISOString() });
    // The audit copy after the watchers are told (a git commit is tens of ms they need not wait
    // for); the release's answer waits for it. A release whose copy was not made (a crash in
    // between, git failing) is committed at the next start (recoverAudit).
    try {
      await this.commitAudit(release);
    } catch (e) {
      this.o.log?.(`config: the audit copy of ${o.service}/${o.env} release ${version} failed (made again at the next start): ${e instanceof Error ? e.message : String(e)}`);
    }
    return release;
  }

  /** Commits `release` to the audit repository and records the commit on it. */
  private async commitAudit(release: StoredRelease): Promise<void> {
    const s = this.services.get(release.service);
    const files = release.files.map((f) => ({ name: f.name, content: this.mask(this.o.sealer.open(f.sealed, fileContext(release.service, release.env, release.version, f.name))) }));
    const auditCommit = await this.o.audit.commit({
      env: release.env,
      service: release.service,
      version: release.version,
      files,
      author: release.createdBy,
      message: `${release.service} ${release.env} release ${release.version} (${release.change}${release.rolledBackTo !== undefined ? ` to ${release.rolledBackTo}` : ''})\n\ntemplates ${s?.repo ?? '(service deleted)'} ${release.templateRef} ${release.templateCommit}\nvalues v${release.valuesVersion}, shared v${release.sharedVersion}${release.note !== '' ? `\n\n${release.note}` : ''}\n`,
      at: release.createdAt,
    });
    await this.o.store.recordAuditCommit(release.service, release.env, release.version, auditCommit);
    release.auditCommit = auditCommit;
    views.delete(release);
  }

  /**
   * Makes the audit copies that a crash (or git failing) left unmade, oldest first. A crash after
   * a copy's commit and before it was recorded leaves that release with two commits: at least one
   * commit per release, never a release without its copy.
   */
  private async recoverAudit(): Promise<void> {
    const missing = [...this.releases.values()].flat().filter((r) => r.auditCommit === undefined).sort((a, b) => a.createdAt - b.createdAt || a.version - b.version);
    for (const r of missing) {
      await this.commitAudit(r);
      this.o.log?.(`config: made the missing audit copy of ${r.service}/${r.env} release ${r.version}`);
    }
  }

  /** Unified diffs, per file, from release `a` to release `b` (secrets masked). */
  diff(service: string, env: string, a: number, b: number): { from: number; to: number; files: { name: string; patch: string }[] } {
    const ra = this.stored(service, env, a);
    const rb = this.stored(service, env, b);
    const open = (r: StoredRelease) => new Map(r.files.map((f) => [f.name, this.o.sealer.open(f.sealed, fileContext(service, env, r.version, f.name))] as const));
    return { from: a, to: b, files: this.patches(open(ra), open(rb), a, b) };
  }

  private patches(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>, from: number | string, to: number | string): { name: string; patch: string }[] {
    const names = [...new Set([...before.keys(), ...after.keys()])].sort();
    return names.flatMap((name) => {
      const x = this.mask(before.get(name) ?? '');
      const y = this.mask(after.get(name) ?? '');
      if (x === y && before.has(name) === after.has(name)) return [];
      return [{ name, patch: createTwoFilesPatch(`${name}@${from}`, `${name}@${to}`, x, y) }];
    });
  }

  // --- delivery: the files of a release, and watchers ----------------------------------------

  /** The files of the current release (or of `version`, or of what instance `taskId` is to run), with their digests. */
  files(service: string, env: string, version?: number, taskId?: string): { release: ReleaseView } {
    this.scope(service, env);
    const r = version !== undefined ? this.stored(service, env, version) : this.targetFor(service, env, taskId);
    if (r === undefined) throw new ConfigNotFound(`${service} has no release in ${env} yet`);
    return { release: viewOf(r) };
  }

  /** Tells the watchers of (`service`, `env`) that what it serves may have changed. */
  private notify(service: string, env: string): void {
    this.membersMemo = new Map();
    try {
      for (const w of [...(this.watchers.get(scopeOf(service, env)) ?? [])]) {
        try {
          w();
        } catch (e) {
          this.o.log?.(`config: a watcher of ${service}/${env} failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    } finally {
      this.membersMemo = undefined;
    }
  }

  /**
   * Whether `r`, what a watcher is to run now, is news to one that has `since`: newer; or, for an
   * instance's watcher (`taskId`), any other release (a gray release abandoned sends its members
   * back to an older one).
   */
  private isNews(r: StoredRelease | undefined, since: number, taskId: string | undefined): r is StoredRelease {
    return r !== undefined && (r.version > since || (taskId !== undefined && r.version !== since));
  }

  /**
   * Resolves with what (`service`, `env`) serves (instance `taskId`, if given: a gray release's
   * member gets it) once it is news to `since` (isNews): at once if it is, else when it changes,
   * or undefined after `timeoutMs` (at most MAX_WATCH_MS) or on `signal`.
   */
  watch(service: string, env: string, since: number, timeoutMs: number, signal?: AbortSignal, taskId?: string): Promise<ReleaseView | undefined> {
    this.scope(service, env);
    const now = this.targetFor(service, env, taskId);
    if (this.isNews(now, since, taskId)) return Promise.resolve(viewOf(now));
    const key = scopeOf(service, env);
    if (signal?.aborted === true) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const set = this.watchers.get(key) ?? new Set();
      this.watchers.set(key, set);
      const done = (r: StoredRelease | undefined) => {
        set.delete(on);
        if (set.size === 0) this.watchers.delete(key);
        timer.cancel();
        signal?.removeEventListener('abort', abort);
        resolve(r !== undefined ? viewOf(r) : undefined);
      };
      const on = () => {
        const r = this.targetFor(service, env, taskId);
        if (this.isNews(r, since, taskId)) done(r);
      };
      const abort = () => done(undefined);
      const timer = this.o.clock.setTimer(Math.min(Math.max(timeoutMs, 0), MAX_WATCH_MS), () => done(undefined));
      set.add(on);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  /**
   * What an instance of (`service`, `env`) starts with (the services framework's ConfigPort): the
   * current release's files (or, while a gray release is active, its files for the instances it
   * is for: `placement`), each with a signed URL the agent's fetcher uses without a token,
   * good for FETCH_URL_TTL_MS. Undefined when there is no release (or no such service).
   */
  deliveryFor(service: string, env: string, appId: string, placement?: { taskId: string; hostname: string; attributes: Readonly<Record<string, string>> }): { service: string; env: string; server: string; release: number; files: { name: string; destination: string; mode: string; sha256: string; url: string }[] } | undefined {
    // Only to the app the service names in that environment: an app's labels alone link nothing.
    const known = this.services.get(service);
    if (known === undefined || this.appOf(known, env) !== appId) return undefined;
    let r = this.environments.has(env) ? this.current(service, env) : undefined;
    if (r === undefined) return undefined;
    const g = placement !== undefined ? this.activeGray(service, env) : undefined;
    if (g !== undefined && placement !== undefined && g.appId === appId) {
      // A gray release by agents goes to every instance on a matching agent; by count, while
      // fewer than its size run it (those handed it in this pass counted, not yet instances).
      const gets = g.target.agents !== undefined ? agentMatches(g.target.agents, placement.hostname, placement.attributes) : this.grayMembers(g).length < (g.size ?? 0);
      if (gets) {
        this.handed.set(placement.taskId, { gray: g.id, at: this.o.clock.now() });
        r = this.stored(service, env, g.release);
      }
    }
    const expires = this.o.clock.now() + FETCH_URL_TTL_MS;
    return {
      service,
      env,
      server: this.o.server(),
      release: r.version,
      files: r.files.map((f) => ({ name: f.name, destination: f.destination, mode: f.mode, sha256: f.sha256, url: this.fetchUrl(service, env, r.version, f.name, expires) })),
    };
  }

  /** `/config/v1/fetch/...?expires=&sig=`: one file of one release, until `expires` (ms). */
  fetchUrl(service: string, env: string, version: number, name: string, expires: number): string {
    const path = `/config/v1/fetch/${encodeURIComponent(service)}/${encodeURIComponent(env)}/${version}/${encodeURIComponent(name)}`;
    return `${path}?expires=${expires}&sig=${this.signature(service, env, version, name, expires)}`;
  }

  /** Whether a fetch URL's signature is this center's and has not expired. */
  fetchAllowed(service: string, env: string, version: number, name: string, expires: number, sig: string): boolean {
    if (!Number.isSafeInteger(expires) || expires < this.o.clock.now()) return false;
    const want = Buffer.from(this.signature(service, env, version, name, expires), 'hex');
    const got = Buffer.from(/^[0-9a-f]{64}$/.test(sig) ? sig : '', 'hex');
    return got.length === want.length && timingSafeEqual(got, want);
  }

  private signature(service: string, env: string, version: number, name: string, expires: number): string {
    return createHmac('sha256', this.o.fetchKey).update(`${service}\n${env}\n${version}\n${name}\n${expires}`).digest('hex');
  }

  /**
   * The instances of the app linked to `service` in `env` (the service's `apps`), each with the
   * release it started with and whether it is stale: a newer release exists, or an edit is
   * pending (values or shared values newer than the current release's, or the ref now at
   * another commit than the release's).
   */
  async instances(service: string, env: string): Promise<{ appId: string | undefined; release: number | undefined; gray?: { release: number; members: string[] }; pending: { values: boolean; shared: boolean; templates: boolean }; instances: (ConfigInstance & { release: number | undefined; target?: number; gray?: true; stale: boolean; why: string[] })[] }> {
    const s = this.service(service);
    this.environment(env);
    const current = this.current(service, env);
    // Pending edits: since the newest release (a gray release rendered them too).
    const newest = this.newest(service, env);
    const own = this.latest(scopeOf(service, env))?.version ?? 0;
    const shared = this.latest(scopeOf(SHARED, env))?.version ?? 0;
    let templates = false;
    if (newest !== undefined) {
      try {
        templates = (await this.o.templates.resolve(s.repo, s.ref)) !== newest.templateCommit;
      } catch {
        templates = false; // The repository cannot be read now: nothing known to be pending there.
      }
    }
    const pending = { values: newest !== undefined && own > newest.valuesVersion, shared: newest !== undefined && shared > newest.sharedVersion, templates };
    const appId = this.appOf(s, env);
    const list = appId !== undefined ? (this.o.services?.instancesOf(appId) ?? []) : [];
    const gray = this.activeGray(service, env);
    const members = new Set(gray !== undefined ? this.grayMembers(gray, list) : []);
    return {
      appId,
      release: current?.version,
      ...(gray !== undefined ? { gray: { release: gray.release, members: [...members] } } : {}),
      pending,
      instances: list.map((i) => {
        const release = i.configRelease !== undefined && i.configRelease.service === service && i.configRelease.env === env ? i.configRelease.version : undefined;
        const target = gray !== undefined && members.has(i.taskId) ? gray.release : current?.version;
        const why: string[] = [];
        if (target !== undefined && release !== target) why.push(release === undefined ? 'started without a release of this service' : `started with release ${release}; it is to run release ${target}${target === gray?.release ? ' (gray)' : ''}`);
        if (pending.values) why.push('values edited since the release');
        if (pending.shared) why.push('shared values edited since the release');
        if (pending.templates) why.push(`templates changed at ${s.ref} since the release`);
        return { ...i, release, ...(target !== undefined ? { target } : {}), ...(gray !== undefined && members.has(i.taskId) ? { gray: true } : {}), stale: why.length > 0, why };
      }),
    };
  }

  /**
   * Calls `fn` with what (`service`, `env`) serves (to instance `taskId`, if given) each time it may
   * have changed from now on (the same release may come again: the caller keeps what it sent),
   * until the returned function is called.
   */
  follow(service: string, env: string, fn: (r: ReleaseView) => void, taskId?: string): () => void {
    this.scope(service, env);
    const key = scopeOf(service, env);
    const set = this.watchers.get(key) ?? new Set();
    this.watchers.set(key, set);
    const on = () => {
      const r = this.targetFor(service, env, taskId);
      if (r !== undefined) fn(viewOf(r));
    };
    set.add(on);
    return () => {
      set.delete(on);
      if (set.size === 0) this.watchers.delete(key);
    };
  }

  /** Calls `fn` with every event from now on, until the returned function is called. */
  onEvent(fn: (e: ConfigEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  private emit(e: ConfigEvent): void {
    for (const fn of [...this.eventListeners]) {
      try {
        fn(e);
      } catch (err) {
        this.o.log?.(`config: an event listener failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** Watchers waiting now (for metrics and tests). */
  watching(): number {
    let n = 0;
    for (const s of this.watchers.values()) n += s.size;
    return n;
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.rolloutTimers.values()) t.cancel();
    this.rolloutTimers.clear();
    await Promise.allSettled([...this.releasing.values()]);
    await this.o.store.close();
  }
}

function rolloutSummary(r: StoredRollout): { id: string; state: StoredRollout['state']; reason?: string } {
  return { id: r.id, state: r.state, ...(r.reason !== undefined ? { reason: r.reason } : {}) };
}

/** Whether an agent (its hostname and attributes) has every pair of `want` (`hostname` matches the hostname unless the agent has an attribute of that name). */
function agentMatches(want: Readonly<Record<string, string>>, hostname: string, attributes: Readonly<Record<string, string>>): boolean {
  return Object.entries(want).every(([k, v]) => (Object.hasOwn(attributes, k) ? attributes[k] : k === 'hostname' ? hostname : undefined) === v);
}

function isSealed(v: StoredValue | undefined): v is { $sealed: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as Record<string, unknown>)['$sealed'] === 'string';
}

function redact(values: Record<string, StoredValue>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(values)) defineValue(out, k, isSealed(v) ? { [SECRET_KEY]: REDACTED } : v);
  return out;
}

/** Sets an own property (a key named `__proto__` is a value like any other). */
function defineValue<V>(target: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

import { randomBytes } from 'node:crypto';
import type { Clock, Timer } from '../core/clock.ts';
import { appIdIn, freezeAt, parseDeliveryEnvironment, parseDeliveryRelease, parseDeliveryService, type DeliveryEnvironment, type DeliveryRelease, type DeliveryService, type JsonObject } from './delivery-definitions.ts';
import { DeliveryConflict, DeliveryNotFound } from './delivery-errors.ts';
import { ENDED_STATES, type DeliveryStore, type PromotionState, type StoredPromotion } from './delivery-store.ts';
import { doraFigures, type DoraFigures } from './dora-figures.ts';
import type { DeliveryServicesPort } from './services-port.ts';

/** What happens in delivery, as `/deliver/v1/events` streams it (one JSON object per event, with its `type`). */
export type DeliveryEvent =
  | { type: 'release_created'; service: string; version: string; by: string; at: string }
  | { type: 'promotion_created' | 'promotion_waiting_approval' | 'promotion_approved' | 'promotion_started' | 'promotion_rolling_back' | 'promotion_succeeded' | 'promotion_failed' | 'promotion_rejected'; service: string; env: string; id: string; release: string; by: string; reason?: string; at: string }
  | { type: 'gate_passed'; service: string; env: string; release: string; gate: 'auto'; from: string; at: string };

export interface DeliveryCenterOptions {
  store: DeliveryStore;
  services: DeliveryServicesPort;
  clock: Clock;
  log?: (line: string) => void;
}

/** How often running promotions and auto gates are looked at. */
export const CHECK_MS = 500;
/** How long a rollback may take before the promotion ends `failed` all the same (it says so). */
const ROLLBACK_DEADLINE_MS = 10 * 60 * 1000;
/** The principal of automatic promotions. */
export const AUTOMATION = 'delivery';

const iso = (t: number) => new Date(t).toISOString();

/**
 * Delivery (issue 14; docs/delivery.md): services, environments, releases and promotions.
 *
 * A promotion, as states:
 *
 *   POST promotions {release, to}
 *     env/release unknown ─► 404; frozen, another one in (service, env), a config rollout ─► 409
 *     gate manual ─► waiting-approval ──approve (not the release's author)──┐   reject ─► rejected
 *                                                                          ▼
 *     preflight (POST /v2/plan) ── does not fit ─► 409 with the reasons (no promotion started)
 *     deploying: one Marathon deployment of the environment's app with the release's image by digest
 *        │ deployment done, every instance on it and healthy               │ deadline passed
 *        ▼                                                                  ▼
 *     succeeded                                 rolling-back: the app as it was before (force), or removed
 *                                                    │ that deployment done (or its own deadline)
 *                                                    ▼
 *                                                 failed (reason)
 *
 * Every state is stored before it is acted on; `resume` (at start) goes on from where each is. A
 * rollback (`POST .../rollback`) is a promotion of the release that ran before, with no approval
 * and through a freeze (it is the way out); after it, auto gates of that environment hold back
 * until a release newer than the one rolled back from comes. An auto gate promotes a release
 * once per environment: one that failed there is not tried again by itself.
 */
export class DeliveryCenter {
  private readonly services = new Map<string, DeliveryService>();
  private readonly environments = new Map<string, DeliveryEnvironment>();
  /** service -> version -> release. */
  private readonly releases = new Map<string, Map<string, DeliveryRelease>>();
  private readonly promotions = new Map<string, StoredPromotion>();
  private readonly eventListeners = new Set<(e: DeliveryEvent) => void>();
  /** One change of a promotion at a time (the check loop and a request may meet). */
  private readonly busy = new Set<string>();
  /** `service/env` of promotions being asked for (between the checks and their first write). */
  private readonly asking = new Set<string>();
  private timer: Timer | undefined;
  private closing = false;

  private constructor(private readonly o: DeliveryCenterOptions) {}

  static async open(o: DeliveryCenterOptions): Promise<DeliveryCenter> {
    const center = new DeliveryCenter(o);
    const state = await o.store.load();
    for (const s of state.services) center.services.set(s.name, s);
    for (const e of state.environments) center.environments.set(e.name, e);
    for (const r of state.releases) center.releasesOf(r.service).set(r.version, r);
    for (const p of state.promotions) center.promotions.set(p.id, p);
    return center;
  }

  /** Starts the check loop: resumes the promotions under way and runs the auto gates. Called once the services framework is there. */
  resume(): void {
    if (this.timer === undefined && !this.closing) this.schedule(0);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.o.store.close();
  }

  onEvent(fn: (e: DeliveryEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  // ---- services and environments -------------------------------------------------------------

  listServices(): DeliveryService[] {
    return [...this.services.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  service(name: string): DeliveryService {
    const s = this.services.get(name);
    if (s === undefined) throw new DeliveryNotFound(`no delivery service ${name}`);
    return s;
  }

  async putService(name: string, body: unknown): Promise<{ service: DeliveryService; created: boolean }> {
    const service = parseDeliveryService(name, body);
    await this.o.store.saveService(service);
    const created = !this.services.has(name);
    this.services.set(name, service);
    return { service, created };
  }

  async deleteService(name: string): Promise<void> {
    this.service(name);
    const running = this.runningIn(name);
    if (running !== undefined) throw new DeliveryConflict(`service ${name} has promotion ${running.id} to ${running.env} under way (${running.state}); wait for it or reject it`);
    await this.o.store.deleteService(name);
    this.services.delete(name);
  }

  listEnvironments(): DeliveryEnvironment[] {
    return [...this.environments.values()].sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
  }

  environment(name: string): DeliveryEnvironment {
    const e = this.environments.get(name);
    if (e === undefined) throw new DeliveryNotFound(`no environment ${name} (environments: ${this.listEnvironments().map((x) => x.name).join(', ') || 'none'})`);
    return e;
  }

  async putEnvironment(name: string, body: unknown): Promise<{ environment: DeliveryEnvironment; created: boolean }> {
    const environment = parseDeliveryEnvironment(name, body);
    await this.o.store.saveEnvironment(environment);
    const created = !this.environments.has(name);
    this.environments.set(name, environment);
    return { environment, created };
  }

  async deleteEnvironment(name: string): Promise<void> {
    this.environment(name);
    const running = [...this.promotions.values()].find((p) => p.env === name && !ENDED_STATES.has(p.state));
    if (running !== undefined) throw new DeliveryConflict(`environment ${name} has promotion ${running.id} of ${running.service} under way (${running.state}); wait for it or reject it`);
    await this.o.store.deleteEnvironment(name);
    this.environments.delete(name);
  }

  /** The app id of the service in the environment (the one mapping; docs/delivery.md). */
  appIdOf(service: string, env: string): string | undefined {
    const e = this.environments.get(env);
    return e !== undefined ? appIdIn(e, service) : undefined;
  }

  /**
   * The app id the config center's service `configService` has in its environment `configEnv`:
   * the app of the delivery service whose `configService` it is, in the delivery environment
   * whose `configEnv` it is (the first of each, in name and then environment order), if any. The
   * config center takes this over its own `apps` (one mapping, defined by the environments).
   */
  appIdForConfig(configService: string, configEnv: string): string | undefined {
    const services = this.listServices().filter((s) => s.configService === configService);
    if (services.length === 0) return undefined;
    const env = this.listEnvironments().find((e) => e.configEnv === configEnv);
    return env !== undefined ? appIdIn(env, services[0]!.name) : undefined;
  }

  /**
   * The app ids an environment document would give each service (for the access check of its
   * PUT); none when the document is invalid (the PUT refuses it, with its fields).
   */
  appIdsUnder(envName: string, body: unknown): { service: DeliveryService; appId: string }[] {
    let env: DeliveryEnvironment;
    try {
      env = parseDeliveryEnvironment(envName, body);
    } catch {
      return [];
    }
    return this.listServices().map((service) => ({ service, appId: appIdIn(env, service.name) }));
  }

  // ---- releases -------------------------------------------------------------------------------

  private releasesOf(service: string): Map<string, DeliveryRelease> {
    let m = this.releases.get(service);
    if (m === undefined) {
      m = new Map();
      this.releases.set(service, m);
    }
    return m;
  }

  listReleases(service: string): DeliveryRelease[] {
    this.service(service);
    return [...this.releasesOf(service).values()].sort((a, b) => b.createdAt - a.createdAt);
  }

  release(service: string, version: string): DeliveryRelease {
    this.service(service);
    const r = this.releasesOf(service).get(version);
    if (r === undefined) throw new DeliveryNotFound(`service ${service} has no release ${version}`);
    return r;
  }

  async createRelease(service: string, body: unknown, by: string): Promise<DeliveryRelease> {
    const s = this.service(service);
    const release = parseDeliveryRelease(service, body, by, this.o.clock.now());
    if (this.releasesOf(service).has(release.version)) throw new DeliveryConflict(`service ${service} has a release ${release.version} already: a release is immutable (tag a new version)`);
    if (s.image !== undefined && !release.images.some((i) => repositoryOf(i.name) === s.image)) {
      throw new DeliveryConflict(`service ${service} runs image ${s.image}, and release ${release.version} has ${release.images.map((i) => repositoryOf(i.name)).join(', ')}`);
    }
    if (!(await this.o.store.appendRelease(release))) throw new DeliveryConflict(`service ${service} has a release ${release.version} already: a release is immutable (tag a new version)`);
    this.releasesOf(service).set(release.version, release);
    this.emit({ type: 'release_created', service, version: release.version, by, at: iso(release.createdAt) });
    return release;
  }

  /** Where each of the service's releases runs: the release of the last succeeded promotion per environment. */
  currentByEnvironment(service: string): Record<string, { release: string; promotion: string; since: string } | null> {
    const out: Record<string, { release: string; promotion: string; since: string } | null> = {};
    for (const e of this.listEnvironments()) {
      const p = this.lastSucceeded(service, e.name);
      out[e.name] = p !== undefined ? { release: p.release, promotion: p.id, since: iso(p.healthyAt ?? p.endedAt ?? p.createdAt) } : null;
    }
    return out;
  }

  // ---- promotions -----------------------------------------------------------------------------

  /** The promotion deploying the app now, if any (the config center asks before a release of it). */
  promotionOnApp(appId: string): string | undefined {
    for (const p of this.promotions.values()) if (p.appId === appId && (p.state === 'deploying' || p.state === 'rolling-back')) return p.id;
    return undefined;
  }

  promotionOrUndefined(service: string, id: string): StoredPromotion | undefined {
    const p = this.promotions.get(id);
    return p?.service === service ? p : undefined;
  }

  /** Where a promotion under way stands (instances on it and healthy, of how many; what it waits for). */
  progressOf(p: StoredPromotion): JsonObject | undefined {
    if (p.state === 'waiting-approval') return { waitingFor: `an approval (POST .../promotions/${p.id}/approve) by someone allowed to approve ${p.service}/${p.env} who did not make release ${p.release}` };
    if (p.state !== 'deploying' && p.state !== 'rolling-back') return undefined;
    const progress = this.o.services.progress(p.appId, p.configVersion ?? '');
    if (progress === undefined) return { waitingFor: `app ${p.appId} to exist` };
    const running = p.deploymentId !== undefined && this.o.services.deploymentRunning(p.deploymentId);
    const waitingFor =
      p.state === 'rolling-back'
        ? `the rollback deployment ${p.rollbackDeploymentId ?? '(being asked for)'} to end`
        : progress.healthyOnVersion < progress.wanted
          ? `${progress.wanted - progress.healthyOnVersion} instance(s) to run ${p.release} and be healthy (deployment ${p.deploymentId ?? 'being asked for'}; GET /v2/queue says why an instance waits)`
          : running || progress.old > 0
            ? `deployment ${p.deploymentId ?? ''} to stop the ${progress.old} old instance(s)`
            : 'its next check';
    return { ...progress, deploymentRunning: running, waitingFor };
  }

  promotion(service: string, id: string): StoredPromotion {
    const p = this.promotions.get(id);
    if (p === undefined || p.service !== service) throw new DeliveryNotFound(`service ${service} has no promotion ${id}`);
    return p;
  }

  /** The service's promotions, newest first, of one environment or all. */
  history(service: string, env?: string): StoredPromotion[] {
    this.service(service);
    return [...this.promotions.values()].filter((p) => p.service === service && (env === undefined || p.env === env)).sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
  }

  /** The four DORA figures of the service, from its history in its last environment (production). */
  figures(service: string, windowDays = 30): DoraFigures & { environment: string | null } {
    this.service(service);
    const prod = this.listEnvironments().at(-1);
    const now = this.o.clock.now();
    const promotions = prod !== undefined ? this.history(service, prod.name) : [];
    const commitTimes = new Map([...this.releasesOf(service).values()].map((r) => [r.version, r.createdAt]));
    return { environment: prod?.name ?? null, ...doraFigures(promotions, { now, windowDays, releasedAt: (v) => commitTimes.get(v) }) };
  }

  /**
   * Asks for `release` of `service` in `to`. Answers the promotion: waiting for an approval (a
   * manual gate), or deploying. See the class comment for what is refused.
   */
  async promote(service: string, body: { release: string; to: string; deadlineSeconds?: number }, by: string, o: { auto?: boolean; isRollback?: boolean } = {}): Promise<StoredPromotion> {
    const s = this.service(service);
    const env = this.environment(body.to);
    const release = this.release(service, body.release);
    const now = this.o.clock.now();
    const freeze = freezeAt(env, now);
    if (freeze !== undefined && o.isRollback !== true) throw new DeliveryConflict(`environment ${env.name} is frozen until ${iso(freeze.to)}${freeze.reason !== '' ? `: ${freeze.reason}` : ''}`);
    const running = this.runningIn(service, env.name);
    if (running !== undefined) throw new DeliveryConflict(`promotion ${running.id} of ${service} ${running.release} to ${env.name} is under way (${running.state}); one at a time per environment and service`);
    const slot = `${service}/${env.name}`;
    if (this.asking.has(slot)) throw new DeliveryConflict(`a promotion of ${service} to ${env.name} is being started now; one at a time per environment and service`);
    this.asking.add(slot);
    try {
      return await this.promoteChecked(s, env, release, by, { ...o, ...(body.deadlineSeconds !== undefined ? { deadlineMs: body.deadlineSeconds * 1000 } : {}) });
    } finally {
      this.asking.delete(slot);
    }
  }

  private async promoteChecked(s: DeliveryService, env: DeliveryEnvironment, release: DeliveryRelease, by: string, o: { auto?: boolean; isRollback?: boolean; deadlineMs?: number }): Promise<StoredPromotion> {
    const service = s.name;
    const now = this.o.clock.now();
    const appId = appIdIn(env, service);
    const rollout = this.o.services.configRolloutOf?.(appId);
    if (rollout !== undefined) throw new DeliveryConflict(`config rollout ${rollout} of app ${appId} is under way; a promotion waits for it to end`);
    const image = imageOf(s, release);
    const p: StoredPromotion = {
      id: `${service}.${env.name}.${now.toString(36)}${randomBytes(3).toString('hex')}`,
      service,
      env: env.name,
      release: release.version,
      appId,
      image,
      state: env.gate.kind === 'manual' && o.isRollback !== true ? 'waiting-approval' : 'deploying',
      by,
      ...(o.auto === true ? { auto: true } : {}),
      ...(o.isRollback === true ? { isRollback: true } : {}),
      ...(o.deadlineMs !== undefined ? { askedDeadlineMs: o.deadlineMs } : {}),
      createdAt: now,
    };
    if (p.state === 'waiting-approval') {
      await this.save(p);
      this.emit(this.event('promotion_waiting_approval', p, by));
      return p;
    }
    return this.start(p, by);
  }

  /** Approves a promotion waiting at a manual gate, and starts it (the preflight may still say 409). */
  async approve(service: string, id: string, by: string): Promise<StoredPromotion> {
    const p = this.promotion(service, id);
    if (p.state !== 'waiting-approval') throw new DeliveryConflict(`promotion ${id} is ${p.state}, not waiting for an approval`);
    const release = this.release(service, p.release);
    if (release.createdBy === by) throw new DeliveryConflict(`${by} made release ${release.version}: someone else approves its promotion to ${p.env}`);
    const env = this.environment(p.env);
    const freeze = freezeAt(env, this.o.clock.now());
    if (freeze !== undefined) throw new DeliveryConflict(`environment ${env.name} is frozen until ${iso(freeze.to)}${freeze.reason !== '' ? `: ${freeze.reason}` : ''}`);
    return this.withLock(id, async () => {
      const started = await this.start({ ...p, approvedBy: by }, by);
      this.emit(this.event('promotion_approved', started, by));
      return started;
    });
  }

  /** Turns down a promotion waiting at a manual gate. */
  async reject(service: string, id: string, by: string, reason: string): Promise<StoredPromotion> {
    const p = this.promotion(service, id);
    if (p.state !== 'waiting-approval') throw new DeliveryConflict(`promotion ${id} is ${p.state}, not waiting for an approval`);
    const ended: StoredPromotion = { ...p, state: 'rejected', reason: reason !== '' ? `rejected by ${by}: ${reason}` : `rejected by ${by}`, endedAt: this.o.clock.now() };
    await this.save(ended);
    this.emit(this.event('promotion_rejected', ended, by));
    return ended;
  }

  /**
   * Promotes the release that ran in `env` before the current one (same digest, the environment's
   * config): the way back by hand. No approval, and through a freeze.
   */
  async rollback(service: string, envName: string, by: string, to?: string): Promise<StoredPromotion> {
    this.service(service);
    this.environment(envName);
    const current = this.lastSucceeded(service, envName);
    if (current === undefined) throw new DeliveryConflict(`${service} has run no release in ${envName}: nothing to roll back`);
    let target: string | undefined = to;
    if (target === undefined) {
      const before = this.history(service, envName).find((p) => p.state === 'succeeded' && p.release !== current.release && p.createdAt < current.createdAt);
      if (before === undefined) throw new DeliveryConflict(`${service} ran no release in ${envName} before ${current.release}: nothing to roll back to`);
      target = before.release;
    } else if (target === current.release) throw new DeliveryConflict(`${service} runs ${target} in ${envName} already`);
    return this.promote(service, { release: target, to: envName }, by, { isRollback: true });
  }

  // ---- the way a promotion goes ------------------------------------------------------------------

  /** Preflight, then the deployment (state `deploying` stored first). */
  private async start(p: StoredPromotion, by: string): Promise<StoredPromotion> {
    const s = this.service(p.service);
    const env = this.environment(p.env);
    const app = this.appFor(s, env, p);
    const preflight = await this.o.services.preflight(app);
    if (!preflight.fits) throw new DeliveryConflict(`app ${p.appId} cannot be placed now: the promotion of ${p.service} ${p.release} to ${p.env} was not started`, preflight.reasons);
    const now = this.o.clock.now();
    const previous = this.lastSucceeded(p.service, p.env);
    const previousApp = this.o.services.appDefinition(p.appId);
    const deadlineMs = p.askedDeadlineMs ?? (env.deadlineSeconds !== undefined ? env.deadlineSeconds * 1000 : this.o.services.deadlineMs(app));
    const configRelease = s.configService !== undefined ? this.o.services.configReleaseOf?.(s.configService, env.configEnv) : undefined;
    const deploying: StoredPromotion = {
      ...p,
      state: 'deploying',
      startedAt: now,
      deadlineMs,
      deadline: now + deadlineMs,
      ...(previous !== undefined ? { previousRelease: previous.release } : {}),
      ...(previousApp !== undefined ? { previousApp } : {}),
      ...(configRelease !== undefined ? { configRelease } : {}),
    };
    await this.save(deploying);
    if (p.state !== 'waiting-approval') this.emit(this.event('promotion_created', deploying, by));
    const deployed = await this.deployFor(deploying, app);
    this.emit(this.event('promotion_started', deployed, by));
    return deployed;
  }

  /** Deploys the promotion's app and stores the deployment; a refusal ends the promotion `failed`. */
  private async deployFor(p: StoredPromotion, app: JsonObject): Promise<StoredPromotion> {
    let d: { deploymentId: string; configVersion: string };
    try {
      d = await this.o.services.deploy(app, { force: false });
    } catch (e) {
      const failed: StoredPromotion = { ...p, state: 'failed', reason: `the services framework refused the deployment: ${e instanceof Error ? e.message : String(e)}`, endedAt: this.o.clock.now() };
      await this.save(failed);
      this.emit(this.event('promotion_failed', failed, p.by));
      throw e;
    }
    const deploying: StoredPromotion = { ...p, deploymentId: d.deploymentId, configVersion: d.configVersion };
    await this.save(deploying);
    return deploying;
  }

  /** The environment's app with the release's image by digest, linked to the service's config. */
  private appFor(s: DeliveryService, env: DeliveryEnvironment, p: StoredPromotion): JsonObject {
    const app = structuredClone(s.app);
    app['id'] = p.appId;
    const container = app['container'] as JsonObject;
    container['docker'] = { ...(container['docker'] as JsonObject), image: p.image };
    const labels = typeof app['labels'] === 'object' && app['labels'] !== null ? { ...(app['labels'] as JsonObject) } : {};
    labels['SLIPWAY_DELIVERY_SERVICE'] = s.name;
    labels['SLIPWAY_DELIVERY_RELEASE'] = p.release;
    if (s.configService !== undefined) {
      labels['SLIPWAY_CONFIG_SERVICE'] = s.configService;
      labels['SLIPWAY_CONFIG_ENV'] = env.configEnv;
    }
    app['labels'] = labels;
    return app;
  }

  private schedule(ms: number): void {
    if (this.closing) return;
    this.timer = this.o.clock.setTimer(ms, () => {
      this.timer = undefined;
      void this.check()
        .catch((e: unknown) => this.o.log?.(`delivery: ${e instanceof Error ? e.message : String(e)}; checked again`))
        .finally(() => this.schedule(CHECK_MS));
    });
  }

  /** One look at every promotion under way, then at the auto gates. */
  async check(): Promise<void> {
    for (const p of [...this.promotions.values()]) {
      if (p.state !== 'deploying' && p.state !== 'rolling-back') continue;
      await this.withLock(p.id, () => this.step(p.id)).catch((e: unknown) => this.o.log?.(`delivery: promotion ${p.id}: ${e instanceof Error ? e.message : String(e)}`));
    }
    await this.autoGates();
  }

  private async step(id: string): Promise<void> {
    const p = this.promotions.get(id);
    if (p === undefined || this.closing) return;
    const now = this.o.clock.now();
    if (p.state === 'deploying') {
      if (p.deploymentId === undefined) {
        // Stored before its deployment was asked for (a crash between): ask again, the same definition.
        const s = this.service(p.service);
        await this.deployFor(p, this.appFor(s, this.environment(p.env), p)).catch(() => undefined);
        return;
      }
      const progress = this.o.services.progress(p.appId, p.configVersion ?? '');
      const done = progress !== undefined && !this.o.services.deploymentRunning(p.deploymentId) && progress.old === 0 && progress.healthyOnVersion >= progress.wanted;
      if (done) {
        const ok: StoredPromotion = { ...p, state: 'succeeded', healthyAt: now, endedAt: now };
        await this.save(ok);
        this.emit(this.event('promotion_succeeded', ok, p.by));
        return;
      }
      if (now < (p.deadline ?? Infinity)) return;
      const where = progress === undefined ? `app ${p.appId} is gone` : `${progress.healthyOnVersion} of ${progress.wanted} instance(s) run ${p.release} and are healthy, ${progress.old} old one(s) left`;
      const reason = `after ${Math.round((p.deadlineMs ?? 0) / 1000)} s, ${where}; rolled back to ${p.previousRelease ?? (p.previousApp !== undefined ? 'the app as it was' : 'no app (removed)')}`;
      const back: StoredPromotion = { ...p, state: 'rolling-back', reason, deadline: now + ROLLBACK_DEADLINE_MS };
      await this.save(back);
      this.emit(this.event('promotion_rolling_back', back, p.by));
      if (p.previousApp !== undefined) {
        const d = await this.o.services.deploy(p.previousApp, { force: true });
        await this.save({ ...back, rollbackDeploymentId: d.deploymentId });
      } else {
        await this.o.services.remove(p.appId);
        await this.end(back, back.reason ?? '');
      }
      return;
    }
    // rolling-back
    if (p.rollbackDeploymentId === undefined) {
      // Stored before the way back was asked for: ask again.
      if (p.previousApp !== undefined) {
        const d = await this.o.services.deploy(p.previousApp, { force: true });
        await this.save({ ...p, rollbackDeploymentId: d.deploymentId });
      } else {
        await this.o.services.remove(p.appId);
        await this.end(p, p.reason ?? '');
      }
      return;
    }
    if (!this.o.services.deploymentRunning(p.rollbackDeploymentId)) await this.end(p, p.reason ?? 'rolled back');
    else if (now >= (p.deadline ?? Infinity)) await this.end(p, `${p.reason ?? ''}; the rollback deployment ${p.rollbackDeploymentId} did not end within ${ROLLBACK_DEADLINE_MS / 60_000} min (it goes on in the services framework)`);
  }

  private async end(p: StoredPromotion, reason: string): Promise<void> {
    const failed: StoredPromotion = { ...p, state: 'failed', reason, endedAt: this.o.clock.now() };
    await this.save(failed);
    this.emit(this.event('promotion_failed', failed, p.by));
  }

  /**
   * Auto gates: a release healthy in the previous environment for `healthyMinutes` (and still
   * what runs there) is promoted, once per environment, unless one is under way, the environment
   * is frozen, or a rollback there holds automation back (until a newer release).
   */
  private async autoGates(): Promise<void> {
    const envs = this.listEnvironments();
    const now = this.o.clock.now();
    for (const env of envs) {
      if (env.gate.kind !== 'auto' || freezeAt(env, now) !== undefined) continue;
      const previous = envs.filter((e) => e.order < env.order).at(-1);
      if (previous === undefined) continue;
      for (const service of this.services.keys()) {
        const there = this.lastSucceeded(service, previous.name);
        if (there === undefined || now - (there.healthyAt ?? now) < env.gate.healthyMinutes * 60_000) continue;
        if (this.runningIn(service, previous.name) !== undefined || this.runningIn(service, env.name) !== undefined) continue;
        const mine = this.history(service, env.name);
        if (mine.some((p) => p.release === there.release)) continue;
        const held = mine.find((p) => p.state === 'succeeded' && p.isRollback === true);
        const candidate = this.releasesOf(service).get(there.release);
        if (held !== undefined && mine[0] === held) {
          const from = this.releasesOf(service).get(mine.find((p) => p.createdAt < held.createdAt && p.state === 'succeeded')?.release ?? '');
          if (candidate === undefined || from === undefined || candidate.createdAt <= from.createdAt) continue;
        }
        try {
          const p = await this.promote(service, { release: there.release, to: env.name }, AUTOMATION, { auto: true });
          this.emit({ type: 'gate_passed', service, env: env.name, release: p.release, gate: 'auto', from: previous.name, at: iso(now) });
        } catch (e) {
          this.o.log?.(`delivery: auto promotion of ${service} ${there.release} to ${env.name}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
  }

  // ---- helpers --------------------------------------------------------------------------------

  private lastSucceeded(service: string, env: string): StoredPromotion | undefined {
    let best: StoredPromotion | undefined;
    for (const p of this.promotions.values()) if (p.service === service && p.env === env && p.state === 'succeeded' && (best === undefined || (p.endedAt ?? 0) > (best.endedAt ?? 0))) best = p;
    return best;
  }

  private runningIn(service: string, env?: string): StoredPromotion | undefined {
    for (const p of this.promotions.values()) if (p.service === service && (env === undefined || p.env === env) && !ENDED_STATES.has(p.state)) return p;
    return undefined;
  }

  private async save(p: StoredPromotion): Promise<void> {
    await this.o.store.savePromotion(p);
    this.promotions.set(p.id, p);
  }

  private async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(id)) throw new DeliveryConflict(`promotion ${id} is changing now; ask again`);
    this.busy.add(id);
    try {
      return await fn();
    } finally {
      this.busy.delete(id);
    }
  }

  private event(type: Extract<DeliveryEvent, { id: string }>['type'], p: StoredPromotion, by: string): DeliveryEvent {
    return { type, service: p.service, env: p.env, id: p.id, release: p.release, by, ...(p.reason !== undefined ? { reason: p.reason } : {}), at: iso(this.o.clock.now()) };
  }

  private emit(e: DeliveryEvent): void {
    for (const fn of [...this.eventListeners]) {
      try {
        fn(e);
      } catch {
        // A listener's failure (a closed stream) is its own.
      }
    }
  }
}

/** `registry/repository` of `registry/repository:tag`. */
function repositoryWithRegistry(name: string): string {
  return name.slice(0, name.lastIndexOf(':'));
}

/** The repository of an image name, without registry and tag. */
export function repositoryOf(name: string): string {
  const noTag = repositoryWithRegistry(name);
  return noTag.slice(noTag.indexOf('/') + 1);
}

/** The image a promotion of the release deploys: `registry/repository@digest`. */
export function imageOf(s: DeliveryService, r: DeliveryRelease): string {
  const img = (s.image !== undefined ? r.images.find((i) => repositoryOf(i.name) === s.image) : undefined) ?? r.images[0]!;
  return `${repositoryWithRegistry(img.name)}@${img.digest}`;
}

export type { PromotionState };

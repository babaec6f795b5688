import { InvalidDelivery, type DeliveryProblem } from './delivery-errors.ts';

/**
 * Delivery's documents, as `PUT`/`POST` take them and `GET` answers them (docs/delivery.md):
 *
 *   service      {app: <Marathon app definition without id>, configService?, image?}
 *   environment  {order, appPrefix?, apps?: {service: appId}, configEnv?, gate?, freezes?, deadlineSeconds?}
 *   release      {version, commit?, images: [{name, digest}], artifacts?, build?}   (made by a build)
 *
 * Names (services, environments) are `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 100; a release's
 * version (the git tag) is `[A-Za-z0-9][A-Za-z0-9._+-]*`, at most 128.
 */

export type JsonObject = { [k: string]: unknown };

export interface DeliveryService {
  name: string;
  /**
   * The Marathon app each environment runs, without `id` (the environment gives it) and with the
   * image left to the release: a promotion sets `container.docker.image` to the release's image
   * by digest. Checked by the services framework when it is deployed (a preflight too).
   */
  app: JsonObject;
  /** The config center's service whose releases the app gets (labels SLIPWAY_CONFIG_SERVICE/_ENV). */
  configService?: string;
  /** Which of a release's images the app runs: its repository (the name without registry and tag); default the first. */
  image?: string;
}

/**
 * `auto`: promoted by delivery itself once the previous environment (by `order`) has run a
 * release healthy for `healthyMinutes`; `manual`: a promotion waits for an approval by someone
 * allowed to approve who did not make the release; `none`: promoted when asked.
 */
export type Gate = { kind: 'none' } | { kind: 'auto'; healthyMinutes: number } | { kind: 'manual' };

export interface Freeze {
  /** Milliseconds since the epoch (ISO 8601 in documents). */
  from: number;
  to: number;
  reason: string;
}

export interface DeliveryEnvironment {
  name: string;
  /** Its place in the way to production: dev 1, demo 2, prod 3 (the previous one is the next lower). */
  order: number;
  /** The app id of service S here is `${appPrefix}S` unless `apps` names one. */
  appPrefix: string;
  apps: Record<string, string>;
  /** The config center's environment its apps take their files from; default the same name. */
  configEnv: string;
  gate: Gate;
  freezes: Freeze[];
  /** How long a promotion may take to be healthy before it is rolled back; default from the app's health checks. */
  deadlineSeconds?: number;
}

export interface ReleaseImage {
  /** `registry/repository:tag`, as the build pushed it. */
  name: string;
  /** `sha256:<64 hex>`: what a promotion deploys (`registry/repository@digest`). */
  digest: string;
}

export interface ReleaseArtifact {
  name: string;
  sha256: string;
  url?: string;
}

export interface DeliveryRelease {
  service: string;
  /** The tag it was built from; unique in the service. */
  version: string;
  commit?: string;
  images: ReleaseImage[];
  artifacts: ReleaseArtifact[];
  build?: { job: string; number: number };
  createdBy: string;
  createdAt: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const NAME_RULE = 'letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 100 characters';
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const COMMIT = /^[0-9a-f]{7,64}$/;
/** An image name with a registry, a repository and a tag (`host[:port]/path:tag`). */
const IMAGE_NAME = /^[a-z0-9.-]+(?::\d{1,5})?\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*:[\w][\w.-]{0,127}$/;
const APP_ID = /^\/(?:[a-z0-9]+(?:[a-z0-9-]*[a-z0-9])?\/)*(?:[a-z0-9]+(?:[a-z0-9-]*[a-z0-9])?)$/;
const APP_PREFIX = /^\/(?:[a-z0-9]+(?:[a-z0-9-]*[a-z0-9])?\/)*$/;
const MAX_FREEZES = 100;
const MAX_IMAGES = 20;
const MAX_ARTIFACTS = 1000;
const MAX_DEADLINE_S = 24 * 3600;

export function isDeliveryName(name: string): boolean {
  return NAME.test(name) && name !== '.' && name !== '..';
}

/** A name from a URL, or InvalidDelivery naming `field`. */
export function deliveryName(name: string, field: string): string {
  if (!isDeliveryName(name)) throw new InvalidDelivery([{ field, message: `${JSON.stringify(name.slice(0, 120))} is not a valid name: ${NAME_RULE}` }]);
  return name;
}

/** A release version from a URL, or InvalidDelivery naming `field`. */
export function releaseVersion(version: string, field: string): string {
  if (!VERSION.test(version)) throw new InvalidDelivery([{ field, message: `${JSON.stringify(version.slice(0, 140))} is not a release version: a git tag of letters, digits, \`.\`, \`_\`, \`+\`, \`-\`, at most 128 characters` }]);
  return version;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Collects problems; each check answers the value when it is right, else undefined. */
class Checker {
  readonly problems: DeliveryProblem[] = [];

  constructor(readonly body: JsonObject) {}

  add(field: string, message: string): undefined {
    this.problems.push({ field, message });
    return undefined;
  }

  only(o: JsonObject, prefix: string, known: readonly string[]): void {
    for (const k of Object.keys(o)) if (!known.includes(k)) this.add(`${prefix}${k}`, `unknown field (known: ${known.join(', ')})`);
  }

  string(o: JsonObject, key: string, field: string, rule?: { pattern: RegExp; says: string }): string | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') return this.add(field, 'must be a string');
    if (rule !== undefined && !rule.pattern.test(v)) return this.add(field, `${JSON.stringify(v.slice(0, 140))} ${rule.says}`);
    return v;
  }

  throwIfAny(): void {
    if (this.problems.length > 0) throw new InvalidDelivery(this.problems);
  }
}

function body(json: unknown): Checker {
  if (!isObject(json)) throw new InvalidDelivery([{ field: '', message: 'the body must be a JSON object' }]);
  return new Checker(json);
}

/** `PUT /deliver/v1/services/{name}`'s body. */
export function parseDeliveryService(name: string, json: unknown): DeliveryService {
  const c = body(json);
  const o = c.body;
  c.only(o, '', ['name', 'app', 'configService', 'image']);
  if (o['name'] !== undefined && o['name'] !== name) c.add('name', `is ${JSON.stringify(o['name'])}, and the URL names ${name}`);
  const app = o['app'];
  if (app === undefined) c.add('app', 'is required: the Marathon app definition each environment runs (without id)');
  else if (!isObject(app)) c.add('app', 'must be an object: a Marathon app definition');
  else {
    if (app['id'] !== undefined) c.add('app.id', 'must not be set: each environment gives the app its id (appPrefix or apps)');
    const container = app['container'];
    if (!isObject(container) || container['type'] !== 'DOCKER' || !isObject(container['docker'])) c.add('app.container', 'must be {"type": "DOCKER", "docker": {...}}: a promotion sets docker.image to the release\'s image by digest');
  }
  const configService = c.string(o, 'configService', 'configService', { pattern: NAME, says: `is not a valid name: ${NAME_RULE}` });
  const image = c.string(o, 'image', 'image', { pattern: /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/, says: 'is not a repository name (the image name without registry and tag: `team/web`)' });
  c.throwIfAny();
  return { name, app: app as JsonObject, ...(configService !== undefined ? { configService } : {}), ...(image !== undefined ? { image } : {}) };
}

function parseTime(c: Checker, v: unknown, field: string): number | undefined {
  if (typeof v !== 'string') return c.add(field, 'must be a time in ISO 8601 (2026-12-24T00:00:00Z)');
  const t = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(t)) return c.add(field, `${JSON.stringify(v.slice(0, 60))} is not a time in ISO 8601 (2026-12-24T00:00:00Z)`);
  return t;
}

/** `PUT /deliver/v1/environments/{name}`'s body. */
export function parseDeliveryEnvironment(name: string, json: unknown): DeliveryEnvironment {
  const c = body(json);
  const o = c.body;
  c.only(o, '', ['name', 'order', 'appPrefix', 'apps', 'configEnv', 'gate', 'freezes', 'deadlineSeconds']);
  if (o['name'] !== undefined && o['name'] !== name) c.add('name', `is ${JSON.stringify(o['name'])}, and the URL names ${name}`);
  const order = o['order'];
  if (order === undefined) c.add('order', 'is required: its place in the way to production (dev 1, demo 2, prod 3)');
  else if (typeof order !== 'number' || !Number.isInteger(order) || order < 0 || order > 1000) c.add('order', 'must be an integer from 0 to 1000');
  const appPrefix = c.string(o, 'appPrefix', 'appPrefix', { pattern: APP_PREFIX, says: 'is not an app group: `/`, or `/dev/` (lower-case letters, digits and `-`, ending with `/`)' }) ?? `/${name.toLowerCase().replace(/[^a-z0-9-]/g, '-')}/`;
  if (!APP_PREFIX.test(appPrefix)) c.add('appPrefix', `is required for an environment named ${name}, whose name is no app group`);
  const apps: Record<string, string> = {};
  const appsIn = o['apps'];
  if (appsIn !== undefined) {
    if (!isObject(appsIn)) c.add('apps', 'must be an object: {"service": "/app/id"}');
    else
      for (const [service, id] of Object.entries(appsIn)) {
        if (!isDeliveryName(service)) c.add(`apps.${service}`, `is not a valid service name: ${NAME_RULE}`);
        else if (typeof id !== 'string' || !APP_ID.test(id)) c.add(`apps.${service}`, 'must be an absolute Marathon app id (/shop/web)');
        else Object.defineProperty(apps, service, { value: id, enumerable: true, writable: true, configurable: true });
      }
  }
  const configEnv = c.string(o, 'configEnv', 'configEnv', { pattern: NAME, says: `is not a valid name: ${NAME_RULE}` }) ?? name;
  let gate: Gate = { kind: 'none' };
  const g = o['gate'];
  if (g !== undefined) {
    if (!isObject(g)) c.add('gate', 'must be an object: {"kind": "none" | "auto" | "manual"}');
    else if (g['kind'] === 'none') {
      c.only(g, 'gate.', ['kind']);
    } else if (g['kind'] === 'manual') {
      c.only(g, 'gate.', ['kind']);
      gate = { kind: 'manual' };
    } else if (g['kind'] === 'auto') {
      c.only(g, 'gate.', ['kind', 'healthyMinutes']);
      const m = g['healthyMinutes'] ?? 10;
      if (typeof m !== 'number' || !Number.isFinite(m) || m < 0 || m > 7 * 24 * 60) c.add('gate.healthyMinutes', 'must be a number of minutes from 0 to 10080');
      else gate = { kind: 'auto', healthyMinutes: m };
    } else c.add('gate.kind', `must be none, auto or manual, not ${JSON.stringify(g['kind'])}`);
  }
  const freezes: Freeze[] = [];
  const f = o['freezes'];
  if (f !== undefined) {
    if (!Array.isArray(f)) c.add('freezes', 'must be a list of {from, to, reason?}');
    else if (f.length > MAX_FREEZES) c.add('freezes', `holds ${f.length} windows; at most ${MAX_FREEZES}`);
    else
      f.forEach((w: unknown, i) => {
        if (!isObject(w)) return c.add(`freezes[${i}]`, 'must be an object {from, to, reason?}');
        c.only(w, `freezes[${i}].`, ['from', 'to', 'reason']);
        const from = parseTime(c, w['from'], `freezes[${i}].from`);
        const to = parseTime(c, w['to'], `freezes[${i}].to`);
        const reason = c.string(w, 'reason', `freezes[${i}].reason`) ?? '';
        if (reason.length > 500) return c.add(`freezes[${i}].reason`, 'is longer than 500 characters');
        if (from !== undefined && to !== undefined) {
          if (to <= from) return c.add(`freezes[${i}].to`, 'must be after from');
          freezes.push({ from, to, reason });
        }
        return undefined;
      });
  }
  const d = o['deadlineSeconds'];
  if (d !== undefined && (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_DEADLINE_S)) c.add('deadlineSeconds', `must be an integer from 1 to ${MAX_DEADLINE_S}`);
  c.throwIfAny();
  return { name, order: order as number, appPrefix, apps, configEnv, gate, freezes, ...(typeof d === 'number' ? { deadlineSeconds: d } : {}) };
}

/** `POST /deliver/v1/services/{s}/releases`'s body (a build's, or an operator's). */
export function parseDeliveryRelease(service: string, json: unknown, by: string, now: number): DeliveryRelease {
  const c = body(json);
  const o = c.body;
  c.only(o, '', ['version', 'commit', 'images', 'artifacts', 'build']);
  const version = o['version'];
  if (version === undefined) c.add('version', 'is required: the tag the release was built from');
  else if (typeof version !== 'string' || !VERSION.test(version)) c.add('version', 'must be a git tag of letters, digits, `.`, `_`, `+`, `-`, at most 128 characters');
  const commit = c.string(o, 'commit', 'commit', { pattern: COMMIT, says: 'is not a commit id (7 to 64 lower-case hex digits)' });
  const images: ReleaseImage[] = [];
  const imgs = o['images'];
  if (!Array.isArray(imgs) || imgs.length === 0) c.add('images', 'is required: a list of {name, digest}, the images the build pushed');
  else if (imgs.length > MAX_IMAGES) c.add('images', `holds ${imgs.length} images; at most ${MAX_IMAGES}`);
  else
    imgs.forEach((img: unknown, i) => {
      if (!isObject(img)) return c.add(`images[${i}]`, 'must be an object {name, digest}');
      c.only(img, `images[${i}].`, ['name', 'digest']);
      const name = c.string(img, 'name', `images[${i}].name`, { pattern: IMAGE_NAME, says: 'is not REGISTRY/REPOSITORY:TAG (127.0.0.1:5000/shop:v1.2.0)' });
      const digest = c.string(img, 'digest', `images[${i}].digest`, { pattern: DIGEST, says: 'is not a digest (sha256: and 64 lower-case hex digits)' });
      if (img['name'] === undefined) c.add(`images[${i}].name`, 'is required');
      if (img['digest'] === undefined) c.add(`images[${i}].digest`, 'is required');
      if (name !== undefined && digest !== undefined) images.push({ name, digest });
      return undefined;
    });
  const artifacts: ReleaseArtifact[] = [];
  const arts = o['artifacts'];
  if (arts !== undefined) {
    if (!Array.isArray(arts)) c.add('artifacts', 'must be a list of {name, sha256, url?}');
    else if (arts.length > MAX_ARTIFACTS) c.add('artifacts', `holds ${arts.length}; at most ${MAX_ARTIFACTS}`);
    else
      arts.forEach((a: unknown, i) => {
        if (!isObject(a)) return c.add(`artifacts[${i}]`, 'must be an object {name, sha256, url?}');
        c.only(a, `artifacts[${i}].`, ['name', 'sha256', 'url']);
        const name = c.string(a, 'name', `artifacts[${i}].name`);
        const sha256 = c.string(a, 'sha256', `artifacts[${i}].sha256`, { pattern: SHA256, says: 'is not a SHA-256 (64 lower-case hex digits)' });
        const url = c.string(a, 'url', `artifacts[${i}].url`, { pattern: /^https?:\/\/[^\s]{1,2000}$/, says: 'is not an http(s) URL' });
        if (name === undefined || name === '' || name.length > 1000) return c.add(`artifacts[${i}].name`, 'is required, at most 1000 characters');
        if (sha256 !== undefined) artifacts.push({ name, sha256, ...(url !== undefined ? { url } : {}) });
        return undefined;
      });
  }
  let build: DeliveryRelease['build'];
  const b = o['build'];
  if (b !== undefined) {
    if (!isObject(b)) c.add('build', 'must be {job, number}');
    else {
      c.only(b, 'build.', ['job', 'number']);
      const job = c.string(b, 'job', 'build.job');
      const number = b['number'];
      if (job === undefined || job === '') c.add('build.job', 'is required');
      if (typeof number !== 'number' || !Number.isInteger(number) || number < 1) c.add('build.number', 'must be a build number (an integer from 1)');
      else if (job !== undefined && job !== '') build = { job, number };
    }
  }
  c.throwIfAny();
  return { service, version: version as string, ...(commit !== undefined ? { commit } : {}), images, artifacts, ...(build !== undefined ? { build } : {}), createdBy: by, createdAt: now };
}

/** The app id of `service` in `env`. */
export function appIdIn(env: DeliveryEnvironment, service: string): string {
  return Object.hasOwn(env.apps, service) ? env.apps[service]! : `${env.appPrefix}${service.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
}

/** The freeze window `now` is in, if any. */
export function freezeAt(env: DeliveryEnvironment, now: number): Freeze | undefined {
  return env.freezes.find((f) => f.from <= now && now < f.to);
}

/** An environment as `GET` answers it (times in ISO 8601). */
export function environmentJson(env: DeliveryEnvironment): JsonObject {
  return { ...env, freezes: env.freezes.map((f) => ({ from: new Date(f.from).toISOString(), to: new Date(f.to).toISOString(), reason: f.reason })) };
}

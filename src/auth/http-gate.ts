import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SlipwayError } from '../core/errors.ts';
import { decide, type Capability, type ChangedObject, type Policy, type Resource } from './policy.ts';
import type { Identity } from './tokens.ts';

/**
 * The gate every HTTP API of Slipway passes (issue 12): authentication, then one capability check
 * per route from a table of rules, default deny, plus the browser protections and the audit log.
 *
 * Contract:
 * - Credentials: `Authorization: Bearer <token>`, or HTTP Basic with the token as the password
 *   (what Marathon clients, Jenkins clients `user:apiToken` and Mesos tooling send; the user name is
 *   ignored, or taken as the token when the password is empty). A request without valid credentials
 *   gets 401 with `WWW-Authenticate`, before its body is read; the anonymous policy, when the
 *   operator gave one (off by default), stands in for missing credentials (from loopback only, if
 *   so configured). Bad credentials are refused even where anonymous requests are allowed.
 * - Every route has a rule (`addRules` before the routes are registered; a route without one
 *   makes registration fail, so that nothing is open by omission): `public` (`/health`, `/ping`),
 *   `own` (the route proves its caller by its own means: a CI executor's token, a webhook's
 *   signature), or checks computed from the request (body included) that must all be allowed:
 *   else 403 naming what was missing; the checks may come with credentials of the route's own
 *   (`OwnCredentials`: Apollo's signatures), which stand in for a token when a request carries them.
 * - Host: the `Host` header must name an IP address, `localhost`, or one of `hostNames` (DNS
 *   rebinding); else 421 (Misdirected Request).
 * - Cross-site: a state-changing request (not GET/HEAD/OPTIONS) that a browser marks cross-site
 *   (`Sec-Fetch-Site`), whose `Origin` is another host, or whose body has a type an HTML form can
 *   send (form, multipart, text/plain) without a custom header (`X-Requested-By`, `Jenkins-Crumb`)
 *   is refused with 403: a cross-site form cannot send JSON or custom headers without CORS, which
 *   no Slipway API grants.
 * - Audit: every state-changing request that passed authentication is given to `audit` once it
 *   is answered: who, what, when, from where, its status and request id.
 */

export interface Check {
  capability: Capability;
  resource: Resource;
  object?: ChangedObject;
}

/** What a rule's checks see of a request. */
export interface GateRequest {
  method: string;
  params: Record<string, string | undefined>;
  query: Record<string, unknown>;
  body: unknown;
  identity: Identity;
}

/** What a route's own credentials see of a request (before its body is read). */
export interface ProofRequest {
  method: string;
  /** The path and query as the client sent them, undecoded: what a signature over the URL covers. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  params: Record<string, string | undefined>;
  query: Record<string, unknown>;
}

/**
 * A route that takes a credential of its own besides Slipway's tokens (Apollo's access-key
 * signature). `prove` answers the caller's identity when the request carries that credential and
 * it holds, throws (Unauthenticated, 401) when it carries it and it does not hold, and answers
 * undefined when the request does not carry it: then the usual credentials apply. Either way the
 * checks then run against the identity, so the proof grants no more than its identity's policies.
 */
export interface OwnCredentials {
  prove(req: ProofRequest): Identity | undefined;
  checks(req: GateRequest): Check[];
}

export type RouteAccess = 'public' | 'own' | ((req: GateRequest) => Check[]) | OwnCredentials;

export interface RouteRule {
  /** One method or several; HEAD follows GET. */
  method: string | string[];
  /** The route's URL as registered with Fastify (`/v2/apps/*`, `/ci/v1/jobs/:name`). */
  url: string;
  access: RouteAccess;
}

export interface AuditEntry {
  at: number;
  tokenId: string | undefined;
  name: string;
  method: string;
  path: string;
  status: number;
  remote: string;
  requestId: string;
  /** The part that reported the entry to the master (its token's name); absent for the master's own. */
  via?: string;
}

export interface GateOptions {
  /** The identity of a token text, or undefined for one that is not a live token. */
  resolve(token: string): Identity | undefined | Promise<Identity | undefined>;
  /** Policies of requests without credentials; absent: they get 401. */
  anonymous?: { policies: readonly Policy[]; loopbackOnly: boolean };
  /** Names the Host header may carry besides IP addresses and localhost. */
  hostNames?: readonly string[];
  audit?: (entry: AuditEntry) => void;
  now: () => number;
  /** The realm of WWW-Authenticate. */
  realm?: string;
}

export class Unauthenticated extends SlipwayError {
  readonly code = 'UNAUTHENTICATED';
  readonly status = 401;
}

export class Forbidden extends SlipwayError {
  readonly code = 'FORBIDDEN';
  readonly status = 403;
}

export class MisdirectedRequest extends SlipwayError {
  readonly code = 'MISDIRECTED_REQUEST';
  readonly status = 421;
}

const identities = new WeakMap<object, Identity>();

/** The identity of a request the gate let through (undefined on `public` and `own` routes without credentials). */
export function identityOf(req: FastifyRequest): Identity | undefined {
  return identities.get(req.raw);
}

const ANONYMOUS_NAME = 'anonymous';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)\b/i;

export class HttpGate {
  private readonly rules = new Map<string, RouteAccess>();

  constructor(private readonly o: GateOptions) {}

  /** Adds the rules of an API; call before its routes are registered. */
  addRules(rules: readonly RouteRule[]): void {
    for (const r of rules) {
      for (const m of Array.isArray(r.method) ? r.method : [r.method]) this.rules.set(`${m} ${r.url}`, r.access);
    }
  }

  private ruleOf(method: string, url: string | undefined): RouteAccess | undefined {
    if (url === undefined) return undefined;
    return this.rules.get(`${method === 'HEAD' ? 'GET' : method} ${url}`) ?? this.rules.get(`${method} ${url}`);
  }

  /** Installs the hooks on `app`: before any route is registered, so that every route inherits them. */
  install(app: FastifyInstance): void {
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const m of methods) {
        if (m === 'HEAD' || m === 'OPTIONS') continue;
        if (this.ruleOf(m, route.url) === undefined) throw new Error(`route ${m} ${route.url} has no access rule (src/auth/http-gate.ts: every route needs one)`);
      }
    });
    app.addHook('onRequest', async (req, reply) => this.onRequest(req, reply));
    app.addHook('preHandler', async (req) => this.preHandler(req));
    if (this.o.audit !== undefined) {
      const audit = this.o.audit;
      app.addHook('onResponse', async (req, reply) => {
        if (SAFE_METHODS.has(req.method)) return;
        const who = identities.get(req.raw);
        if (who === undefined) return;
        audit({ at: this.o.now(), tokenId: who.tokenId, name: who.name, method: req.method, path: req.url.split('?')[0] ?? req.url, status: reply.statusCode, remote: req.ip, requestId: String(req.id) });
      });
    }
  }

  private async onRequest(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    this.checkHost(req);
    const access = this.ruleOf(req.method, req.routeOptions.url);
    if (!SAFE_METHODS.has(req.method) && access !== 'own') this.checkCrossSite(req);
    // Public routes and those with their own proof look at no credentials (a stale token sent
    // to /health must not make a load balancer see 401).
    if (access === 'public' || access === 'own') return;
    if (typeof access === 'object') {
      const proven = access.prove({ method: req.method, url: req.originalUrl, headers: req.headers, params: (req.params ?? {}) as Record<string, string | undefined>, query: (req.query ?? {}) as Record<string, unknown> });
      if (proven !== undefined) {
        identities.set(req.raw, proven);
        return;
      }
    }
    const token = credentials(req);
    if (token === undefined) {
      const anon = this.o.anonymous;
      if (anon !== undefined && (!anon.loopbackOnly || isLoopback(req.socket.remoteAddress))) {
        identities.set(req.raw, { tokenId: undefined, name: ANONYMOUS_NAME, policies: anon.policies });
        return;
      }
      void reply.header('WWW-Authenticate', `Bearer realm="${this.o.realm ?? 'slipway'}", Basic realm="${this.o.realm ?? 'slipway'}"`);
      throw new Unauthenticated('authentication required: send Authorization: Bearer <token> (or Basic with the token as the password); `slipway up` wrote an admin token to <data-dir>/admin.token');
    }
    const identity = await this.o.resolve(token);
    if (identity === undefined) {
      void reply.header('WWW-Authenticate', `Bearer realm="${this.o.realm ?? 'slipway'}", error="invalid_token"`);
      throw new Unauthenticated('the token is not valid (unknown, revoked or expired)');
    }
    identities.set(req.raw, identity);
  }

  private async preHandler(req: FastifyRequest): Promise<void> {
    const access = this.ruleOf(req.method, req.routeOptions.url);
    if (access === 'public' || access === 'own') return;
    const identity = identities.get(req.raw);
    // Not-found routes come here too: an authenticated caller hears the 404 of the handler.
    if (access === undefined) return;
    if (identity === undefined) throw new Unauthenticated('authentication required');
    const checks = (typeof access === 'function' ? access : access.checks)({ method: req.method, params: (req.params ?? {}) as Record<string, string | undefined>, query: (req.query ?? {}) as Record<string, unknown>, body: req.body, identity });
    this.authorize(identity, checks);
  }

  /** Throws Forbidden unless `identity` is allowed every check (for handlers that check more themselves). */
  authorize(identity: Identity, checks: readonly Check[]): void {
    for (const c of checks) {
      const d = decide(identity.policies, c.capability, c.resource, c.object);
      if (!d.allowed) throw new Forbidden(`${identity.name}: ${d.reason}`);
    }
  }

  private checkHost(req: FastifyRequest): void {
    const header = req.headers.host;
    if (header === undefined) return; // HTTP/1.0 without Host: nothing a browser sends.
    const name = hostName(header);
    if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost')) return;
    if ((this.o.hostNames ?? []).includes(name)) return;
    throw new MisdirectedRequest(`the Host header '${header.slice(0, 100)}' is not a name of this server (give it with --host-name)`);
  }

  private checkCrossSite(req: FastifyRequest): void {
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') throw new Forbidden(`a cross-site request may not change anything (Sec-Fetch-Site: ${site})`);
    const origin = req.headers.origin;
    if (typeof origin === 'string' && origin !== 'null') {
      let originHost: string | undefined;
      try {
        originHost = new URL(origin).host;
      } catch {
        originHost = undefined;
      }
      if (originHost !== req.headers.host) throw new Forbidden(`a request from origin ${origin.slice(0, 100)} may not change anything here`);
    } else if (origin === 'null') throw new Forbidden('a request from an opaque origin may not change anything here');
    const type = req.headers['content-type'];
    if (typeof type === 'string' && FORM_TYPES.test(type) && req.headers['x-requested-by'] === undefined && req.headers['jenkins-crumb'] === undefined) {
      throw new Forbidden(`a ${type.split(';')[0]} body may come from a cross-site form: send Content-Type: application/json, or the header X-Requested-By (or a Jenkins-Crumb)`);
    }
  }
}

/** The token of a request's Authorization header, or undefined when it has none. */
export function credentials(req: { headers: Record<string, string | string[] | undefined> }): string | undefined {
  const h = req.headers['authorization'];
  if (typeof h !== 'string') return undefined;
  const space = h.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = h.slice(0, space).toLowerCase();
  const value = h.slice(space + 1).trim();
  if (scheme === 'bearer') return value;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return decoded;
    const password = decoded.slice(colon + 1);
    return password !== '' ? password : decoded.slice(0, colon);
  }
  return undefined;
}

function hostName(header: string): string {
  if (header.startsWith('[')) return header.slice(1, header.indexOf(']'));
  const colon = header.lastIndexOf(':');
  return (colon >= 0 ? header.slice(0, colon) : header).toLowerCase();
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1' || (address?.startsWith('127.') ?? false);
}

import { createHash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import { SlipwayError } from '../core/errors.ts';
import { newTokenText, TOKEN_PATTERN } from '../core/token-text.ts';
import { BUILT_IN_POLICIES, builtInPolicy, type Policy } from './policy.ts';

/**
 * Tokens: bearer secrets of the form `slw_<id>_<secret>` (the id is public, it names the token in
 * lists and the audit log; the secret is 32 random bytes). Only a SHA-256 of the whole token is
 * kept (a token has 256 bits of entropy: a slow hash would add nothing but latency to every
 * request), compared in constant time. A token holds policies by name (the built-in roles of
 * policy.ts), may expire, and is revoked for good.
 */

export interface StoredToken {
  id: string;
  /** Who or what holds it: the principal of a framework, an agent's join token, a person. */
  name: string;
  policies: string[];
  /** Hex SHA-256 of the whole token text. */
  hash: string;
  createdAt: number;
  expiresAt?: number;
  revokedAt?: number;
}

/** What a token store persists (src/store implements it over the master's database). */
export interface TokenStore {
  loadTokens(): Promise<StoredToken[]>;
  saveToken(token: StoredToken): Promise<void>;
}

/** A token as the API shows it: never its secret nor its hash. */
export interface TokenView {
  id: string;
  name: string;
  policies: string[];
  createdAt: string;
  expiresAt?: string;
  revoked: boolean;
}

/** Who a request comes from, once authenticated. */
export interface Identity {
  /** The token's id; undefined for anonymous requests. */
  tokenId: string | undefined;
  /** The token's name (a framework's principal, an agent's name), or `anonymous`. */
  name: string;
  policies: readonly Policy[];
}

export class InvalidToken extends SlipwayError {
  readonly code = 'INVALID_TOKEN';
  readonly status = 400;
}

export class TokenNotFound extends SlipwayError {
  readonly code = 'TOKEN_NOT_FOUND';
  readonly status = 404;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,127}$/;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * The tokens of a cluster, in memory for a lookup per request, written through to `store` before
 * a change answers (a created token works, a revoked one is refused, after a restart too).
 */
export class TokenRegistry {
  private readonly byId = new Map<string, StoredToken>();

  private constructor(
    private readonly store: TokenStore,
    private readonly clock: Clock,
    private readonly policyOf: (name: string) => Policy | undefined,
  ) {}

  /**
   * `policyOf` finds a policy by name (default: the built-in ones; the server gives its
   * PolicyRegistry's): looked up at each request, so that a changed policy applies at once.
   */
  static async open(store: TokenStore, clock: Clock, policyOf: (name: string) => Policy | undefined = builtInPolicy): Promise<TokenRegistry> {
    const r = new TokenRegistry(store, clock, policyOf);
    for (const t of await store.loadTokens()) r.byId.set(t.id, t);
    return r;
  }

  /** Whether any token that is not revoked exists (the first start creates the admin's). */
  get hasLiveTokens(): boolean {
    for (const t of this.byId.values()) if (t.revokedAt === undefined) return true;
    return false;
  }

  /** Creates a token; answers its text, shown once and never again. */
  async create(o: { name: string; policies: string[]; ttlMs?: number }): Promise<{ token: string; view: TokenView }> {
    return this.adopt(newTokenText(), o);
  }

  /**
   * Creates a token whose text the operator chose (`SLIPWAY_BOOTSTRAP_TOKEN`, Nomad's bootstrap
   * secret): it must have the form of a token, and its id must be new.
   */
  async adopt(token: string, o: { name: string; policies: string[]; ttlMs?: number }): Promise<{ token: string; view: TokenView }> {
    const form = TOKEN_PATTERN.exec(token);
    if (form === null) throw new InvalidToken('a token must look like slw_<12 hex digits>_<43 base64url characters> (make one with `openssl rand`, or let Slipway make it)');
    if (this.byId.has(form[1]!)) throw new InvalidToken(`a token with id ${form[1]} exists already`);
    if (!NAME_PATTERN.test(o.name)) throw new InvalidToken(`token name '${o.name}' must be 1-128 letters, digits and . _ @ : / - (starting with a letter or digit)`);
    if (o.policies.length === 0) throw new InvalidToken('a token needs at least one policy');
    for (const p of o.policies) {
      if (this.policyOf(p) === undefined) throw new InvalidToken(`unknown policy '${p.slice(0, 80)}' (the built-in ones: ${Object.keys(BUILT_IN_POLICIES).join(', ')}; others: GET /auth/v1/policies)`);
    }
    if (o.ttlMs !== undefined && !(Number.isSafeInteger(o.ttlMs) && o.ttlMs > 0)) throw new InvalidToken(`ttl must be a positive number of milliseconds, got ${o.ttlMs}`);
    const id = form[1]!;
    const now = this.clock.now();
    const stored: StoredToken = { id, name: o.name, policies: [...new Set(o.policies)], hash: hashToken(token), createdAt: now };
    if (o.ttlMs !== undefined) stored.expiresAt = now + o.ttlMs;
    await this.store.saveToken(stored);
    this.byId.set(id, stored);
    return { token, view: view(stored) };
  }

  list(): TokenView[] {
    return [...this.byId.values()].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id)).map(view);
  }

  get(id: string): TokenView {
    const t = this.byId.get(id);
    if (t === undefined) throw new TokenNotFound(`no token ${id}`);
    return view(t);
  }

  /** Revokes for good; revoking a revoked token changes nothing. */
  async revoke(id: string): Promise<TokenView> {
    const t = this.byId.get(id);
    if (t === undefined) throw new TokenNotFound(`no token ${id}`);
    if (t.revokedAt === undefined) {
      const revoked = { ...t, revokedAt: this.clock.now() };
      await this.store.saveToken(revoked);
      this.byId.set(id, revoked);
    }
    return view(this.byId.get(id)!);
  }

  /** The identity of a token text, or undefined when it is not a live token (unknown, revoked, expired). */
  resolve(token: string): Identity | undefined {
    const m = TOKEN_PATTERN.exec(token);
    if (m === null) return undefined;
    const t = this.byId.get(m[1]!);
    if (t === undefined || t.revokedAt !== undefined) return undefined;
    if (t.expiresAt !== undefined && this.clock.now() >= t.expiresAt) return undefined;
    const given = Buffer.from(hashToken(token), 'hex');
    const kept = Buffer.from(t.hash, 'hex');
    if (given.length !== kept.length || !timingSafeEqual(given, kept)) return undefined;
    return { tokenId: t.id, name: t.name, policies: t.policies.flatMap((p) => {
        const policy = this.policyOf(p);
        return policy !== undefined ? [policy] : [];
      }) };
  }
}

function view(t: StoredToken): TokenView {
  return {
    id: t.id,
    name: t.name,
    policies: t.policies,
    createdAt: new Date(t.createdAt).toISOString(),
    ...(t.expiresAt !== undefined ? { expiresAt: new Date(t.expiresAt).toISOString() } : {}),
    revoked: t.revokedAt !== undefined,
  };
}

import os from 'node:os';
import { AuditLog } from '../auth/audit-log.ts';
import { bootstrapAdminToken } from '../auth/bootstrap.ts';
import { HttpGate, type GateOptions } from '../auth/http-gate.ts';
import { BUILT_IN_POLICIES, builtInPolicy, type Policy } from '../auth/policy.ts';
import { RemoteAuditStore } from '../auth/remote-audit.ts';
import { RemoteIdentities } from '../auth/remote-identities.ts';
import { TokenRegistry } from '../auth/tokens.ts';
import { PolicyRegistry } from '../auth/policy-registry.ts';
import { SecretRegistry, type SecretSealer } from '../auth/secret-registry.ts';
import type { Clock } from '../core/clock.ts';
import { SlipwayError } from '../core/errors.ts';
import { KyselyAuthStore } from '../store/kysely-auth-store.ts';
import { sqliteDatabases } from '../store/sqlite-database.ts';

/**
 * The authentication of a Slipway process (issue 12; docs/security.md), wired from its options:
 * the master keeps the tokens and the audit log (`openLocalAuth`, in its data dir); the parts that
 * run apart from it (`slipway apps`, `slipway ci`, an agent's files server) ask the master who a
 * token is (`remoteGate`).
 */

export interface AuthOptions {
  /** Names the Host header may carry besides IP addresses and localhost (`--host-name`). */
  hostNames?: readonly string[];
  /** Policies granted to requests without credentials (`--anonymous-policy`); off by default. */
  anonymousPolicies?: readonly string[];
  /** Grant the anonymous policies only to requests from loopback (`--anonymous-loopback-only`). */
  anonymousLoopbackOnly?: boolean;
}

export class InvalidAuthOptions extends SlipwayError {
  readonly code = 'INVALID_AUTH_OPTIONS';
  readonly status = 400;
}

/** The names the Host header may carry: the operator's, and this machine's own hostname. */
function hostNamesOf(o: AuthOptions): string[] {
  return [...new Set([...(o.hostNames ?? []), os.hostname()].map((n) => n.toLowerCase()))];
}

function anonymousOf(o: AuthOptions): GateOptions['anonymous'] {
  if (o.anonymousPolicies === undefined || o.anonymousPolicies.length === 0) return undefined;
  const policies: Policy[] = o.anonymousPolicies.map((name) => {
    const p = builtInPolicy(name);
    if (p === undefined) throw new InvalidAuthOptions(`--anonymous-policy: unknown policy '${name}' (known: ${Object.keys(BUILT_IN_POLICIES).join(', ')})`);
    return p;
  });
  return { policies, loopbackOnly: o.anonymousLoopbackOnly === true };
}

export interface LocalAuth {
  gate: HttpGate;
  tokens: TokenRegistry;
  policies: PolicyRegistry;
  audit: AuditLog;
  /** The secret store (sealed with the installation's key). */
  secrets: SecretRegistry;
  /** The admin token created at this start (first start only), else undefined. */
  createdAdminToken: string | undefined;
  close(): Promise<void>;
}

/**
 * Opens the tokens, policies, secret store and audit log in `dataDir` (auth.db); on a first start creates the admin
 * token in `adminTokenFile` (the text of SLIPWAY_BOOTSTRAP_TOKEN when it is set).
 */
export async function openLocalAuth(o: AuthOptions & { dataDir: string; adminTokenFile: string; clock: Clock; secretBox: SecretSealer; log?: (line: string) => void }): Promise<LocalAuth> {
  const anonymous = anonymousOf(o);
  const store = await KyselyAuthStore.open(sqliteDatabases(o.dataDir));
  try {
    const policies = await PolicyRegistry.open(store);
    const tokens = await TokenRegistry.open(store, o.clock, (name) => policies.get(name));
    const secrets = await SecretRegistry.open(store, o.secretBox, o.clock);
    const given = process.env['SLIPWAY_BOOTSTRAP_TOKEN'];
    const createdAdminToken = await bootstrapAdminToken(tokens, o.adminTokenFile, { ...(given !== undefined ? { given } : {}), ...(o.log !== undefined ? { log: o.log } : {}) });
    const audit = new AuditLog(store, o.log !== undefined ? { log: o.log } : {});
    const gate = new HttpGate({
      resolve: (t) => tokens.resolve(t),
      now: () => o.clock.now(),
      audit: (e) => audit.record(e),
      ...(anonymous !== undefined ? { anonymous } : {}),
      hostNames: hostNamesOf(o),
    });
    return {
      gate,
      tokens,
      policies,
      audit,
      secrets,
      createdAdminToken,
      async close() {
        await audit.close();
        await store.close();
      },
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/**
 * A gate whose tokens the master at `masterUrl` resolves. With `audit`, the part's changes go to
 * the master's audit log (RemoteAuditStore, with the part's token); `close` writes what is left.
 * Without (an agent's files server: reads only), nothing is audited.
 */
export function remoteGate(masterUrl: string, o: AuthOptions & { ca?: Buffer } = {}, audit?: { token: string | undefined; log?: (line: string) => void }): HttpGate & { closeAudit(): Promise<void> } {
  const identities = new RemoteIdentities(masterUrl, o.ca !== undefined ? { ca: o.ca } : {});
  const anonymous = anonymousOf(o);
  const log = audit !== undefined ? new AuditLog(new RemoteAuditStore(masterUrl, audit.token, audit.log), { flushMs: 500, maxPending: 100_000, ...(audit.log !== undefined ? { log: audit.log } : {}) }) : undefined;
  const gate = new HttpGate({
    resolve: (t) => identities.resolve(t),
    now: () => Date.now(),
    ...(log !== undefined ? { audit: (e) => log.record(e) } : {}),
    ...(anonymous !== undefined ? { anonymous } : {}),
    hostNames: hostNamesOf(o),
  });
  return Object.assign(gate, { closeAudit: async () => log?.close() });
}

/** A gate that knows one admin token (a benchmark's server that has no master of its own). */
export function singleTokenGate(token: string): HttpGate {
  const admin = { tokenId: 'run', name: 'admin', policies: [BUILT_IN_POLICIES['admin']!] };
  return new HttpGate({ resolve: (t) => (t === token ? admin : undefined), now: () => Date.now() });
}

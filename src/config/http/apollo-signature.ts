import { createHmac, timingSafeEqual } from 'node:crypto';
import { Unauthenticated, type Check, type ProofRequest } from '../../auth/http-gate.ts';
import type { Identity } from '../../auth/tokens.ts';
import { secretName } from '../../core/secret-name.ts';
import { configName } from '../config-definitions.ts';

/**
 * Apollo's access-key signatures (apolloconfig/apollo: apollo-core `Signature`, the config
 * service's `ClientAuthenticationFilter` and `AccessKeyUtil`), so that an Apollo client configured
 * with `apollo.access-key.secret` reads its appId without a Slipway token.
 *
 * The client sends, on `/configs`, `/configfiles[/json]` and `/notifications/v2`:
 *   Authorization: Apollo {appId}:{signature}
 *   Timestamp: {milliseconds since the epoch}
 *   signature = Base64(HmacSHA1(key = access key, data = Timestamp + "\n" + pathWithQuery))
 * where pathWithQuery is the request's path and, when there is one, `?` and its query, both as sent
 * (undecoded). Apollo accepts a Timestamp less than 60 s away from its clock, either way (its
 * `accesskey.auth.time-diff.tolerance`, default 60 s), and answers 401 otherwise.
 *
 * In Slipway the access key of an appId is a secret of the secret store that the service names
 * (`apollo: {accessKeySecret: "<name>"}`): the config center holds the name, and asks for the value
 * through `SecretValueOf`, which the server wires to the secret store. A request that carries an
 * Apollo signature is proven by it or refused (401 saying what is wrong), never passed on to
 * another credential: a signature for an appId without an access key is refused too ("no access
 * key"), where Apollo would ignore it, since ignoring it would serve the request as anonymous.
 */

/** The shortest access key that signs (Apollo's portal makes 32 hex characters). */
export const MIN_ACCESS_KEY_LENGTH = 16;

/** How far a Timestamp may be from the server's clock (Apollo's default tolerance), exclusive. */
export const APOLLO_TIMESTAMP_TOLERANCE_MS = 60_000;

/** Base64(HmacSHA1(secret, timestamp + "\n" + pathWithQuery)): Apollo's `Signature.signature`. */
export function apolloSignature(timestamp: string, pathWithQuery: string, secret: string): string {
  return createHmac('sha1', Buffer.from(secret, 'utf8')).update(`${timestamp}\n${pathWithQuery}`, 'utf8').digest('base64');
}

/** What is signed of a request URL: its path, then `?query` when the query is not empty (AccessKeyUtil.buildSignature). */
export function signedPathOf(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url.slice(q + 1);
  return query === '' ? url.slice(0, q) : url;
}

/** Whether a signature a client sent is `expected`, in constant time for signatures of the expected length. */
export function sameSignature(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value of a secret of the secret store by name; undefined when there is none. */
export type SecretValueOf = (name: string) => string | undefined;

export interface ApolloAccessKeys {
  /** The name of the secret that is the access key of `appId`; undefined when it has none (or is no service). */
  secretOf(appId: string): string | undefined;
  valueOf: SecretValueOf;
  now(): number;
}

const SCHEME = /^apollo(\s|$)/i;
const HEADER = /^apollo\s+([^:\s]+):(\S+)\s*$/i;
const MILLIS = /^\d{1,16}$/;

function appIdOf(req: ProofRequest): string {
  const fromPath = req.params['appId'];
  if (fromPath !== undefined) return fromPath;
  const q = req.query['appId'];
  return typeof q === 'string' ? q : '';
}

/** Who a request signed with the access key of `appId` is: read and files on that service's config, in every environment. */
export function apolloIdentity(appId: string): Identity {
  return {
    tokenId: undefined,
    name: `apollo:${appId}`,
    policies: [{ name: 'apollo-access-key', description: `Apollo clients that sign with the access key of ${appId}`, rules: [{ kind: 'config', match: `${appId}/*`, capabilities: ['read', 'files'] }] }],
  };
}

/**
 * The gate's `prove` for Apollo's routes (OwnCredentials): undefined for a request without an
 * `Authorization: Apollo ...` header (a token applies then), the appId's identity for one whose
 * signature holds, else Unauthenticated (401) naming what is wrong. The secret is never in a message.
 */
export function apolloProof(keys: ApolloAccessKeys): (req: ProofRequest) => Identity | undefined {
  return (req) => {
    const header = req.headers['authorization'];
    if (typeof header !== 'string' || !SCHEME.test(header)) return undefined;
    const m = HEADER.exec(header);
    if (m === null) throw new Unauthenticated('Authorization: Apollo must be followed by {appId}:{signature}, as Apollo clients send it');
    const [, signedFor = '', signature = ''] = m;
    const appId = configName(appIdOf(req), 'appId');
    if (signedFor !== appId) throw new Unauthenticated(`the Authorization header is for appId '${signedFor.slice(0, 100)}', the request for '${appId}'`);
    const name = keys.secretOf(appId);
    if (name === undefined) throw new Unauthenticated(`no access key: appId '${appId}' has none in Slipway, so its signatures cannot be checked (name a secret in the service's apollo.accessKeySecret, or send a Slipway token instead)`);
    const secret = keys.valueOf(name);
    if (secret === undefined) throw new Unauthenticated(`the access key of appId '${appId}' is not in the secret store (put the secret its service names in apollo.accessKeySecret)`);
    // A short key is guessable (an empty one signs for anyone): refused, whatever the signature.
    if (secret.length < MIN_ACCESS_KEY_LENGTH) throw new Unauthenticated(`the access key of appId '${appId}' is shorter than ${MIN_ACCESS_KEY_LENGTH} characters: put a longer one (openssl rand -hex 16)`);
    const timestamp = req.headers['timestamp'];
    if (typeof timestamp !== 'string' || timestamp.trim() === '') throw new Unauthenticated('the Timestamp header is missing: a signed request carries the time it was signed, in milliseconds since the epoch');
    if (!MILLIS.test(timestamp)) throw new Unauthenticated(`the Timestamp header ${JSON.stringify(timestamp.slice(0, 40))} is not a time in milliseconds since the epoch`);
    const skew = keys.now() - Number(timestamp);
    if (Math.abs(skew) >= APOLLO_TIMESTAMP_TOLERANCE_MS) {
      throw new Unauthenticated(`RequestTimeTooSkewed: the Timestamp is ${Math.round(Math.abs(skew) / 1000)} s ${skew > 0 ? 'old' : 'ahead of the server'}; a signature holds within ${APOLLO_TIMESTAMP_TOLERANCE_MS / 1000} s of the server's clock`);
    }
    const signed = signedPathOf(req.url);
    if (!sameSignature(signature, apolloSignature(timestamp, signed, secret))) {
      throw new Unauthenticated(`Unauthorized: the signature is not that of this request with the access key of '${appId}': Base64(HmacSHA1(key, Timestamp + "\\n" + ${JSON.stringify(signed.slice(0, 300))}))`);
    }
    return apolloIdentity(appId);
  };
}

/** The checks of naming an access key in a service (`PUT /config/v1/services/{s}`): `use` on its secret, which Apollo clients then hold. */
export function accessKeySecretChecks(body: unknown): Check[] {
  const apollo = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)['apollo'] : undefined;
  const name = typeof apollo === 'object' && apollo !== null && !Array.isArray(apollo) ? (apollo as Record<string, unknown>)['accessKeySecret'] : undefined;
  if (typeof name !== 'string') return [];
  const n = secretName(name);
  // A bad name is refused by the service's validation, naming the field.
  return 'name' in n ? [{ capability: 'use', resource: { kind: 'secrets', name: n.name } }] : [];
}

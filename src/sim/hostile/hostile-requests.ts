import fc from 'fast-check';

/**
 * Hostile requests for one route of a Slipway server, as fast-check arbitraries: malformed and
 * mutated bodies, wrong types, deep nesting, huge numbers, bad UTF-8, long ids, path traversal,
 * wrong content types. The suite (hostile-run.ts) draws them with a seed, so that a failure is
 * reproduced by running again with the seed it printed.
 *
 * Each route gets a seed body that it would accept (seedBody): mutating an accepted body reaches
 * the checks behind the parser, where random JSON is refused at the first field.
 */

export interface Route {
  method: string;
  /** Fastify's pattern: `/v2/apps/*`, `/ci/v1/jobs/:name/builds/:n`. */
  url: string;
}

export interface HostileRequest {
  route: Route;
  method: string;
  /** Path and query, as sent on the request line (already encoded). */
  path: string;
  headers: Record<string, string>;
  /** Made when the request is sent (drawn requests wait in a queue; some bodies are 100 MB). */
  body: (() => Buffer) | undefined;
  /** What the request tries, for the report: `mutated body`, `deep nesting 50000`, ... */
  kind: string;
}

/** Values that have broken parsers and checks before: traversal, encodings, limits of numbers. */
const NASTY_TEXT = [
  '..',
  '.',
  '../../../../etc/passwd',
  '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
  '..%2f..%2f..%2fetc%2fshadow',
  '%00',
  '%ff%fe',
  '%c0%ae%c0%ae',
  '%F0%9F%92%A5',
  '%24%7BPORT0%7D',
  '%20',
  'a%20b',
  'a%2Fb',
  '9007199254740993',
  '99999999999999999999999',
  '-1',
  '0',
  '1e309',
  '-0',
  'NaN',
  'Infinity',
  '0x10',
  '__proto__',
  'constructor',
  'prototype',
  '%2F'.repeat(42) + '!',
  'a'.repeat(300),
  'A'.repeat(10_000),
  '*',
  '%3F',
  '%23',
  '%5C',
  '%25',
  '%0d%0aSet-Cookie:%20x=1',
];

const urlText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_TEXT) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30, unit: 'grapheme' }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12, unit: 'binary' }).map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, '?'))) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double({ noNaN: false })).map((n) => encodeURIComponent(String(n))) },
  { weight: 1, arbitrary: fc.constantFrom('x', 'hello', 'job-1', '1', '2', 'web') },
);

/** JSON values that a field does not expect. */
const hostileJsonValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, -0.5, 1e308, -1e308, 2 ** 53 + 1, '', ' ', '..', '/'.repeat(42) + '!', '💥', '${PORT0}', [], {}, [[[[]]]], 'x'.repeat(100_000)),
  fc.string({ maxLength: 40, unit: 'grapheme' }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 3 }),
);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path into `value` (object keys and array indexes), the root included as []. */
function pathsOf(value: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...prefix, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) pathsOf(v, [...prefix, k], out);
  return out;
}

function mutate(seed: Json, pick: number, value: unknown, op: 'replace' | 'delete' | 'add' | 'wrap'): unknown {
  const copy = structuredClone(seed);
  const paths = pathsOf(copy);
  const path = paths[pick % paths.length]!;
  if (path.length === 0) return op === 'wrap' ? [copy] : value;
  const parent = path.slice(0, -1).reduce<Json>((v, k) => (v as Record<string | number, Json>)[k]!, copy) as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  if (op === 'delete') delete parent[key];
  else if (op === 'add') parent[`${String(key)}_x`] = value;
  else if (op === 'wrap') parent[key] = [parent[key]];
  else parent[key] = value;
  return copy;
}

const APP = { id: '/hostile/app-1', cmd: 'sleep 1', instances: 0, cpus: 0.01, mem: 8 };

/**
 * A body the route would accept (or nearly), for mutation. Creates use ids under `/hostile`, and
 * instances 0, so that an accepted body launches nothing.
 */
export function seedBody(route: Route): Json {
  const { method, url } = route;
  if (url === '/api/v1/scheduler') return { type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'nobody', name: 'hostile' } } };
  if (url === '/api/v1') return { type: 'GET_HEALTH' };
  if (url === '/v2/apps' && method === 'POST') return APP;
  if (url === '/v2/apps') return [APP];
  if (url.startsWith('/v2/apps/')) return { cmd: 'sleep 2', instances: 0 };
  if (url.startsWith('/v2/groups')) return { id: '/hostile/group', apps: [{ ...APP, id: '/hostile/group/app' }] };
  if (url === '/v2/tasks/delete') return { ids: ['hostile.task-1'] };
  if (url === '/ci/v1/jobs/:name') return { repo: '/nonexistent/repo', pipeline: 'steps:\n  - name: s\n    run: echo hi\n', triggers: {} };
  if (url === '/ci/v1/executors/:label') return { cpus: 0.1, mem: 64, max: 1 };
  if (url.startsWith('/ci/v1/hooks/')) return { ref: 'refs/heads/main', after: '0'.repeat(40), repository: { clone_url: '/nonexistent' } };
  if (url.startsWith('/ci/v1/jobs/:name/builds') && method === 'POST') return { params: { A: '1' } };
  return {};
}

/** The path of `route` with its parameters (`:name`, `*`) filled with hostile text. */
function pathArb(route: Route): fc.Arbitrary<string> {
  const parts = route.url.split('/').map((part) => {
    if (part.startsWith(':')) return urlText;
    if (part === '*') return fc.array(urlText, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
    return fc.constant(part);
  });
  const query = fc.oneof(
    { weight: 3, arbitrary: fc.constant('') },
    { weight: 2, arbitrary: fc.array(fc.tuple(fc.constantFrom('embed', 'force', 'path', 'offset', 'length', 'start', 'label', 'tree', 'depth', 'wait', 'scale', 'host', 'status', 'partialUpdate', 'delay'), urlText), { minLength: 1, maxLength: 4 }).map((kv) => '?' + kv.map(([k, v]) => `${k}=${v}`).join('&')) },
    { weight: 1, arbitrary: urlText.map((q) => `?${q}`) },
  );
  return fc.tuple(fc.tuple(...parts), query).map(([segments, q]) => segments.join('/') + q);
}

interface Body {
  body: (() => Buffer) | undefined;
  contentType: string | undefined;
  kind: string;
}

const json = (value: unknown, kind: string): Body => ({ body: () => Buffer.from(JSON.stringify(value) ?? 'null'), contentType: 'application/json', kind });
const raw = (text: () => string | Buffer, kind: string, contentType = 'application/json'): Body => ({
  body: () => {
    const t = text();
    return typeof t === 'string' ? Buffer.from(t) : t;
  },
  contentType,
  kind,
});

/** Bodies for a route that takes one; `heavy` adds the sizes that a long run tries (a million elements). */
function bodyArb(route: Route, heavy: boolean): fc.Arbitrary<Body> {
  const seed = seedBody(route);
  const seedText = JSON.stringify(seed);
  const big = heavy ? 1_000_000 : 50_000;
  return fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.nat(), hostileJsonValue, fc.constantFrom('replace', 'delete', 'add', 'wrap') as fc.Arbitrary<'replace' | 'delete' | 'add' | 'wrap'>).map(([pick, v, op]) => json(mutate(seed, pick, v, op), `mutated body (${op})`)) },
    { weight: 2, arbitrary: fc.constant(json(seed, 'seed body')) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => json(v, 'random JSON')) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: heavy ? 500_000 : 100_000 }).map((n) => raw(() => '['.repeat(n) + ']'.repeat(n), `deep array nesting ${n}`)) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: heavy ? 200_000 : 50_000 }).map((n) => raw(() => '{"a":'.repeat(n) + '1' + '}'.repeat(n), `deep object nesting ${n}`)) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 100_000 }).map((n) => raw(() => `{"id":${'['.repeat(n)}1${']'.repeat(n)},"apps":${'['.repeat(n)}${']'.repeat(n)}}`, `deep nesting in fields ${n}`)) },
    { weight: 2, arbitrary: fc.nat({ max: Math.max(0, seedText.length - 1) }).map((k) => raw(() => seedText.slice(0, k), 'truncated JSON')) },
    { weight: 1, arbitrary: fc.constant(raw(() => Buffer.concat([Buffer.from('{"id":"/x'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('","cmd":"\xe2\x82"}')]), 'bad UTF-8')) },
    { weight: 1, arbitrary: fc.constant(raw(() => '{"instances":1e400,"cpus":-1e-400,"mem":123456789012345678901234567890,"disk":-0,"ports":[1e20]}', 'huge numbers')) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: big }).map((n) => raw(() => `[${Array(n).fill(seedText).join(',')}]`, `array of ${n} bodies`)) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: big * 2 }).map((n) => raw(() => `[${Array(n).fill('1').join(',')}]`, `array of ${n} numbers`)) },
    { weight: 1, arbitrary: fc.integer({ min: 10_000, max: heavy ? 10_000_000 : 1_000_000 }).map((n) => raw(() => JSON.stringify({ ...(typeof seed === 'object' && seed !== null && !Array.isArray(seed) ? seed : {}), id: 'a'.repeat(n) }), `id of ${n} characters`)) },
    { weight: 1, arbitrary: fc.constant(raw(() => '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"id":"/hostile/proto"}', 'prototype keys')) },
    { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/xml').map((ct) => raw(() => seedText, `content type ${ct}`, ct)) },
    { weight: 1, arbitrary: fc.constant<Body>({ body: undefined, contentType: 'application/json', kind: 'JSON content type, no body' }) },
    { weight: 1, arbitrary: fc.constant(raw(() => '', 'empty JSON body')) },
    { weight: 1, arbitrary: fc.constant(raw(() => 'a=1&b=%ZZ&json=' + encodeURIComponent(seedText), 'form body', 'application/x-www-form-urlencoded')) },
  );
}

const HEADER_NAMES = ['Mesos-Stream-Id', 'Accept', 'X-Hub-Signature-256', 'X-Gitea-Signature', 'X-GitHub-Event', 'Last-Event-ID', 'Range', 'If-None-Match', 'Jenkins-Crumb'];

/** Every hostile request for `route`. */
export function requestArb(route: Route, heavy: boolean): fc.Arbitrary<HostileRequest> {
  const takesBody = route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH' || route.method === 'DELETE';
  const body: fc.Arbitrary<Body> = takesBody ? bodyArb(route, heavy) : fc.constant({ body: undefined, contentType: undefined, kind: 'no body' });
  const extraHeaders = fc.dictionary(fc.constantFrom(...HEADER_NAMES), fc.oneof(urlText, fc.constantFrom('text/event-stream', 'application/json', 'sha256=00', 'bytes=0-1', 'bytes=-1', 'bytes=99999999999999999999-')), { maxKeys: 2 });
  return fc.tuple(pathArb(route), body, extraHeaders).map(([path, b, extra]) => {
    const headers: Record<string, string> = { ...extra };
    if (b.contentType !== undefined && b.body !== undefined) headers['content-type'] = b.contentType;
    else if (b.contentType !== undefined && takesBody) headers['content-type'] = b.contentType;
    return { route, method: route.method, path, headers, body: b.body, kind: b.kind };
  });
}

import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import type { RegExpEngine } from 'ajv/dist/types/index.js';
import addFormats from 'ajv-formats';
import marathonAppSchema from './schema/AppDefinition.json' with { type: 'json' };
import { patternHazard } from '../kit/constraints-pattern.ts';
import { marathonPath, type MarathonErrorCollector } from './marathon-error.ts';
import { matchesPathType, PATH_TYPE_PATTERN } from './path-id.ts';

/**
 * Marathon's AppDefinition JSON Schema (schema/AppDefinition.json, kept byte for byte as Marathon
 * ships it) with the amendments below, applied here in code so that each one is visible and says why.
 */
function amendedSchema(): SchemaObject {
  const schema = structuredClone(marathonAppSchema) as SchemaObject;
  // 1. `$schema` names "http://json-schema.org/schema#", which Ajv 8 does not know; the schema is
  //    draft-04/07 compatible, which is Ajv's default dialect.
  delete schema['$schema'];
  // 2. Constraints: the schema pins the operator to an enum without IS (added in Marathon 1.7, and
  //    in Marathon's own constraint.raml) and reports a bad one as a bare enum error. Here a
  //    constraint only has to be an array of strings; app-definition.ts checks arity, operator and
  //    value with Marathon's own messages ("Constraint operator must be one of ...").
  const properties = schema['properties'] as Record<string, SchemaObject>;
  properties['constraints'] = { type: 'array', items: { type: 'array', items: { type: 'string' } } };
  // 3. Ids (`pathType`): Marathon's pattern, run by a backtracking engine, takes exponential time
  //    on ids like 42 slashes and a `!` (issue 11: 33 s of blocked event loop for 82 bytes). The
  //    same language is checked by a one-pass function (path-id.ts matchesPathType), as a format.
  const definitions = schema['definitions'] as Record<string, SchemaObject>;
  const { pattern: _pathPattern, ...pathType } = definitions['pathType']!;
  definitions['pathType'] = { ...pathType, format: PATH_TYPE_FORMAT };
  // 4. `executor`: its pattern repeats a group holding a quantifier, which the guard below
  //    refuses; every executor but "" and "//cmd" is refused as unsupported (UNSUPPORTED_FIELDS).
  const { pattern: _executorPattern, ...executor } = properties['executor']!;
  properties['executor'] = executor;
  // 5. File-based secrets (Marathon 1.5's AppSecretVolume, `{"containerPath", "secret"}`, in
  //    Marathon's volumes.raml) postdate this copy of the schema: a volume may name a secret.
  const volumeItems = ((properties['container'] as SchemaObject)['properties'] as Record<string, SchemaObject>)['volumes']!['items'] as SchemaObject;
  (volumeItems['properties'] as Record<string, SchemaObject>)['secret'] = { type: 'string', minLength: 1, description: 'References the secret (a key of /secrets) written at containerPath' };
  return schema;
}

const PATH_TYPE_FORMAT = 'marathon-path';

/**
 * Ajv's regex engine for schema patterns: V8's, behind patternHazard (kit/constraints-pattern.ts).
 * A pattern it refuses fails the schema's compilation (a programming error, found by any test).
 */
const guardedRegExp: RegExpEngine = Object.assign(
  (pattern: string, flags: string): RegExp => {
    const hazard = patternHazard(pattern);
    if (hazard !== undefined) throw new TypeError(`schema pattern ${pattern} ${hazard}`);
    return new RegExp(pattern, flags);
  },
  { code: 'new RegExp' },
);

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    // allErrors: Marathon reports every problem at once. strict: false because Marathon's schema
    // uses tuple `items` and an `items` on an object (healthChecks[].command) that strict mode
    // refuses; they are harmless. verbose: errors carry the data and schema, used below.
    // code.regExp: every `pattern` and `patternProperties` of the schema is compiled through a
    // guard that refuses, when the schema is compiled, shapes that can take exponential time.
    const ajv = new Ajv({ allErrors: true, strict: false, verbose: true, code: { regExp: guardedRegExp } });
    addFormats.default(ajv, ['date-time']);
    ajv.addFormat(PATH_TYPE_FORMAT, { type: 'string', validate: matchesPathType });
    compiled = ajv.compile(amendedSchema());
  }
  return compiled;
}

/** What `AppDefinition must either contain one of 'cmd' or 'args' ...` says in Marathon. */
export const CMD_ARGS_OR_CONTAINER = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.";

/**
 * Validates a parsed JSON value against Marathon's app schema. Each problem goes into `errors` at
 * its Marathon path, unless that path (or a parent of it) already has errors: the unsupported-field
 * check runs first, and a field refused as unsupported needs no second, vaguer complaint.
 * Returns true when the value conforms.
 *
 * Messages follow Marathon where Marathon has a stable text ("error.path.missing" and
 * "error.expected.js<type>" from its JSON reader, "must fully match regular expression ..." from
 * its validator); range errors read "must be >= 0".
 */
export function validateAppSchema(json: unknown, errors: MarathonErrorCollector): boolean {
  const validate = validator();
  if (validate(json)) return true;
  // Filter first, add after: errors of one path must not hide each other.
  const found = marathonErrors(json, validate.errors ?? []).filter(({ path }) => !errors.covers(path));
  for (const { path, message } of found) errors.add(path, message);
  return false;
}

function marathonErrors(json: unknown, all: ErrorObject[]): { path: string; message: string }[] {
  const dropped = new Set<ErrorObject>();
  const out: { path: string; message: string }[] = [];
  // A failed oneOf (env values, unreachableStrategy) makes Ajv report every branch's errors. Keep
  // those of the branch whose type the value has; when no branch has it, say which types would do.
  for (const oneOf of all.filter((e) => e.keyword === 'oneOf')) {
    dropped.add(oneOf);
    const branches = (Array.isArray(oneOf.schema) ? oneOf.schema : []) as SchemaObject[];
    const kind = jsonType(oneOf.data);
    const chosen = branches.findIndex((b) => typeAccepts(b['type'], kind, oneOf.data));
    for (const e of all) {
      if (e.schemaPath.startsWith(`${oneOf.schemaPath}/`) && (chosen < 0 || !e.schemaPath.startsWith(`${oneOf.schemaPath}/${chosen}/`))) dropped.add(e);
    }
    if (chosen < 0) {
      const path = toMarathonPath(json, oneOf.instancePath);
      for (const b of branches) for (const t of typeList(b['type'])) out.push({ path, message: expected(t) });
    }
  }
  for (const e of all) {
    if (dropped.has(e)) continue;
    out.push({ path: toMarathonPath(json, e.instancePath, extraSegment(e)), message: messageOf(e) });
  }
  return out;
}

/** The property a `required` or `additionalProperties` error is about: the path names it. */
function extraSegment(e: ErrorObject): string | undefined {
  if (e.keyword === 'required') return String((e.params as { missingProperty: string }).missingProperty);
  if (e.keyword === 'additionalProperties') return String((e.params as { additionalProperty: string }).additionalProperty);
  return undefined;
}

function messageOf(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return 'error.path.missing';
    case 'additionalProperties':
      return 'unknown field (not part of Marathon\'s app definition)';
    case 'type': {
      const wanted = typeList(p['type']);
      // Play's reader says "error.expected.int" for 1.5 where an integer is wanted.
      if (wanted.includes('integer') && typeof e.data === 'number') return 'error.expected.int';
      return expected(wanted[0] ?? 'object');
    }
    case 'minimum':
      return `must be >= ${String(p['limit'])}`;
    case 'maximum':
      return `must be <= ${String(p['limit'])}`;
    case 'exclusiveMinimum':
      return `must be > ${String(p['limit'])}`;
    case 'exclusiveMaximum':
      return `must be < ${String(p['limit'])}`;
    case 'minLength':
      return p['limit'] === 1 ? 'must not be empty' : `must have at least ${String(p['limit'])} characters`;
    case 'pattern':
      return `must fully match regular expression '${String(p['pattern'])}'`;
    case 'enum':
      return `must be one of: ${(p['allowedValues'] as unknown[]).map(String).join(', ')}`;
    case 'format':
      if (p['format'] === PATH_TYPE_FORMAT) return `must fully match regular expression '${PATH_TYPE_PATTERN}'`;
      return p['format'] === 'date-time' ? 'error.expected.date.isoformat' : `must be a ${String(p['format'])}`;
    case 'not':
      // The only `not` in the schema is at the top: cmd and args together.
      return e.instancePath === '' ? CMD_ARGS_OR_CONTAINER : (e.message ?? 'is not valid');
    default:
      return e.message ?? 'is not valid';
  }
}

/** Play's name for a JSON type, as in its reader errors ("error.expected.jsnumber"). */
function expected(type: string): string {
  return `error.expected.js${type === 'integer' ? 'number' : type}`;
}

function typeList(type: unknown): string[] {
  return Array.isArray(type) ? type.map(String) : typeof type === 'string' ? [type] : [];
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function typeAccepts(type: unknown, kind: string, data: unknown): boolean {
  return typeList(type).some((t) => t === kind || (t === 'integer' && kind === 'number' && Number.isInteger(data)));
}

/**
 * Turns Ajv's JSON Pointer (`/healthChecks/0/portIndex`) into Marathon's path
 * (`/healthChecks(0)/portIndex`), walking the data to tell array indices from property names.
 */
function toMarathonPath(json: unknown, pointer: string, extra?: string): string {
  const segments: (string | number)[] = [];
  let cur: unknown = json;
  const raw = pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  for (const s of raw) {
    if (Array.isArray(cur)) {
      segments.push(Number(s));
      cur = cur[Number(s)];
    } else {
      segments.push(s);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[s] : undefined;
    }
  }
  if (extra !== undefined) segments.push(extra);
  return marathonPath(segments);
}

import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { InvalidStoredDocument } from '../core/document-reader.ts';

/**
 * Reads a stored JSON document whose type is one of the protocol's TypeBox schemas (a `TaskInfo`,
 * a `FrameworkInfo`, `Resource[]`, ...): checks it against the schema (compiled once per schema,
 * allocation-free when the document is good) and returns it typed, or throws
 * `InvalidStoredDocument` naming the document (`document()`, called only then) and the first field
 * that does not match. Unknown fields pass, as Mesos's JSON parser lets them. `at` is the path of
 * `doc` inside the document, when it is a field of a larger one (`framework`).
 */
export function readBySchema<S extends TSchema>(schema: S, doc: unknown, document: () => string, at = ''): Static<S> {
  let check = checks.get(schema);
  if (check === undefined) {
    check = TypeCompiler.Compile(schema);
    checks.set(schema, check);
  }
  if (check.Check(doc)) return doc as Static<S>;
  const first = check.Errors(doc).First();
  const inner = first === undefined ? '' : fieldPath(first.path);
  const field = at === '' || inner === '' ? at + inner : inner.startsWith('[') ? at + inner : `${at}.${inner}`;
  const problem =
    first === undefined ? 'does not match its schema' : first.value === undefined ? 'is missing' : `does not match: ${first.message.toLowerCase()}, not ${describeValue(first.value)}`;
  throw new InvalidStoredDocument(document(), field, problem);
}

const checks = new Map<TSchema, TypeCheck<TSchema>>();

/** A JSON pointer (`/resources/0/name`) as a field path (`resources[0].name`). */
export function fieldPath(pointer: string): string {
  let path = '';
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replaceAll('~1', '/').replaceAll('~0', '~');
    path += /^\d+$/.test(key) ? `[${key}]` : path === '' ? key : `.${key}`;
  }
  return path;
}

function describeValue(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v).slice(0, 40);
  return Array.isArray(v) ? 'an array' : 'an object';
}

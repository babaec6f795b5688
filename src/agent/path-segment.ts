import { createHash } from 'node:crypto';

/**
 * One path segment (a directory name) for an id that came over the wire: framework and task ids
 * may be anything a string holds (`..`, `/`, 300 characters, a lone surrogate). The segment is a
 * readable prefix of the id (its characters outside [A-Za-z0-9_.-] replaced by `_`, at most 60,
 * never starting with a dot) and 16 hex digits of the SHA-256 of the whole id, so that:
 *
 * - it is never `.` or `..`, never holds a separator, and is at most 77 bytes (under NAME_MAX);
 * - two different ids never share a segment (the hash covers the id's UTF-16 code units, so even
 *   ids that differ only by a lone surrogate differ);
 * - every id has one (the function is total: it never throws).
 *
 * Everything that turns an id into a path uses it: sandboxes, task checkpoints and update streams.
 * Nothing decodes a segment back into an id: the ids are stored inside the files.
 */
export function pathSegment(id: string): string {
  const prefix = id
    .slice(0, PREFIX_CHARS)
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .replace(/^\./, '_');
  // UTF-16LE keeps every code unit as it is; UTF-8 would turn lone surrogates into U+FFFD.
  const hash = createHash('sha256').update(Buffer.from(id, 'utf16le')).digest('hex').slice(0, HASH_HEX);
  return `${prefix}-${hash}`;
}

const PREFIX_CHARS = 60;
const HASH_HEX = 16;

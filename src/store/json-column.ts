/**
 * JSON columns: values are kept as JSON text (portable: SQLite and PostgreSQL both take `text`),
 * written by `toJson` and read back by `fromJson` and the owner's reader of the document.
 */

/**
 * JSON text of a value. Throws on what JSON cannot hold (a BigInt, a cycle) and on `undefined`,
 * rather than storing something that would not read back as the value that was saved.
 */
export function toJson(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new TypeError(`cannot store ${typeof value} as JSON`);
  return text;
}

/**
 * Parses a JSON column, as `unknown`: what comes back may be from another version of Slipway, or
 * damaged, so its owner's reader checks it (`readTaskInfo`, `readStoredApp`, `readBuild`, ...)
 * before anything trusts its type.
 */
export function fromJson(text: string): unknown {
  return JSON.parse(text) as unknown;
}

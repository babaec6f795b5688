/**
 * Ids that clients choose (framework ids on resubscription, task ids, agent ids) end up in file
 * paths, URLs and log lines, so they are checked as Mesos's `validateID` does, and a little more:
 * 1 to 255 characters, well-formed text, not `.` or `..`, and no `/`, `\`, whitespace or control
 * characters. Answers why an id is refused, or undefined when it is fine.
 */
export function invalidIdReason(id: string): string | undefined {
  if (id.length === 0) return 'must not be empty';
  if (id.length > 255) return `must be at most 255 characters (it has ${id.length})`;
  if (!id.isWellFormed()) return 'must be well-formed text (it holds a lone surrogate)';
  if (id === '.' || id === '..') return `must not be '${id}'`;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  const bad = /[/\\\s\u0000-\u001f\u007f]/.exec(id);
  if (bad !== null) return `must not contain ${JSON.stringify(bad[0])}`;
  return undefined;
}

/**
 * Reads stored documents one by one at a framework's start: each that reads is used; one that
 * does not (damaged, or written under rules since tightened) is left out and reported, so that
 * the framework starts without it rather than not at all. What it described is then unknown to
 * the framework, which is repaired the usual way: a task it does not know is killed by
 * reconciliation, a build whose record is gone is not resumed.
 */
export function loadDocuments<D, T>(items: Iterable<D>, read: (item: D) => T, use: (value: T) => void, skipped: (item: D, why: string) => void): void {
  for (const item of items) {
    let value: T;
    try {
      value = read(item);
    } catch (e) {
      skipped(item, e instanceof Error ? e.message : String(e));
      continue;
    }
    use(value);
  }
}

import type { Kysely, Transaction } from 'kysely';
import { StoreWriteFailed } from './errors.ts';

/**
 * Applies a batch of changes in one transaction, in order: all of them or, if one fails, none.
 *
 * Throws `StoreWriteFailed` naming the change that failed (by `describe`, which must not throw;
 * if it does, the change is called malformed), or the begin or commit of the transaction.
 */
export async function writeBatch<DB, C>(
  db: Kysely<DB>,
  changes: readonly C[],
  apply: (trx: Transaction<DB>, change: C) => Promise<void>,
  describe: (change: C) => string,
  storeName: string,
): Promise<void> {
  if (changes.length === 0) return;
  // Where the transaction was when it failed, for the error message.
  let step: number | 'begin' | 'commit' = 'begin';
  try {
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < changes.length; i++) {
        step = i;
        await apply(trx, changes[i] as C);
      }
      step = 'commit';
    });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const where =
      typeof step === 'number'
        ? `change ${step + 1} of ${changes.length} (${safely(describe, changes[step] as C)}) failed`
        : `the ${step} of a batch of ${changes.length} changes failed`;
    throw new StoreWriteFailed(`${storeName}: ${where}; nothing of the batch was written: ${reason}`, err);
  }
}

/** `describe(change)`, for a change that may be malformed (that may be why the write failed). */
function safely<C>(describe: (change: C) => string, change: C): string {
  try {
    return describe(change);
  } catch {
    return 'a malformed change';
  }
}

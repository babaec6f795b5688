import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sqliteDatabases } from './sqlite-database.ts';
import type { StoreDatabases } from './store-database.ts';

/**
 * The kinds of database every store conformance suite runs against (master-, apps- and
 * ci-store.conformance.test.ts), as Kysely runs its tests `for (const dialect of DIALECTS)`. A
 * target is a factory of `store-database.ts` plus what the suites need around it: fresh locations,
 * and a way for a child process to open the same location. The stores are the same classes for
 * every target; a new kind of database (PostgreSQL: a database or schema per location) is one
 * more entry here, and every suite runs it. Used by tests only.
 */
export interface StoreTarget {
  name: string;
  /** A new, empty location of its own, for one test (SQLite: a temp dir). */
  fresh(): Promise<string>;
  /** The factory of the databases at `location`. */
  databases(location: string): StoreDatabases;
  /**
   * A JavaScript expression, valid inside an ES module body run by `node --import tsx
   * --input-type=module -e` (top-level `await` allowed), whose value is `databases(location)`.
   */
  childDatabases(location: string): string;
  /** Deletes a location made by `fresh` (its stores are closed by then). */
  remove(location: string): Promise<void>;
}

/** The URL of a module of this folder, for `import()` in a child program. */
export function storeModuleUrl(file: string): string {
  return pathToFileURL(fileURLToPath(new URL(`./${file}`, import.meta.url))).href;
}

const SQLITE: StoreTarget = {
  name: 'SQLite',
  fresh: () => mkdtemp(join(tmpdir(), 'slipway-store-')),
  databases: (dataDir) => sqliteDatabases(dataDir),
  childDatabases: (dataDir) =>
    `(await import(${JSON.stringify(storeModuleUrl('sqlite-database.ts'))})).sqliteDatabases(${JSON.stringify(dataDir)})`,
  remove: (dataDir) => rm(dataDir, { recursive: true, force: true }),
};

export const STORE_TARGETS: readonly StoreTarget[] = [SQLITE];

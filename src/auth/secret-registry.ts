import type { Clock } from '../core/clock.ts';
import { SlipwayError } from '../core/errors.ts';
import { secretName } from '../core/secret-name.ts';

/**
 * The secret store (issue 12 §4; docs/security.md): named secrets that apps, CI jobs and tasks
 * reference by name, kept sealed (AES-256-GCM, the installation's secret key) at rest and in
 * memory, opened only to hand a value to the task that references it (`value`). Write-only
 * through the API: a secret is listed with its name, version and who wrote it, never its value.
 * Names: core/secret-name.ts.
 */

export interface StoredSecret {
  name: string;
  /** The value sealed by the store's sealer under `secretSealContext(name)`. */
  sealed: string;
  version: number;
  createdAt: number;
  updatedAt: number;
  /** The token name that wrote the current version. */
  updatedBy: string;
}

/** What a secret store persists (src/store implements it in auth.db). */
export interface SecretStore {
  loadSecrets(): Promise<StoredSecret[]>;
  saveSecret(secret: StoredSecret): Promise<void>;
  deleteSecret(name: string): Promise<void>;
}

/** Seals and opens values (lib's SecretBox); `open` throws for a value it cannot open. */
export interface SecretSealer {
  seal(plaintext: string, context: string): string;
  open(sealed: string, context: string): string;
}

/** A secret as the API shows it: everything but its value. */
export interface SecretView {
  name: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

export class InvalidSecret extends SlipwayError {
  readonly code = 'INVALID_SECRET';
  readonly status = 400;
}

export class SecretNotFound extends SlipwayError {
  readonly code = 'SECRET_NOT_FOUND';
  readonly status = 404;
}

/** A secret is a password, a key, a registry's config.json: 64 KiB is plenty, and bounds memory. */
export const MAX_SECRET_BYTES = 64 * 1024;

export function secretSealContext(name: string): string {
  return `secret store ${name}`;
}

function viewOf(s: StoredSecret): SecretView {
  return { name: s.name, version: s.version, createdAt: new Date(s.createdAt).toISOString(), updatedAt: new Date(s.updatedAt).toISOString(), updatedBy: s.updatedBy };
}

/**
 * The secrets of a cluster, in memory (sealed) for a synchronous lookup at launch, written
 * through to `store` before a change answers.
 */
export class SecretRegistry {
  private readonly byName = new Map<string, StoredSecret>();

  private constructor(
    private readonly store: SecretStore,
    private readonly sealer: SecretSealer,
    private readonly clock: Clock,
  ) {}

  /**
   * Loads the stored secrets; a secret that does not open with this key makes the start fail
   * (naming it), as CI does: serving launches that would then fail one by one helps nobody.
   */
  static async open(store: SecretStore, sealer: SecretSealer, clock: Clock): Promise<SecretRegistry> {
    const r = new SecretRegistry(store, sealer, clock);
    const unopened: string[] = [];
    for (const s of await store.loadSecrets()) {
      try {
        sealer.open(s.sealed, secretSealContext(s.name));
      } catch {
        unopened.push(s.name);
      }
      r.byName.set(s.name, s);
    }
    if (unopened.length > 0) {
      throw new Error(`the secret store's secrets do not open with this secret key (${unopened.slice(0, 5).join(', ')}${unopened.length > 5 ? ', ...' : ''}): start the master with the key they were sealed with (--secret-key-file, or the secret.key of its data dir)`);
    }
    return r;
  }

  list(): SecretView[] {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name)).map(viewOf);
  }

  get(reference: string): SecretView {
    const name = this.nameOf(reference);
    const s = this.byName.get(name);
    if (s === undefined) throw new SecretNotFound(`no secret '${name}' in the secret store`);
    return viewOf(s);
  }

  has(reference: string): boolean {
    const n = secretName(reference);
    return 'name' in n && this.byName.has(n.name);
  }

  /** Creates or replaces a secret; answers its view and whether it is new. */
  async put(reference: string, value: unknown, by: string): Promise<{ view: SecretView; created: boolean }> {
    const name = this.nameOf(reference);
    if (typeof value !== 'string') throw new InvalidSecret('value must be a string (the secret; binary data base64-encoded)');
    // An empty secret is a mistake (a pipe whose producer failed), and as a key it would sign for anyone.
    if (value === '') throw new InvalidSecret('value is empty: a secret has at least one character');
    if (Buffer.byteLength(value) > MAX_SECRET_BYTES) throw new InvalidSecret(`value is ${Buffer.byteLength(value)} bytes; a secret is at most ${MAX_SECRET_BYTES}`);
    if (value.includes('\u0000')) throw new InvalidSecret('value may not hold a NUL character (it could not be passed in an environment variable)');
    const now = this.clock.now();
    const before = this.byName.get(name);
    const next: StoredSecret = { name, sealed: this.sealer.seal(value, secretSealContext(name)), version: (before?.version ?? 0) + 1, createdAt: before?.createdAt ?? now, updatedAt: now, updatedBy: by };
    await this.store.saveSecret(next);
    this.byName.set(name, next);
    return { view: viewOf(next), created: before === undefined };
  }

  async delete(reference: string): Promise<void> {
    const name = this.nameOf(reference);
    if (!this.byName.has(name)) throw new SecretNotFound(`no secret '${name}' in the secret store`);
    await this.store.deleteSecret(name);
    this.byName.delete(name);
  }

  /**
   * The value of a secret, for the one place that hands it on: the master's LAUNCH to the agent
   * that runs the task referencing it (and CI's build of a job that does). Undefined when there
   * is no such secret.
   */
  value(reference: string): string | undefined {
    const n = secretName(reference);
    if (!('name' in n)) return undefined;
    const s = this.byName.get(n.name);
    return s === undefined ? undefined : this.sealer.open(s.sealed, secretSealContext(s.name));
  }

  private nameOf(reference: string): string {
    const n = secretName(reference);
    if ('problem' in n) throw new InvalidSecret(n.problem);
    return n.name;
  }
}

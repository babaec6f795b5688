import type { AppDefinition } from '../app-definition.ts';

/**
 * The declared apps as a deploy's `edit` changes them: a Map over the state's declared apps that
 * copies nothing. Writes go to an overlay; reads see the overlay over the base. `changed` names
 * every id set or deleted, so that planning a deploy looks at those apps and not at all 10,000.
 *
 * Contract: the base is not changed while the draft is in use (it is read inside one turn).
 * Iteration order is the base's, then ids new to it, as a copied Map's would be.
 */
export class DraftApps implements Map<string, AppDefinition> {
  readonly #base: ReadonlyMap<string, AppDefinition>;
  /** undefined: deleted. */
  readonly #overlay = new Map<string, AppDefinition | undefined>();
  #size: number;

  constructor(base: ReadonlyMap<string, AppDefinition>) {
    this.#base = base;
    this.#size = base.size;
  }

  /** Ids set or deleted since the draft was made (set back to the same value included). */
  get changed(): ReadonlySet<string> {
    return new Set(this.#overlay.keys());
  }

  get size(): number {
    return this.#size;
  }

  get [Symbol.toStringTag](): string {
    return 'DraftApps';
  }

  get(id: string): AppDefinition | undefined {
    return this.#overlay.has(id) ? this.#overlay.get(id) : this.#base.get(id);
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  set(id: string, def: AppDefinition): this {
    if (!this.has(id)) this.#size++;
    this.#overlay.set(id, def);
    return this;
  }

  delete(id: string): boolean {
    if (!this.has(id)) return false;
    this.#overlay.set(id, undefined);
    this.#size--;
    return true;
  }

  clear(): void {
    for (const id of this.keys()) this.delete(id);
  }

  *entries(): MapIterator<[string, AppDefinition]> {
    for (const [id, def] of this.#base) {
      const now = this.#overlay.has(id) ? this.#overlay.get(id) : def;
      if (now !== undefined) yield [id, now];
    }
    for (const [id, def] of this.#overlay) if (def !== undefined && !this.#base.has(id)) yield [id, def];
  }

  *keys(): MapIterator<string> {
    for (const [id] of this.entries()) yield id;
  }

  *values(): MapIterator<AppDefinition> {
    for (const [, def] of this.entries()) yield def;
  }

  [Symbol.iterator](): MapIterator<[string, AppDefinition]> {
    return this.entries();
  }

  forEach(fn: (value: AppDefinition, key: string, map: Map<string, AppDefinition>) => void, thisArg?: unknown): void {
    for (const [id, def] of this.entries()) fn.call(thisArg, def, id, this);
  }
}

/**
 * Faults of a store's writes, for tests of what a component does when its store refuses: a real
 * store wrapped so that, while `failing` is set, every `write` rejects before reaching it and so
 * writes nothing, which is the contract every Slipway store keeps for a failed write (a batch is
 * written whole or not at all). Reads and everything else go to the real store.
 */
export class WriteFaults {
  /** Why writes fail now (undefined: they go through). */
  failing: string | undefined;
  /** Writes refused so far. */
  refused = 0;

  fail(reason: string): void {
    this.failing = reason;
  }

  heal(): void {
    this.failing = undefined;
  }

  /** `store` with its writes subject to these faults. */
  wrap<T extends { write(changes: never): Promise<void> }>(store: T): T {
    return new Proxy(store, {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop, target);
        if (prop === 'write') {
          return (changes: never) => {
            if (this.failing === undefined) return target.write(changes);
            this.refused++;
            return Promise.reject(new Error(`injected fault: ${this.failing}; nothing of the batch was written`));
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}

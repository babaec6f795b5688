import type { PipelineStep } from './pipeline.ts';

// The dependency graph of a pipeline's steps: each step points at the steps it waits for. Pure
// functions, iterative (no recursion), so that a pipeline of any length is checked in linear time
// without growing the stack.

/** Edges: a step's name to the names it waits for. Names not in `names` are ignored. */
export type DependencyEdges = ReadonlyMap<string, readonly string[]>;

/**
 * A topological order of `names` (each after everything it waits for, ties in the given order),
 * and the names that have none because they are on a cycle or wait, directly or not, for one.
 * Kahn's algorithm.
 */
export function orderSteps(names: readonly string[], edges: DependencyEdges): { order: string[]; blocked: string[] } {
  const known = new Set(names);
  const waitingFor = new Map<string, number>();
  const waiters = new Map<string, string[]>();
  for (const name of names) {
    const deps = [...new Set(edges.get(name) ?? [])].filter((d) => known.has(d));
    waitingFor.set(name, deps.length);
    for (const d of deps) {
      const list = waiters.get(d);
      if (list === undefined) waiters.set(d, [name]);
      else list.push(name);
    }
  }
  const order: string[] = [];
  const ready = names.filter((n) => waitingFor.get(n) === 0);
  // A FIFO over an array with a moving head: ready steps come out in the order they became ready.
  for (let head = 0; head < ready.length; head++) {
    const name = ready[head] as string;
    order.push(name);
    for (const w of waiters.get(name) ?? []) {
      const left = (waitingFor.get(w) ?? 0) - 1;
      waitingFor.set(w, left);
      if (left === 0) ready.push(w);
    }
  }
  const done = new Set(order);
  return { order, blocked: names.filter((n) => !done.has(n)) };
}

/** The steps of a pipeline in an order they can run one by one: each after all it depends on. */
export function topologicalOrder(steps: readonly Pick<PipelineStep, 'name' | 'dependsOn'>[]): string[] {
  const { order, blocked } = orderSteps(
    steps.map((s) => s.name),
    new Map(steps.map((s) => [s.name, s.dependsOn])),
  );
  if (blocked.length > 0) throw new Error(`steps on a cycle: ${blocked.join(', ')}`);
  return order;
}

/**
 * The cycles of the graph, each as the names on it in the order they wait for one another, the
 * first being the earliest of `names` on the cycle (`[a, b, c]`: a waits for b, b for c, c for a).
 * Disjoint cycles are each reported; of cycles that share a step, one stands for them all (fixing
 * it is the next step either way); at most `limit` of them. Empty when the graph is a DAG.
 */
export function findCycles(names: readonly string[], edges: DependencyEdges, limit = 20): string[][] {
  const known = new Set(names);
  const index = new Map(names.map((n, i) => [n, i]));
  const depsOf = (n: string): string[] => (edges.get(n) ?? []).filter((d) => known.has(d));
  const cycles: string[][] = [];
  let remaining = names;
  for (;;) {
    // Every blocked step waits for at least one other blocked step (or it would have been
    // ordered), so walking from one through blocked steps must come back to a step already seen.
    const blockedList = orderSteps(remaining, edges).blocked;
    if (blockedList.length === 0 || cycles.length >= limit) return cycles;
    const blocked = new Set(blockedList);
    const first = blockedList[0] as string;
    const walk: string[] = [];
    const at = new Map<string, number>();
    let current = first;
    while (!at.has(current)) {
      at.set(current, walk.length);
      walk.push(current);
      current = depsOf(current).find((d) => blocked.has(d)) as string;
    }
    const cycle = walk.slice(at.get(current));
    let start = 0;
    for (let i = 1; i < cycle.length; i++) {
      if ((index.get(cycle[i] as string) ?? 0) < (index.get(cycle[start] as string) ?? 0)) start = i;
    }
    const rotated = [...cycle.slice(start), ...cycle.slice(0, start)];
    cycles.push(rotated);
    const onCycle = new Set(rotated);
    remaining = remaining.filter((n) => !onCycle.has(n));
  }
}

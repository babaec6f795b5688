import { InvalidResources } from './errors.ts';

/**
 * The resource model: scalars (cpus, mem, disk, gpus, ...), ranges (ports) and sets, each either
 * unreserved (role `*`) or statically reserved for one role.
 *
 * `Resources` is an immutable value. Scalars are kept as integer thousandths (Mesos's fixed-point
 * rule), so any sequence of add and subtract is exact: 0.1 + 0.2 is 0.3, never
 * 0.30000000000000004. Ranges are kept normalized (sorted, disjoint, adjacent ones merged) in a
 * flat array `[b0, e0, b1, e1, ...]` and sets as sorted unique arrays, which keeps an agent's
 * resources a few small objects (the scheduler benchmark holds 50,000 of them).
 */

/** JSON shape of Mesos v1 `Resource` (the subset Slipway reads and writes). */
export interface ResourceJSON {
  name: string;
  type: 'SCALAR' | 'RANGES' | 'SET';
  scalar?: { value: number };
  ranges?: { range: { begin: number; end: number }[] };
  set?: { item: string[] };
  /** Pre-1.5 Mesos reservation field; read for compatibility, never written. */
  role?: string;
  reservations?: { type: 'STATIC' | 'DYNAMIC'; role: string; principal?: string }[];
  allocation_info?: { role: string };
}

/** The role of resources that are not reserved. */
export const UNRESERVED = '*';

type Entry =
  | { readonly kind: 'scalar'; readonly name: string; readonly role: string; readonly millis: number }
  | { readonly kind: 'ranges'; readonly name: string; readonly role: string; readonly ranges: readonly number[] }
  | { readonly kind: 'set'; readonly name: string; readonly role: string; readonly items: readonly string[] };

/** Converts a scalar to integer thousandths, rounding as Mesos does. */
export function toMillis(value: number): number {
  return Math.round(value * 1000);
}

/** Converts integer thousandths back to a number with at most three decimals. */
export function fromMillis(millis: number): number {
  return millis / 1000;
}

const ROLE_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9_.\-/]*$/;
const NAME_PATTERN = /^[a-zA-Z_][a-zA-Z0-9_\-.]*$/;

export class Resources {
  /** Shared empty value; Resources are immutable so one instance serves everyone. */
  static readonly EMPTY = new Resources([]);

  /** `toJSON(role)` results by role: offers of identical agents share one interned value. */
  private jsonCache: Map<string | undefined, ResourceJSON[]> | undefined;

  /** Whether any entry is reserved; when none is, every role's view is this value itself. */
  private readonly anyReserved: boolean;

  private constructor(private readonly entries: readonly Entry[]) {
    let reserved = false;
    for (const e of entries) if (e.role !== UNRESERVED) reserved = true;
    this.anyReserved = reserved;
  }

  // ---------------------------------------------------------------------------------------------
  // Construction

  /** A value holding only scalars, e.g. `Resources.scalars({ cpus: 1, mem: 128 })`. */
  static scalars(values: Record<string, number>, role: string = UNRESERVED): Resources {
    let out: Entry[] = [];
    for (const [name, value] of Object.entries(values)) {
      checkName(name);
      out = addEntry(out, scalarEntry(name, role, value));
    }
    return new Resources(out);
  }

  /** A value holding one ranges resource, e.g. `Resources.ranges('ports', [[31000, 31009]])`. */
  static ranges(name: string, ranges: readonly (readonly [number, number])[], role: string = UNRESERVED): Resources {
    checkName(name);
    return new Resources(addEntry([], rangesEntry(name, role, ranges.flat())));
  }

  /**
   * Parses the agent syntax of Mesos: `cpus:4;mem:8192;ports:[31000-32000];cpus(ci):2;zones:{a,b}`.
   * `name(role):value` is a static reservation for `role`. Throws InvalidResources with the
   * offending part named.
   */
  static parse(text: string): Resources {
    let out: Entry[] = [];
    for (const raw of text.split(';')) {
      const part = raw.trim();
      if (part === '') continue;
      const m = /^([^:()]+?)\s*(?:\(([^)]*)\))?\s*:\s*(.+)$/.exec(part);
      if (m === null) throw new InvalidResources(`resource '${part}' is not of the form name:value or name(role):value`);
      const name = m[1]!.trim();
      const role = m[2] === undefined ? UNRESERVED : m[2].trim();
      const value = m[3]!.trim();
      checkName(name);
      checkRole(role, part);
      if (value.startsWith('[')) {
        if (!value.endsWith(']')) throw new InvalidResources(`resource '${part}': ranges must end with ']'`);
        const flat: number[] = [];
        for (const r of value.slice(1, -1).split(',')) {
          const t = r.trim();
          if (t === '') continue;
          const rm = /^(\d+)\s*-\s*(\d+)$/.exec(t);
          if (rm === null) throw new InvalidResources(`resource '${part}': range '${t}' is not of the form begin-end`);
          flat.push(Number(rm[1]), Number(rm[2]));
        }
        out = addEntry(out, rangesEntry(name, role, flat, part));
      } else if (value.startsWith('{')) {
        if (!value.endsWith('}')) throw new InvalidResources(`resource '${part}': sets must end with '}'`);
        const items = value.slice(1, -1).split(',').map((s) => s.trim()).filter((s) => s !== '');
        out = addEntry(out, setEntry(name, role, items));
      } else {
        if (!/^[+]?(\d+(\.\d*)?|\.\d+)$/.test(value)) {
          throw new InvalidResources(`resource '${part}': '${value}' is not a non-negative number, a range list [a-b] or a set {a,b}`);
        }
        out = addEntry(out, scalarEntry(name, role, Number(value), part));
      }
    }
    return new Resources(out);
  }

  /** Reads Mesos v1 `Resource` JSON. Throws InvalidResources naming the index and the problem. */
  static fromJSON(json: unknown): Resources {
    if (!Array.isArray(json)) throw new InvalidResources('resources must be an array of Resource objects');
    let out: Entry[] = [];
    json.forEach((r: unknown, i: number) => {
      const where = `resources[${i}]`;
      if (typeof r !== 'object' || r === null) throw new InvalidResources(`${where} must be an object`);
      const res = r as Partial<ResourceJSON>;
      if (typeof res.name !== 'string') throw new InvalidResources(`${where}.name must be a string`);
      checkName(res.name, where);
      const role = roleOf(res, where);
      switch (res.type) {
        case 'SCALAR': {
          const v = res.scalar?.value;
          if (typeof v !== 'number') throw new InvalidResources(`${where}.scalar.value must be a number`);
          out = addEntry(out, scalarEntry(res.name, role, v, where));
          break;
        }
        case 'RANGES': {
          const list = res.ranges?.range ?? [];
          if (!Array.isArray(list)) throw new InvalidResources(`${where}.ranges.range must be an array`);
          const flat: number[] = [];
          for (const x of list as unknown[]) {
            const rr = x as { begin?: unknown; end?: unknown } | null;
            if (rr === null || typeof rr.begin !== 'number' || typeof rr.end !== 'number') {
              throw new InvalidResources(`${where}.ranges.range items must have numeric begin and end`);
            }
            flat.push(rr.begin, rr.end);
          }
          out = addEntry(out, rangesEntry(res.name, role, flat, where));
          break;
        }
        case 'SET': {
          const items = res.set?.item ?? [];
          if (!Array.isArray(items) || items.some((s) => typeof s !== 'string')) {
            throw new InvalidResources(`${where}.set.item must be an array of strings`);
          }
          out = addEntry(out, setEntry(res.name, role, items));
          break;
        }
        default:
          throw new InvalidResources(`${where}.type must be SCALAR, RANGES or SET`);
      }
    });
    return new Resources(out);
  }

  // ---------------------------------------------------------------------------------------------
  // Arithmetic

  isEmpty(): boolean {
    return this.entries.length === 0;
  }

  /** The sum of both values. */
  add(other: Resources): Resources {
    if (other.entries.length === 0) return this;
    if (this.entries.length === 0) return other;
    let out = this.entries.slice();
    for (const e of other.entries) out = addEntry(out, e);
    return new Resources(out);
  }

  /**
   * What is left of this value after taking `other` away. Saturating: a scalar never goes below
   * zero and only items present are removed, so `a.subtract(b).add(b)` equals `a` exactly when
   * `a.contains(b)`.
   */
  subtract(other: Resources): Resources {
    if (other === this) return Resources.EMPTY;
    if (other.entries.length === 0 || this.entries.length === 0) return this;
    const out: Entry[] = [];
    for (const e of this.entries) {
      const o = other.find(e);
      if (o === undefined) {
        out.push(e);
        continue;
      }
      const rest = subtractEntry(e, o);
      if (rest !== undefined) out.push(rest);
    }
    return new Resources(out);
  }

  /** True when every part of `other` is part of this value (same name, kind and role). */
  contains(other: Resources): boolean {
    for (const o of other.entries) {
      const e = this.find(o);
      if (e === undefined || !containsEntry(e, o)) return false;
    }
    return true;
  }

  equals(other: Resources): boolean {
    return this.contains(other) && other.contains(this);
  }

  // ---------------------------------------------------------------------------------------------
  // Views

  /** Only the resources reserved for `role`. */
  reserved(role: string): Resources {
    return this.filter((e) => e.role === role && role !== UNRESERVED);
  }

  /** Only the unreserved resources. */
  unreserved(): Resources {
    return this.filter((e) => e.role === UNRESERVED);
  }

  /** What a framework in `role` may be offered: the unreserved resources plus those reserved for it. */
  allocatableTo(role: string): Resources {
    if (!this.anyReserved) return this;
    return this.filter((e) => e.role === UNRESERVED || e.role === role);
  }

  /** The reservation roles present (never `*`). */
  reservationRoles(): string[] {
    const roles = new Set<string>();
    for (const e of this.entries) if (e.role !== UNRESERVED) roles.add(e.role);
    return [...roles];
  }

  /** The total of scalar `name` over all roles, as a number with at most three decimals. */
  scalar(name: string): number {
    return fromMillis(this.scalarMillis(name));
  }

  /** The total of scalar `name` over all roles, in thousandths. */
  scalarMillis(name: string): number {
    let sum = 0;
    for (const e of this.entries) if (e.kind === 'scalar' && e.name === name) sum += e.millis;
    return sum;
  }

  /** Calls `fn` for every scalar entry (name, thousandths); roles are not merged. */
  forEachScalar(fn: (name: string, millis: number) => void): void {
    for (const e of this.entries) if (e.kind === 'scalar') fn(e.name, e.millis);
  }

  /** The ranges of `name` over all roles as `[begin, end]` pairs. */
  ranges(name: string): [number, number][] {
    let flat: readonly number[] = [];
    for (const e of this.entries) if (e.kind === 'ranges' && e.name === name) flat = unionRanges(flat, e.ranges);
    const out: [number, number][] = [];
    for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
    return out;
  }

  /** How many values the ranges of `name` hold (e.g. the number of ports). */
  rangeCount(name: string): number {
    let n = 0;
    for (const e of this.entries) {
      if (e.kind === 'ranges' && e.name === name) for (let i = 0; i < e.ranges.length; i += 2) n += e.ranges[i + 1]! - e.ranges[i]! + 1;
    }
    return n;
  }

  /**
   * The same resources with every scalar capped so that `limit(name)` thousandths are not
   * exceeded; `limit` answers undefined for names without a cap. Used to keep a role within its
   * quota when an offer is made.
   */
  capScalars(limit: (name: string) => number | undefined): Resources {
    let changed = false;
    const out: Entry[] = [];
    const used = new Map<string, number>();
    for (const e of this.entries) {
      if (e.kind !== 'scalar') {
        out.push(e);
        continue;
      }
      const cap = limit(e.name);
      if (cap === undefined) {
        out.push(e);
        continue;
      }
      const already = used.get(e.name) ?? 0;
      const take = Math.max(0, Math.min(e.millis, cap - already));
      used.set(e.name, already + take);
      if (take !== e.millis) changed = true;
      if (take > 0) out.push({ ...e, millis: take });
    }
    return changed ? new Resources(out) : this;
  }

  /**
   * Mesos v1 `Resource` JSON. `allocationRole` adds `allocation_info` (as on offered resources).
   * The result is cached and may be shared by several callers: treat it as read-only.
   */
  toJSON(allocationRole?: string): ResourceJSON[] {
    const cached = this.jsonCache?.get(allocationRole);
    if (cached !== undefined) return cached;
    // A plain loop: offers are built from this on every allocation pass, for every agent.
    const out: ResourceJSON[] = new Array<ResourceJSON>(this.entries.length);
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      const r: ResourceJSON =
        e.kind === 'scalar'
          ? { name: e.name, type: 'SCALAR', scalar: { value: fromMillis(e.millis) } }
          : e.kind === 'ranges'
            ? { name: e.name, type: 'RANGES', ranges: { range: pairs(e.ranges) } }
            : { name: e.name, type: 'SET', set: { item: e.items.slice() } };
      if (e.role !== UNRESERVED) r.reservations = [{ type: 'STATIC', role: e.role }];
      if (allocationRole !== undefined) r.allocation_info = { role: allocationRole };
      out[i] = r;
    }
    // A few roles at most per value; the cap keeps a value offered to many roles from growing.
    if (this.jsonCache === undefined) this.jsonCache = new Map();
    if (this.jsonCache.size < 8) this.jsonCache.set(allocationRole, out);
    return out;
  }

  /** The agent syntax, e.g. `cpus:4;mem:8192;ports:[31000-32000];cpus(ci):2`. */
  toString(): string {
    return this.entries
      .map((e) => {
        const key = e.role === UNRESERVED ? e.name : `${e.name}(${e.role})`;
        if (e.kind === 'scalar') return `${key}:${fromMillis(e.millis)}`;
        if (e.kind === 'ranges') return `${key}:[${pairs(e.ranges).map((r) => `${r.begin}-${r.end}`).join(',')}]`;
        return `${key}:{${e.items.join(',')}}`;
      })
      .join(';');
  }

  // ---------------------------------------------------------------------------------------------

  private find(like: Entry): Entry | undefined {
    for (const e of this.entries) if (e.name === like.name && e.role === like.role && e.kind === like.kind) return e;
    return undefined;
  }

  private filter(keep: (e: Entry) => boolean): Resources {
    let all = true;
    for (const e of this.entries) if (!keep(e)) all = false;
    if (all) return this;
    return new Resources(this.entries.filter(keep));
  }
}

// -----------------------------------------------------------------------------------------------
// Entry helpers

function checkName(name: string, where = 'resource'): void {
  if (!NAME_PATTERN.test(name)) throw new InvalidResources(`${where}: '${name}' is not a valid resource name`);
}

function checkRole(role: string, where: string): void {
  if (role !== UNRESERVED && !ROLE_PATTERN.test(role)) throw new InvalidResources(`${where}: '${role}' is not a valid role`);
}

function roleOf(res: Partial<ResourceJSON>, where: string): string {
  const reservations = res.reservations;
  if (reservations !== undefined && reservations.length > 0) {
    if (!Array.isArray(reservations)) throw new InvalidResources(`${where}.reservations must be an array`);
    const last = reservations[reservations.length - 1]!;
    if (last.type !== 'STATIC') throw new InvalidResources(`${where}: only STATIC reservations are supported`);
    if (typeof last.role !== 'string') throw new InvalidResources(`${where}.reservations[].role must be a string`);
    checkRole(last.role, where);
    return last.role;
  }
  if (res.role !== undefined) {
    if (typeof res.role !== 'string') throw new InvalidResources(`${where}.role must be a string`);
    checkRole(res.role, where);
    return res.role;
  }
  return UNRESERVED;
}

function scalarEntry(name: string, role: string, value: number, where = name): Entry {
  if (!Number.isFinite(value) || value < 0) throw new InvalidResources(`${where}: scalar must be a finite number >= 0, got ${value}`);
  return { kind: 'scalar', name, role, millis: toMillis(value) };
}

function rangesEntry(name: string, role: string, flat: readonly number[], where = name): Entry {
  for (let i = 0; i < flat.length; i += 2) {
    const b = flat[i]!;
    const e = flat[i + 1]!;
    if (!Number.isSafeInteger(b) || !Number.isSafeInteger(e) || b < 0 || e < b) {
      throw new InvalidResources(`${where}: range ${b}-${e} must be non-negative integers with begin <= end`);
    }
  }
  return { kind: 'ranges', name, role, ranges: normalizeRanges(flat) };
}

function setEntry(name: string, role: string, items: readonly string[]): Entry {
  return { kind: 'set', name, role, items: [...new Set(items)].sort() };
}

function isEmptyEntry(e: Entry): boolean {
  return e.kind === 'scalar' ? e.millis === 0 : e.kind === 'ranges' ? e.ranges.length === 0 : e.items.length === 0;
}

/** Adds `e` into `list` (which it may reuse), merging with an entry of the same name, role and kind. */
function addEntry(list: Entry[], e: Entry): Entry[] {
  if (isEmptyEntry(e)) return list;
  for (let i = 0; i < list.length; i++) {
    const x = list[i]!;
    if (x.name !== e.name || x.role !== e.role) continue;
    if (x.kind !== e.kind) throw new InvalidResources(`resource '${e.name}' is used as both ${x.kind} and ${e.kind}`);
    if (x.kind === 'scalar' && e.kind === 'scalar') list[i] = { ...x, millis: x.millis + e.millis };
    else if (x.kind === 'ranges' && e.kind === 'ranges') list[i] = { ...x, ranges: unionRanges(x.ranges, e.ranges) };
    else if (x.kind === 'set' && e.kind === 'set') list[i] = { ...x, items: [...new Set([...x.items, ...e.items])].sort() };
    return list;
  }
  list.push(e);
  return list;
}

function subtractEntry(e: Entry, o: Entry): Entry | undefined {
  let out: Entry;
  if (e.kind === 'scalar' && o.kind === 'scalar') out = { ...e, millis: Math.max(0, e.millis - o.millis) };
  else if (e.kind === 'ranges' && o.kind === 'ranges') out = { ...e, ranges: subtractRanges(e.ranges, o.ranges) };
  else if (e.kind === 'set' && o.kind === 'set') {
    const drop = new Set(o.items);
    out = { ...e, items: e.items.filter((i) => !drop.has(i)) };
  } else out = e;
  return isEmptyEntry(out) ? undefined : out;
}

function containsEntry(e: Entry, o: Entry): boolean {
  if (e.kind === 'scalar' && o.kind === 'scalar') return e.millis >= o.millis;
  if (e.kind === 'ranges' && o.kind === 'ranges') return containsRanges(e.ranges, o.ranges);
  if (e.kind === 'set' && o.kind === 'set') {
    const have = new Set(e.items);
    return o.items.every((i) => have.has(i));
  }
  return false;
}

// -----------------------------------------------------------------------------------------------
// Ranges on flat arrays [b0, e0, b1, e1, ...]

function pairs(flat: readonly number[]): { begin: number; end: number }[] {
  const out: { begin: number; end: number }[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ begin: flat[i]!, end: flat[i + 1]! });
  return out;
}

/** Sorts, and merges overlapping or adjacent ranges ([1-2],[3-4] becomes [1-4], as Mesos does). */
export function normalizeRanges(flat: readonly number[]): number[] {
  if (flat.length <= 2) return flat.slice();
  const list: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) list.push([flat[i]!, flat[i + 1]!]);
  list.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [b, e] of list) {
    const n = out.length;
    if (n > 0 && b <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, e);
    else out.push(b, e);
  }
  return out;
}

export function unionRanges(a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0) return b.slice();
  if (b.length === 0) return a.slice();
  return normalizeRanges([...a, ...b]);
}

/** `a` minus `b`; both normalized. */
export function subtractRanges(a: readonly number[], b: readonly number[]): number[] {
  if (b.length === 0 || a.length === 0) return a.slice();
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < a.length; i += 2) {
    let begin = a[i]!;
    const end = a[i + 1]!;
    while (j < b.length && b[j + 1]! < begin) j += 2;
    let k = j;
    while (begin <= end) {
      if (k >= b.length || b[k]! > end) {
        out.push(begin, end);
        break;
      }
      if (b[k]! > begin) out.push(begin, b[k]! - 1);
      begin = Math.max(begin, b[k + 1]! + 1);
      k += 2;
    }
  }
  return out;
}

/** Whether normalized `a` covers every value of normalized `b`. */
export function containsRanges(a: readonly number[], b: readonly number[]): boolean {
  let i = 0;
  for (let j = 0; j < b.length; j += 2) {
    const begin = b[j]!;
    const end = b[j + 1]!;
    while (i < a.length && a[i + 1]! < begin) i += 2;
    if (i >= a.length || a[i]! > begin || a[i + 1]! < end) return false;
  }
  return true;
}

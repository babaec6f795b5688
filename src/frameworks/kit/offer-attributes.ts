import type { Offer } from '../../protocol/mesos.ts';

/**
 * An offer's agent attributes as placement constraints compare them (Marathon's and the CI
 * executors'): TEXT and SCALAR values as strings; RANGES and SET attributes are left out.
 */
export function offerAttributes(o: Offer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of o.attributes) {
    if (a.text !== undefined) out[a.name] = a.text.value;
    else if (a.scalar !== undefined) out[a.name] = String(a.scalar.value);
  }
  return out;
}

import { Resources, UNRESERVED, fromMillis, toMillis } from '../../../core/resources.ts';
import type { PlacementApp } from './types.ts';

/** What one instance takes from an offer. */
export interface Fit {
  resources: Resources;
  ports: number[];
}

const SCALARS = ['cpus', 'mem', 'disk'] as const;

/** The part of `offered` the app may use: resources of its accepted roles (all when undefined). */
export function usableResources(offered: Resources, acceptedRoles: readonly string[] | undefined): Resources {
  if (acceptedRoles === undefined) return offered;
  let out = Resources.EMPTY;
  for (const role of new Set(acceptedRoles)) out = out.add(role === UNRESERVED ? offered.unreserved() : offered.reserved(role));
  return out;
}

/** `available` split by role: reserved roles first (sorted, so the choice is stable), then unreserved. */
function byRole(available: Resources): [string, Resources][] {
  const roles = available.reservationRoles().sort();
  const out: [string, Resources][] = roles.map((r) => [r, available.reserved(r)]);
  out.push([UNRESERVED, available.unreserved()]);
  return out;
}

/**
 * What one instance of `app` takes from `available`, or undefined when it does not fit: the
 * cpus, mem and disk (reserved resources used before unreserved ones) and the ports, either the
 * app's fixed `requirePorts` or the lowest free ports of the ranges.
 */
export function fitInstance(app: PlacementApp, available: Resources): Fit | undefined {
  const pieces = byRole(available);
  let taken = Resources.EMPTY;

  for (const name of SCALARS) {
    let need = toMillis(app[name]);
    for (const [role, piece] of pieces) {
      if (need <= 0) break;
      const take = Math.min(need, piece.scalarMillis(name));
      if (take > 0) taken = taken.add(Resources.scalars({ [name]: fromMillis(take) }, role));
      need -= take;
    }
    if (need > 0) return undefined;
  }

  const ports = app.requirePorts !== undefined ? fixedPorts(app.requirePorts, pieces) : anyPorts(app.ports, pieces);
  if (ports === undefined) return undefined;
  for (const [role, list] of ports.byRole) {
    taken = taken.add(Resources.ranges('ports', list.map((p) => [p, p] as const), role));
  }
  return { resources: taken, ports: ports.ports };
}

interface ChosenPorts {
  ports: number[];
  byRole: Map<string, number[]>;
}

function fixedPorts(wanted: readonly number[], pieces: readonly [string, Resources][]): ChosenPorts | undefined {
  if (new Set(wanted).size !== wanted.length) return undefined;
  const byRole = new Map<string, number[]>();
  for (const port of wanted) {
    const hit = pieces.find(([, piece]) => piece.ranges('ports').some(([b, e]) => b <= port && port <= e));
    if (hit === undefined) return undefined;
    const list = byRole.get(hit[0]) ?? [];
    list.push(port);
    byRole.set(hit[0], list);
  }
  return { ports: [...wanted], byRole };
}

function anyPorts(count: number, pieces: readonly [string, Resources][]): ChosenPorts | undefined {
  const ports: number[] = [];
  const byRole = new Map<string, number[]>();
  for (const [role, piece] of pieces) {
    for (const [b, e] of piece.ranges('ports')) {
      for (let p = b; p <= e && ports.length < count; p++) {
        ports.push(p);
        const list = byRole.get(role) ?? [];
        list.push(p);
        byRole.set(role, list);
      }
    }
  }
  return ports.length === count ? { ports, byRole } : undefined;
}

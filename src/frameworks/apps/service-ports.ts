import { jsonEqual } from '../../core/json-equal.ts';
import type { AppDefinition } from './app-definition.ts';
import { ServicePortsExhausted } from './apps-errors.ts';
import { DraftApps } from './plan/draft-apps.ts';

/** Marathon's `--local_port_min` / `--local_port_max`: where service ports are taken from. */
export const DEFAULT_SERVICE_PORT_RANGE: Readonly<ServicePortRange> = Object.freeze({ min: 10000, max: 20000 });

export interface ServicePortRange {
  min: number;
  /** Exclusive, as Marathon's `Range(min, max)`. */
  max: number;
}

/**
 * Marathon's AssignDynamicServiceLogic: every new or changed app gets a service port for each
 * port definition declared 0, so that service discovery and load balancers (marathon-lb and the
 * like, which read `portDefinitions[].port` and the tasks' `servicePorts`) have a port per app
 * that stays the same across deployments. The port is, in order:
 *   1. one the app had before and no longer names (a PUT of the definition as first posted, with
 *      its 0s, gets the same ports back: no change, no restart);
 *   2. the lowest one of the range that no app names, before or after the change.
 * Ports the user names are kept as they are (Marathon checks no uniqueness across apps either).
 * Unchanged and only scaled apps are left alone. Answers the target with ports assigned; throws
 * ServicePortsExhausted when the range has no port left.
 */
export function assignServicePorts(
  original: ReadonlyMap<string, AppDefinition>,
  target: ReadonlyMap<string, AppDefinition>,
  range: ServicePortRange = DEFAULT_SERVICE_PORT_RANGE,
  /**
   * The ids that may differ between original and target (a DraftApps' `changed`): only those are
   * looked at, and the answer is an overlay over `target` instead of a copy. Without it, all.
   */
  changed?: ReadonlySet<string>,
  /**
   * Whether an app of `original` names the port (the state's index, AppsView.namesServicePort):
   * with it and `changed`, giving out a port looks at the changed apps only.
   */
  originalNames?: (port: number) => boolean,
): Map<string, AppDefinition> {
  // The ports apps name, gathered only when a port is to be given out: from the index and the
  // changed apps when there is one, else by a pass over every app.
  let used: Set<number> | undefined;
  const usedPorts = (): Set<number> => {
    if (used === undefined) {
      used = new Set<number>();
      const everyApp: Iterable<AppDefinition>[] = originalNames !== undefined && changed !== undefined ? [[...changed].flatMap((id) => target.get(id) ?? [])] : [original.values(), target.values()];
      for (const apps of everyApp) for (const app of apps) for (const p of app.portDefinitions) if (p.port !== 0) used.add(p.port);
    }
    return used;
  };
  const isUsed = (port: number): boolean => usedPorts().has(port) || (originalNames !== undefined && changed !== undefined && originalNames(port));
  let next = range.min;
  const nextFree = (): number => {
    while (next < range.max && isUsed(next)) next++;
    if (next >= range.max) throw new ServicePortsExhausted(range.min, range.max);
    usedPorts().add(next);
    return next;
  };

  const out: Map<string, AppDefinition> = changed !== undefined ? new DraftApps(target) : new Map(target);
  const looked = changed !== undefined ? [...changed].flatMap((id) => (target.has(id) ? [[id, target.get(id)!] as const] : [])) : target;
  for (const [id, app] of looked) {
    const before = original.get(id);
    if (!app.portDefinitions.some((p) => p.port === 0)) continue;
    // Unchanged, or only scaled: an app stored before service ports were assigned keeps its 0s
    // until its next real change (assigning them now would turn a scale into a restart).
    if (before !== undefined && jsonEqual({ ...before, instances: 0 }, { ...app, instances: 0 })) continue;
    const named = new Set(app.portDefinitions.map((p) => p.port));
    const reusable = (before?.portDefinitions ?? []).map((p) => p.port).filter((p) => p >= range.min && p < range.max && !named.has(p));
    out.set(id, { ...app, portDefinitions: app.portDefinitions.map((p) => (p.port !== 0 ? p : { ...p, port: reusable.shift() ?? nextFree() })) });
  }
  return out;
}

import { parseAppDefinition, type AppDefinition } from './app-definition.ts';
import { MarathonValidationError, type MarathonErrorDetail } from './marathon-error.ts';

/** A group definition flattened: its absolute id and every app in it and its subgroups. */
export interface GroupDefinition {
  id: string;
  apps: AppDefinition[];
  /** Absolute ids of every group in the definition, itself included. */
  groups: string[];
}

/**
 * Validates a Marathon group (`{id, apps, groups, dependencies}`, examples/group.json) and
 * flattens it. Group ids may be relative to the parent group (the URL's group for the top one);
 * each app is parsed in its group (`parseAppDefinition` with `idPrefix`). Every error of every
 * app is reported at once, under Marathon's paths (`/apps(0)/cpus`, `/groups(1)/apps(0)/mem`).
 * Pods are refused: Slipway has none.
 */
export function parseGroupDefinition(json: unknown, parentId = '/'): GroupDefinition {
  const details: MarathonErrorDetail[] = [];
  const apps: AppDefinition[] = [];
  const groups: string[] = [];
  const walk = (g: unknown, parent: string, path: string): void => {
    if (g === null || typeof g !== 'object' || Array.isArray(g)) {
      details.push({ path: path === '' ? '/' : path, errors: ['error.expected.jsobject'] });
      return;
    }
    const o = g as Record<string, unknown>;
    const rawId = o['id'];
    if (rawId !== undefined && typeof rawId !== 'string') {
      details.push({ path: `${path}/id`, errors: ['error.expected.jsstring'] });
      return;
    }
    const id = resolveGroupId(rawId ?? '', parent);
    groups.push(id);
    if (o['pods'] !== undefined && Array.isArray(o['pods']) && o['pods'].length > 0) {
      details.push({ path: `${path}/pods`, errors: ['not supported by Slipway: pods (run each container as an app)'] });
    }
    for (const [key, isList] of [['apps', true], ['groups', true]] as const) {
      if (o[key] !== undefined && isList && !Array.isArray(o[key])) details.push({ path: `${path}/${key}`, errors: ['error.expected.jsarray'] });
    }
    const appList = Array.isArray(o['apps']) ? (o['apps'] as unknown[]) : [];
    appList.forEach((a, i) => {
      try {
        apps.push(parseAppDefinition(a, { idPrefix: id }));
      } catch (e) {
        if (!(e instanceof MarathonValidationError)) throw e;
        for (const d of e.details) details.push({ path: `${path}/apps(${i})${d.path === '/' ? '' : d.path}`, errors: d.errors });
      }
    });
    const groupList = Array.isArray(o['groups']) ? (o['groups'] as unknown[]) : [];
    groupList.forEach((child, i) => walk(child, id, `${path}/groups(${i})`));
  };
  walk(json, parentId, '');
  const seen = new Set<string>();
  for (const a of apps) {
    if (seen.has(a.id)) details.push({ path: '/', errors: [`app ${a.id} is defined more than once`] });
    seen.add(a.id);
    if (groups.includes(a.id)) details.push({ path: '/', errors: [`${a.id} is both an app and a group`] });
  }
  if (details.length > 0) throw new MarathonValidationError(details);
  return { id: groups[0] ?? parentId, apps, groups };
}

/** A group id made absolute against its parent, without trailing slash, `.` and `..` resolved. */
export function resolveGroupId(id: string, parent: string): string {
  const base = id.startsWith('/') ? [] : parent.split('/').filter(Boolean);
  for (const part of id.split('/').filter(Boolean)) {
    if (part === '.') continue;
    if (part === '..') base.pop();
    else base.push(part);
  }
  return `/${base.join('/')}`;
}

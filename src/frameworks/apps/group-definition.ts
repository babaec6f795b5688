import { parseAppDefinition, type AppDefinition } from './app-definition.ts';
import { TooManyInRequest } from './apps-errors.ts';
import { MarathonValidationError, type MarathonErrorDetail } from './marathon-error.ts';
import { badIdSegment, ID_SEGMENT_MESSAGE, ID_TOO_LONG_MESSAGE, matchesPathType, MAX_ID_LENGTH, PATH_TYPE_PATTERN } from './path-id.ts';

/**
 * The most apps one request may carry (`PUT/PATCH /v2/apps`, a group's apps with its subgroups'):
 * validating 1,000 apps takes tens of milliseconds of event loop; a million took 17 s.
 */
export const MAX_APPS_PER_REQUEST = 1000;

/** The deepest nesting of groups a request may carry (the walk below recurses once per level). */
export const MAX_GROUP_DEPTH = 32;

/**
 * Refuses, before anything is parsed, a group body of more than MAX_APPS_PER_REQUEST apps or
 * groups, or nested deeper than MAX_GROUP_DEPTH. Stops counting once over a limit.
 */
export function checkGroupSize(json: unknown): void {
  let apps = 0;
  let groups = 0;
  const stack: { g: unknown; depth: number }[] = [{ g: json, depth: 1 }];
  while (stack.length > 0) {
    const { g, depth } = stack.pop()!;
    if (g === null || typeof g !== 'object' || Array.isArray(g)) continue;
    if (depth > MAX_GROUP_DEPTH) throw new TooManyInRequest(`groups nested more than ${MAX_GROUP_DEPTH} deep in one request`);
    groups++;
    const o = g as Record<string, unknown>;
    if (Array.isArray(o['apps'])) apps += o['apps'].length;
    if (apps > MAX_APPS_PER_REQUEST || groups > MAX_APPS_PER_REQUEST) {
      throw new TooManyInRequest(`more than ${MAX_APPS_PER_REQUEST} ${apps > MAX_APPS_PER_REQUEST ? 'apps' : 'groups'} in one group request: at most ${MAX_APPS_PER_REQUEST} per request (deploy the group in parts)`);
    }
    if (Array.isArray(o['groups'])) for (const child of (o['groups'] as unknown[]).slice(0, MAX_APPS_PER_REQUEST + 1)) stack.push({ g: child, depth: depth + 1 });
  }
}

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
  checkGroupSize(json);
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
    if (rawId !== undefined) {
      const problem = groupIdProblem(rawId);
      if (problem !== undefined) {
        // Nothing under a group whose id is refused can be placed: its apps are not parsed.
        details.push({ path: `${path}/id`, errors: [problem] });
        return;
      }
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

/**
 * Why a group id (as given, relative or absolute) is refused, or undefined: the schema's
 * `pathType` language and Marathon's PathId rule for each segment, both checked in one pass
 * (path-id.ts). Group ids end up in URLs and in the Location header of the answer.
 */
export function groupIdProblem(id: string): string | undefined {
  if (id.length > MAX_ID_LENGTH) return ID_TOO_LONG_MESSAGE;
  if (!matchesPathType(id)) return `must fully match regular expression '${PATH_TYPE_PATTERN}'`;
  if (badIdSegment(id) !== undefined) return ID_SEGMENT_MESSAGE;
  return undefined;
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

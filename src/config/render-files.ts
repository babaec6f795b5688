import { createHash } from 'node:crypto';
import { Liquid, type FS } from 'liquidjs';
import { parse as parseToml } from 'smol-toml';
import { parseDocument } from 'yaml';
import type { ConfigFile, Json } from './config-definitions.ts';
import type { ConfigProblem } from './config-errors.ts';

/**
 * Rendering a service's templates with its values (LiquidJS: no code runs, only Liquid's tags and
 * filters). Strict: a variable or a filter that does not exist is an error naming the file, the
 * template's line and the variable, not an empty string in production; but for an explicit
 * choice, `{{ x | default: 1 }}` and `{% if x %}` (LiquidJS's `lenientIf`). Includes are refused (a
 * template reads nothing but its values). A file named `*.json`, `*.yaml`/`*.yml`, `*.toml` or
 * `*.properties` is checked for that syntax once rendered.
 *
 * The values a template sees: every key at the top (`{{ port }}`), keys with dots as paths too
 * (`db.host` is `{{ db.host }}`), and the flat map as `values` (`{{ values["spring.datasource.url"] }}`).
 */

export interface RenderedFile {
  name: string;
  destination: string;
  mode: string;
  content: string;
  /** Hex SHA-256 of the content's UTF-8 bytes. */
  sha256: string;
}

/** No file system: `include` and `render` of other templates are refused. */
const NO_FILES: FS = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async (file: string) => {
    throw new Error(`templates may not include other files (${file})`);
  },
  readFileSync: (file: string) => {
    throw new Error(`templates may not include other files (${file})`);
  },
  resolve: (_root: string, file: string) => file,
};

/**
 * Bounds on one template (LiquidJS's own): its text, its render time and the memory its loops and
 * ranges may take. Rendering runs on the server's event loop: a template of `{% for i in (1..3000000) %}`
 * would hold every API (a helper measured 0.7 s) without them.
 */
export const TEMPLATE_LIMITS = { parseLimit: 1024 * 1024, renderLimit: 500, memoryLimit: 16 * 1024 * 1024 };
/** The most a rendered file may hold. */
export const MAX_RENDERED_BYTES = 4 * 1024 * 1024;

const engine = new Liquid({ strictVariables: true, lenientIf: true, strictFilters: true, ownPropertyOnly: true, cache: false, fs: NO_FILES, relativeReference: false, root: [], partials: [], layouts: [], ...TEMPLATE_LIMITS });

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The context a template renders with (see the module comment); a dotted key that collides with a plain one is a problem. */
export function templateContext(values: Readonly<Record<string, Json>>): { context: Record<string, unknown>; problems: ConfigProblem[] } {
  const context: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];
  const set = (target: Record<string, unknown>, key: string, value: unknown) => Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  for (const [key, value] of Object.entries(values)) {
    if (!key.includes('.')) {
      if (Object.hasOwn(context, key) && typeof context[key] === 'object' && context[key] !== null && !Object.hasOwn(values, key)) continue;
      set(context, key, value);
      continue;
    }
    const parts = key.split('.');
    let at = context;
    let ok = true;
    for (const p of parts.slice(0, -1)) {
      if (!Object.hasOwn(at, p)) set(at, p, {});
      const next = at[p];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) {
        problems.push({ field: `values.${key}`, message: `'${parts.slice(0, parts.indexOf(p) + 1).join('.')}' is a value of its own, so '${key}' cannot be reached as a path (use {{ values["${key}"] }})` });
        ok = false;
        break;
      }
      at = next as Record<string, unknown>;
    }
    if (ok) set(at, parts[parts.length - 1]!, value);
  }
  set(context, 'values', { ...values });
  return { context, problems };
}

/** Renders every file; throws nothing, answers the files or every problem (each naming its file). */
export async function renderFiles(files: readonly { file: ConfigFile; text: string }[], values: Readonly<Record<string, Json>>): Promise<{ files: RenderedFile[] } | { problems: ConfigProblem[] }> {
  const { context, problems } = templateContext(values);
  const rendered: RenderedFile[] = [];
  for (const { file, text } of files) {
    const where = `files.${file.name} (template ${file.template})`;
    let content: string;
    try {
      content = String(await engine.parseAndRender(text, context));
    } catch (e) {
      problems.push({ field: where, message: liquidMessage(e) });
      continue;
    }
    if (Buffer.byteLength(content) > MAX_RENDERED_BYTES) {
      problems.push({ field: where, message: `renders to ${Buffer.byteLength(content)} bytes; a file has at most ${MAX_RENDERED_BYTES}` });
      continue;
    }
    const syntax = syntaxProblem(file.name, content);
    if (syntax !== undefined) {
      problems.push({ field: where, message: `renders to invalid ${syntax}` });
      continue;
    }
    rendered.push({ name: file.name, destination: file.destination, mode: file.mode, content, sha256: sha256(content) });
  }
  return problems.length > 0 ? { problems } : { files: rendered };
}

/** LiquidJS's message, which names the line and column (`undefined variable: db_host, line:3, col:9`). */
function liquidMessage(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  // The first line holds what is wrong and where; LiquidJS appends the template's excerpt after.
  return message.split('\n')[0]!.trim();
}

/** What is wrong with `content` for the syntax its name says, or undefined. */
export function syntaxProblem(name: string, content: string): string | undefined {
  const ext = name.toLowerCase().split('.').pop();
  try {
    if (ext === 'json') JSON.parse(content);
    else if (ext === 'yaml' || ext === 'yml') {
      const doc = parseDocument(content, { prettyErrors: true, uniqueKeys: true });
      const err = doc.errors[0];
      if (err !== undefined) return `YAML: ${err.message.split('\n')[0]}`;
    } else if (ext === 'toml') parseToml(content);
    else if (ext === 'properties') {
      const bad = propertiesProblem(content);
      if (bad !== undefined) return `properties: ${bad}`;
    }
  } catch (e) {
    return `${ext === 'json' ? 'JSON' : ext === 'toml' ? 'TOML' : ext}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
  }
  return undefined;
}

/**
 * Java's properties format takes almost any text; what it refuses is a `\u` escape without four
 * hex digits (java.util.Properties throws "Malformed \uxxxx encoding").
 */
function propertiesProblem(content: string): string | undefined {
  const lines = content.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const m = /\\u(?![0-9a-fA-F]{4})/.exec(lines[i]!.replace(/\\\\/g, ''));
    if (m !== null) return `line ${i + 1}: a \\u escape needs four hex digits`;
  }
  return undefined;
}

/** The key/value pairs of a properties file (Apollo's client API shows properties namespaces so). */
export function parseProperties(content: string): Record<string, string> {
  const out: Record<string, string> = {};
  const logical: string[] = [];
  let current = '';
  for (const raw of content.split(/\r?\n/)) {
    const line = current === '' ? raw.replace(/^\s+/, '') : raw.replace(/^\s+/, '');
    if (current === '' && (line === '' || line.startsWith('#') || line.startsWith('!'))) continue;
    const continued = /(^|[^\\])(\\\\)*\\$/.test(line);
    current += continued ? line.slice(0, -1) : line;
    if (!continued) {
      logical.push(current);
      current = '';
    }
  }
  if (current !== '') logical.push(current);
  for (const l of logical) {
    const m = /^((?:\\.|[^=:\s\\])*)\s*[=:\s]?\s*(.*)$/.exec(l);
    if (m === null) continue;
    Object.defineProperty(out, unescape(m[1]!), { value: unescape(m[2]!), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, c: string) => {
    if (c.startsWith('u') && c.length === 5) return String.fromCharCode(parseInt(c.slice(1), 16));
    return ({ t: '\t', n: '\n', r: '\r', f: '\f' } as Record<string, string>)[c] ?? c;
  });
}

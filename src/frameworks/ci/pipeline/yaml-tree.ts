import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node as YamlNode, Pair } from 'yaml';
import type { PipelineProblem } from '../ci-errors.ts';
import type { SourcePosition } from './pipeline.ts';

// The YAML text as a small tree of maps, lists and scalars, each with where it is written: what
// the pipeline parser walks. Aliases are resolved and `<<` merge keys applied here (Woodpecker
// users lean on both to share settings between steps), so the parser sees plain values; a value
// that came through an alias keeps the position of the text it was copied from, which is where a
// user has to fix it.

export type YamlValue = YamlMap | YamlSeq | YamlScalar;

export interface YamlMap {
  kind: 'map';
  pos: SourcePosition;
  /** In the order written (merged keys where their `<<` stands); keys are unique. */
  entries: YamlEntry[];
}

export interface YamlEntry {
  key: string;
  keyPos: SourcePosition;
  value: YamlValue;
}

export interface YamlSeq {
  kind: 'seq';
  pos: SourcePosition;
  items: YamlValue[];
}

export interface YamlScalar {
  kind: 'scalar';
  pos: SourcePosition;
  /** As YAML 1.2's core schema reads it: `yes` is a string, `1.0` a number, `~` and nothing null. */
  value: string | number | boolean | null;
  /** The text as written for a plain number or boolean (`1.0`, `0755`, `TRUE`), else String(value). */
  text: string;
}

export interface YamlTreeResult {
  /** Undefined when the document holds nothing (empty text, only comments) or is unreadable. */
  root: YamlValue | undefined;
  /** YAML syntax errors: the tree is not to be interpreted when there is one. */
  syntaxErrors: PipelineProblem[];
  /** Problems of anchors, aliases, merge keys and tags: the tree is usable, with null in their place. */
  problems: PipelineProblem[];
}

/**
 * More nodes than any real pipeline has. It bounds the work of a document whose aliases expand
 * exponentially (`a: &a [x, x]`, `b: &b [*a, *a]`, ...): CI parses YAML from any repository.
 */
export const MAX_YAML_NODES = 50_000;

/** The path of a child value: `steps[2]`, `steps.build`, `environment["MY.VAR"]`. */
export function childPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const part = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  if (base === '') return part.startsWith('"') ? `[${part}]` : part;
  return part.startsWith('"') ? `${base}[${part}]` : `${base}.${part}`;
}

/** Parses YAML text (one document, YAML 1.2 core schema with `<<` merge keys) into a YamlValue tree. */
export function readYamlTree(text: string): YamlTreeResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });
  const at = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    // linePos gives line 0 before the first newline has been counted (one-line text).
    return { line: Math.max(line, 1), column: Math.max(col, 1) };
  };

  const syntaxErrors: PipelineProblem[] = doc.errors.map((e) => ({
    path: '',
    message: syntaxMessage(e.code, e.message),
    ...at(e.pos[0]),
  }));
  if (syntaxErrors.length > 0) return { root: undefined, syntaxErrors, problems: [] };

  const problems: PipelineProblem[] = doc.warnings.map((w) => ({ path: '', message: warningMessage(w.code, w.message), ...at(w.pos[0]) }));
  if (doc.contents === null) return { root: undefined, syntaxErrors, problems };
  const reader = new TreeReader(doc, at, problems);
  return { root: reader.read(doc.contents as YamlNode, '', { line: 1, column: 1 }), syntaxErrors, problems };
}

function syntaxMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'YAML syntax: a pipeline is one YAML document (found a second `---`)';
  if (code === 'DUPLICATE_KEY') return 'YAML syntax: this key is given twice in the same map';
  return `YAML syntax: ${message}`;
}

function warningMessage(code: string, message: string): string {
  if (code === 'TAG_RESOLVE_FAILED') return `${message} (a pipeline uses no YAML tags)`;
  return message;
}

class TreeReader {
  #nodes = 0;
  #tooMany = false;
  /** The YAML nodes being read, outermost first: an alias into one of them would never end. */
  readonly #open = new Set<unknown>();

  constructor(
    private readonly doc: Document,
    private readonly at: (offset: number) => SourcePosition,
    private readonly problems: PipelineProblem[],
  ) {}

  read(node: YamlNode | null | undefined, path: string, fallback: SourcePosition): YamlValue {
    if (node === null || node === undefined) return { kind: 'scalar', pos: fallback, value: null, text: '' };
    const pos = node.range ? this.at(node.range[0]) : fallback;
    if (++this.#nodes > MAX_YAML_NODES) {
      if (!this.#tooMany) this.problem(path, `the YAML expands to more than ${MAX_YAML_NODES} values (aliases of aliases?)`, pos);
      this.#tooMany = true;
      return { kind: 'scalar', pos, value: null, text: '' };
    }
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined) {
        this.problem(path, `alias *${node.source} names no anchor before it`, pos);
        return { kind: 'scalar', pos, value: null, text: '' };
      }
      if (this.#open.has(target)) {
        this.problem(path, `alias *${node.source} refers to a value that contains it`, pos);
        return { kind: 'scalar', pos, value: null, text: '' };
      }
      return this.read(target, path, pos);
    }
    this.#open.add(node);
    try {
      if (isMap(node)) return this.readMap(node.items as Pair[], path, pos);
      if (isSeq(node)) return { kind: 'seq', pos, items: node.items.map((item, i) => this.read(item as YamlNode, childPath(path, i), pos)) };
      if (isScalar(node)) return scalarOf(node.value, node.source, pos);
      return { kind: 'scalar', pos, value: null, text: '' };
    } finally {
      this.#open.delete(node);
    }
  }

  /**
   * A map with its `<<` merge keys applied (YAML 1.1's merge type, which Woodpecker and go-yaml
   * accept): a key written in the map wins over a merged one, and an earlier merge source over a
   * later one.
   */
  private readMap(pairs: Pair[], path: string, pos: SourcePosition): YamlMap {
    const own = new Set<string>();
    for (const pair of pairs) {
      if (!isMergeKey(pair.key)) {
        const key = keyText(pair.key);
        if (key !== undefined) own.add(key);
      }
    }
    const entries: YamlEntry[] = [];
    const seen = new Set<string>();
    for (const pair of pairs) {
      const keyNode = pair.key as YamlNode | null;
      const keyPos = keyNode?.range ? this.at(keyNode.range[0]) : pos;
      if (isMergeKey(pair.key)) {
        for (const source of this.mergeSources(pair.value as YamlNode | null, path, keyPos)) {
          for (const entry of source.entries) {
            if (own.has(entry.key) || seen.has(entry.key)) continue;
            seen.add(entry.key);
            entries.push(entry);
          }
        }
        continue;
      }
      const key = keyText(pair.key);
      if (key === undefined) {
        this.problem(path, 'a key must be a plain word or a quoted string, not empty, a list or a map', keyPos);
        continue;
      }
      if (seen.has(key)) {
        // `1:` and `"1":` are different YAML keys but the same name here.
        this.problem(childPath(path, key), 'this key is given twice in the same map', keyPos);
        continue;
      }
      seen.add(key);
      entries.push({ key, keyPos, value: this.read(pair.value as YamlNode | null, childPath(path, key), keyPos) });
    }
    return { kind: 'map', pos, entries };
  }

  private mergeSources(value: YamlNode | null, path: string, keyPos: SourcePosition): YamlMap[] {
    const merged = this.read(value, path, keyPos);
    const sources = merged.kind === 'seq' ? merged.items : [merged];
    const maps: YamlMap[] = [];
    for (const source of sources) {
      if (source.kind === 'map') maps.push(source);
      else this.problem(path, '`<<` merges maps only: give it an alias of a map (`<<: *defaults`) or a list of them', source.pos);
    }
    return maps;
  }

  private problem(path: string, message: string, pos: SourcePosition): void {
    this.problems.push({ path, message, ...pos });
  }
}

function isMergeKey(key: unknown): boolean {
  if (!isScalar(key)) return false;
  const v = key.value;
  return (typeof v === 'symbol' && v.description === '<<') || (v === '<<' && (key.type === undefined || key.type === 'PLAIN'));
}

/** A key as text: strings as they are, numbers and booleans as written; undefined for null and collections. */
function keyText(key: unknown): string | undefined {
  if (!isScalar(key)) return undefined;
  const v = key.value;
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (typeof v === 'number' || typeof v === 'boolean') return key.source ?? String(v);
  return undefined;
}

function scalarOf(value: unknown, source: string | undefined, pos: SourcePosition): YamlScalar {
  if (value === null || value === undefined) return { kind: 'scalar', pos, value: null, text: '' };
  if (typeof value === 'string') return { kind: 'scalar', pos, value, text: value };
  if (typeof value === 'number' || typeof value === 'boolean') {
    return { kind: 'scalar', pos, value, text: source !== undefined && source !== '' ? source : String(value) };
  }
  if (typeof value === 'bigint') return { kind: 'scalar', pos, value: Number(value), text: source ?? String(value) };
  return { kind: 'scalar', pos, value: String(value), text: String(value) };
}

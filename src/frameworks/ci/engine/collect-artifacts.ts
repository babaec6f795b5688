import { copyFile, lstat, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { SlipwayError } from '../../../core/errors.ts';
import { globMatcher, hasGlobSyntax, type GlobMatcher } from './glob-pattern.ts';

/** An artifact pattern that names nothing inside the workspace: absolute, or with a `..` segment. */
export class InvalidArtifactPattern extends SlipwayError {
  readonly code = 'INVALID_ARTIFACT_PATTERN';
  readonly status = 422;
  constructor(
    readonly pattern: string,
    readonly problem: string,
  ) {
    super(`artifact path ${JSON.stringify(pattern)} ${problem}`);
  }
}

export interface ArtifactFile {
  /** Relative to the workspace (and to destDir), `/`-separated. */
  path: string;
  size: number;
}

export interface CollectedArtifacts {
  /** What was copied, in path order. */
  files: ArtifactFile[];
  /** What matched but was not copied, and why (symbolic links out of the workspace, to directories). */
  skipped: { path: string; reason: string }[];
  /** Patterns that matched nothing. */
  unmatched: string[];
}

export const MAX_ARTIFACT_PATTERN_LENGTH = 4096;

/**
 * Why an artifact pattern is refused, or undefined when it is fine: for the parser, so that a
 * pipeline with such a pattern is refused when it is saved rather than when a build ends.
 */
export function artifactPatternProblem(pattern: string): string | undefined {
  if (pattern.trim() === '') return 'is empty';
  // No path is longer (Linux's PATH_MAX); and the walk below is linear in the pattern's length.
  if (pattern.length > MAX_ARTIFACT_PATTERN_LENGTH) return `is longer than ${MAX_ARTIFACT_PATTERN_LENGTH} characters`;
  if (pattern.includes('\0')) return 'holds a NUL character';
  if (pattern.startsWith('/') || pattern.startsWith('~')) return 'is absolute; artifact paths are relative to the workspace';
  if (pattern.split('/').includes('..')) return 'leaves the workspace (a `..` segment)';
  return undefined;
}

/**
 * Copies the files of `workspace` that match `patterns` (globs, see glob-pattern.ts; a pattern
 * that matches a directory takes all of it) into `destDir`, at the same relative paths.
 *
 * Nothing outside the workspace is ever read: absolute patterns and `..` segments are refused
 * (InvalidArtifactPattern, before anything is copied); directories reached through a symbolic
 * link are not entered; a symbolic link to a file is copied (its content) only when the file is
 * inside the workspace. `destDir` may be inside the workspace: it is not walked.
 */
export async function collectArtifacts(workspace: string, patterns: readonly string[], destDir: string): Promise<CollectedArtifacts> {
  for (const pattern of patterns) {
    const problem = artifactPatternProblem(pattern);
    if (problem !== undefined) throw new InvalidArtifactPattern(pattern, problem);
  }
  const root = await realpath(workspace);
  await mkdir(destDir, { recursive: true });
  const dest = await realpath(resolve(destDir));
  const walker = new Walker(root, dest);
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const before = walker.found.size + walker.skipped.size;
    await walker.walkPattern(pattern);
    if (walker.found.size + walker.skipped.size === before) unmatched.push(pattern);
  }
  const files: ArtifactFile[] = [];
  for (const [path, source] of [...walker.found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const target = join(dest, ...path.split('/'));
    await mkdir(dirname(target), { recursive: true });
    await copyFile(source, target);
    files.push({ path, size: (await stat(target)).size });
  }
  const skipped = [...walker.skipped].map(([path, reason]) => ({ path, reason })).sort((a, b) => (a.path < b.path ? -1 : 1));
  return { files, skipped, unmatched };
}

/**
 * The files of `workspace` that match `patterns`, as collectArtifacts finds them (the same rules:
 * nothing outside the workspace, no directory behind a symbolic link), without copying: each
 * file's workspace path and the file to read. For publish steps.
 */
export async function matchWorkspaceFiles(workspace: string, patterns: readonly string[]): Promise<{ files: { path: string; source: string }[]; skipped: { path: string; reason: string }[]; unmatched: string[] }> {
  for (const pattern of patterns) {
    const problem = artifactPatternProblem(pattern);
    if (problem !== undefined) throw new InvalidArtifactPattern(pattern, problem);
  }
  const walker = new Walker(await realpath(workspace), '');
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const before = walker.found.size + walker.skipped.size;
    await walker.walkPattern(pattern);
    if (walker.found.size + walker.skipped.size === before) unmatched.push(pattern);
  }
  const files = [...walker.found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([path, source]) => ({ path, source }));
  const skipped = [...walker.skipped].map(([path, reason]) => ({ path, reason })).sort((a, b) => (a.path < b.path ? -1 : 1));
  return { files, skipped, unmatched };
}

class Walker {
  /** Relative path → the file to copy (its real path when reached through a symbolic link). */
  readonly found = new Map<string, string>();
  readonly skipped = new Map<string, string>();

  constructor(
    private readonly root: string,
    /** A directory not walked (the copy's destination); '' for none. */
    private readonly dest: string,
  ) {}

  async walkPattern(raw: string): Promise<void> {
    // `a//b` is `a/b`, as for the file system (and no lstat per empty segment).
    const segments = trimPattern(raw).split('/').filter((s) => s !== '');
    const pattern = segments.join('/');
    if (pattern === '' || pattern === '.') return this.#tree('');
    // Start at the longest prefix without glob syntax; go only as deep as the pattern can reach.
    let base = 0;
    while (base < segments.length - 1 && !hasGlobSyntax(segments[base] as string)) base++;
    const unbounded = pattern.includes('**') || pattern.includes('{');
    const depth = unbounded ? Infinity : segments.length - base;
    let dir = '';
    for (const segment of segments.slice(0, base)) {
      dir = dir === '' ? segment : `${dir}/${segment}`;
      const info = await lstat(this.#abs(dir)).catch(() => undefined);
      if (info === undefined) return;
      if (info.isSymbolicLink()) {
        this.skipped.set(dir, 'a symbolic link to a directory is not followed');
        return;
      }
      if (!info.isDirectory()) return;
    }
    await this.#walk(dir, depth, globMatcher(pattern));
  }

  /** Entries of directory `dir`, matched against `re`, `depth` levels down. */
  async #walk(dir: string, depth: number, re: GlobMatcher): Promise<void> {
    if (depth <= 0) return;
    for (const entry of await this.#entries(dir)) {
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      const matched = re.test(path);
      if (entry.isDirectory()) {
        if (matched) await this.#tree(path);
        else await this.#walk(path, depth - 1, re);
      } else if (matched) {
        await this.#add(path, entry);
      }
    }
  }

  /** Everything under `dir`. */
  async #tree(dir: string): Promise<void> {
    for (const entry of await this.#entries(dir)) {
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) await this.#tree(path);
      else await this.#add(path, entry);
    }
  }

  async #add(path: string, entry: { isFile(): boolean; isSymbolicLink(): boolean }): Promise<void> {
    if (entry.isFile()) {
      this.found.set(path, this.#abs(path));
      return;
    }
    if (!entry.isSymbolicLink()) return;
    const real = await realpath(this.#abs(path)).catch(() => undefined);
    if (real === undefined) {
      this.skipped.set(path, 'a symbolic link to nothing');
    } else if (real !== this.root && !real.startsWith(this.root + sep)) {
      this.skipped.set(path, 'a symbolic link to outside the workspace');
    } else if (!(await stat(real)).isFile()) {
      this.skipped.set(path, 'a symbolic link to a directory is not followed');
    } else {
      this.found.set(path, real);
    }
  }

  async #entries(dir: string) {
    const abs = this.#abs(dir);
    if (abs === this.dest) return [];
    return readdir(abs, { withFileTypes: true }).catch(() => []);
  }

  #abs(path: string): string {
    return path === '' ? this.root : join(this.root, ...path.split('/'));
  }
}

/**
 * A pattern without its leading `./`s and trailing slashes. Index scans, not `/\/+$/`: that
 * regular expression is quadratic on a long run of slashes not at the end (a pattern is user
 * input; issue 11, finding 2).
 */
function trimPattern(raw: string): string {
  let start = 0;
  while (raw.startsWith('./', start)) start += 2;
  let end = raw.length;
  while (end > start && raw.charCodeAt(end - 1) === 0x2f) end--;
  return raw.slice(start, end);
}

import { InvalidPipeline } from '../ci-errors.ts';
import { artifactPatternProblem } from '../engine/collect-artifacts.ts';
import type { PipelineProblem } from '../ci-errors.ts';
import { isReservedVariableName } from './ci-variables.ts';
import { ENV_NAME_PATTERN, NAME_RULE, isValidName } from './names.ts';
import type { BuildEvent, Pipeline, PipelineStep, SourcePosition, StepCondition } from './pipeline.ts';
import { findCycles } from './step-graph.ts';
import { childPath, readYamlTree } from './yaml-tree.ts';
import type { YamlMap, YamlValue } from './yaml-tree.ts';

// The pipeline YAML (docs/pipelines.md is the user's description; keep the two in step), read in
// three passes: YAML text to a tree with positions (yaml-tree.ts); the tree to steps, checking
// each value where it stands; then the steps together (names, depends_on, cycles). Every problem
// found is collected, each with its path and position, and thrown at the end as one
// InvalidPipeline, so that a user fixes the file in one go.

export const PIPELINE_KEYS = ['steps', 'artifacts', 'executor'] as const;
export const STEP_KEYS = ['name', 'image', 'commands', 'environment', 'when', 'depends_on', 'failure'] as const;
export const CONDITION_KEYS = ['event', 'branch', 'status'] as const;

/** The longest branch pattern of a `when` condition. */
export const MAX_BRANCH_PATTERN_LENGTH = 1024;
export const BUILD_EVENTS: readonly BuildEvent[] = ['manual', 'push', 'tag', 'cron'];
export const CONDITION_STATUSES = ['success', 'failure'] as const;
export const FAILURE_MODES = ['fail', 'ignore'] as const;

/**
 * Top-level keys accepted and ignored: homes for YAML anchors. `variables` is Woodpecker's;
 * `x-...` is Docker Compose's convention for extension fields.
 */
function isIgnoredTopLevelKey(key: string): boolean {
  return key === 'variables' || key.startsWith('x-');
}

/** What to say about keys of Woodpecker or Drone that Slipway does not have, beyond "unknown". */
const KEY_HINTS: Readonly<Record<string, string>> = {
  pipeline: 'the list of steps is called `steps`',
  labels: 'choose the executor with `executor: LABEL`',
  platform: 'choose the executor with `executor: LABEL`',
  services: 'service containers are not supported: start what a step needs in its commands',
  workspace: 'the workspace is fixed: see CI_WORKSPACE',
  clone: 'CI clones the job\'s repo itself',
  settings: 'plugins are not supported: give the image `commands`',
  secrets: 'secrets are the job\'s: set them in the job\'s `secrets` (every step gets them, masked in the log)',
  entrypoint: 'give the image `commands`, or none to run its default command',
  command: 'the key is `commands` (a command or a list of them)',
  env: 'the key is `environment`',
  dependsOn: 'the key is `depends_on`',
  depends: 'the key is `depends_on`',
  needs: 'the key is `depends_on`',
  branches: 'the key is `branch`',
  events: 'the key is `event`',
  ref: 'match branches with `branch` and tags with `event: tag`',
  path: 'path conditions are not supported',
  evaluate: 'expression conditions are not supported',
};

class Problems {
  readonly list: PipelineProblem[];
  constructor(initial: PipelineProblem[]) {
    this.list = [...initial];
  }
  add(path: string, message: string, pos: SourcePosition): void {
    this.list.push({ path, message, line: pos.line, column: pos.column });
  }
}

/** One step as read, before the steps are checked together. */
interface StepDraft {
  step: PipelineStep;
  path: string;
  pos: SourcePosition;
  namePos: SourcePosition;
  /** Where a problem of the name is reported: `steps[0].name`, or `steps.build` in the map form. */
  namePath: string;
  /** `name` was written (list form) or is the key (map form), as opposed to `step-N`. */
  named: boolean;
  /** The step's `depends_on`, as written; undefined when it has none. */
  dependsOn?: { names: { name: string; pos: SourcePosition }[]; pos: SourcePosition };
}

/**
 * Reads a pipeline from its YAML text, checking everything that can be checked without running
 * it. Throws InvalidPipeline with every problem found (YAML syntax errors alone when there are
 * any: a broken document is not interpreted further).
 */
export function parsePipeline(yamlText: string): Pipeline {
  const tree = readYamlTree(yamlText);
  if (tree.syntaxErrors.length > 0) throw new InvalidPipeline(tree.syntaxErrors);
  const problems = new Problems(tree.problems);
  const pipeline = readPipeline(tree.root, problems);
  if (problems.list.length > 0) throw new InvalidPipeline(inTextOrder(problems.list));
  return pipeline;
}

function readPipeline(root: YamlValue | undefined, problems: Problems): Pipeline {
  const pipeline: Pipeline = { steps: [], artifacts: [] };
  if (root === undefined || isNull(root)) {
    problems.add('', 'the pipeline is empty: it needs `steps`', root?.pos ?? { line: 1, column: 1 });
    return pipeline;
  }
  if (root.kind !== 'map') {
    problems.add('', `must be a map with \`steps\`, not ${describe(root)}`, root.pos);
    return pipeline;
  }
  checkKeys(root, '', PIPELINE_KEYS, problems, isIgnoredTopLevelKey);
  const steps = entry(root, 'steps');
  if (steps === undefined) problems.add('steps', 'is required: a pipeline needs at least one step', root.pos);
  else pipeline.steps = readSteps(steps, problems);

  const artifacts = entry(root, 'artifacts');
  if (artifacts !== undefined) pipeline.artifacts = readArtifacts(artifacts, problems);

  const executor = entry(root, 'executor');
  if (executor !== undefined) {
    const label = stringAt(executor, 'executor', problems);
    if (label !== undefined) {
      if (isValidName(label)) pipeline.executor = label;
      else problems.add('executor', `is not a valid executor label: ${NAME_RULE}`, executor.pos);
    }
  }
  return pipeline;
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

function readSteps(value: YamlValue, problems: Problems): PipelineStep[] {
  const drafts: StepDraft[] = [];
  if (value.kind === 'seq') {
    value.items.forEach((item, i) => {
      const draft = readStep(item, childPath('steps', i), i, undefined, problems);
      if (draft !== undefined) drafts.push(draft);
    });
  } else if (value.kind === 'map') {
    // Woodpecker's map form: the key is the step's name, the order is the file's.
    value.entries.forEach((e, i) => {
      const draft = readStep(e.value, childPath('steps', e.key), i, { name: e.key, pos: e.keyPos }, problems);
      if (draft !== undefined) drafts.push(draft);
    });
  } else {
    const what = value.value === null ? 'it is empty' : `not ${describe(value)}`;
    problems.add('steps', `must be a list of steps (or a map of them by name), ${what}`, value.pos);
    return [];
  }
  if (drafts.length === 0 && (value.kind === 'seq' ? value.items.length : value.entries.length) === 0) {
    problems.add('steps', 'a pipeline needs at least one step', value.pos);
  }
  checkNames(drafts, problems);
  resolveDependencies(drafts, problems);
  return drafts.map((d) => d.step);
}

function readStep(
  value: YamlValue,
  path: string,
  index: number,
  keyName: { name: string; pos: SourcePosition } | undefined,
  problems: Problems,
): StepDraft | undefined {
  if (value.kind !== 'map') {
    problems.add(path, `a step must be a map (name, image, commands, ...), not ${describe(value)}`, value.pos);
    return undefined;
  }
  checkKeys(value, path, STEP_KEYS, problems);

  const draft: StepDraft = {
    step: { name: `step-${index + 1}`, commands: [], environment: {}, when: [], dependsOn: [], failure: 'fail' },
    path,
    pos: value.pos,
    namePos: value.pos,
    namePath: keyName !== undefined ? path : childPath(path, 'name'),
    named: false,
  };
  const nameValue = entry(value, 'name');
  if (keyName !== undefined) {
    draft.step.name = keyName.name;
    draft.namePos = keyName.pos;
    draft.named = true;
    if (nameValue !== undefined) {
      problems.add(childPath(path, 'name'), 'a step of the map form is named by its key: remove `name`', keyPosOf(value, 'name'));
    }
  } else if (nameValue !== undefined) {
    const name = stringAt(nameValue, childPath(path, 'name'), problems);
    if (name !== undefined) {
      draft.step.name = name;
      draft.namePos = nameValue.pos;
      draft.named = true;
    }
  }

  const image = entry(value, 'image');
  if (image !== undefined) {
    const text = stringAt(image, childPath(path, 'image'), problems);
    if (text !== undefined) {
      if (/^\s*$/.test(text)) problems.add(childPath(path, 'image'), 'must not be empty', image.pos);
      else if (/\s/.test(text) || text.startsWith('-')) problems.add(childPath(path, 'image'), `is not an image reference: ${JSON.stringify(text)}`, image.pos);
      else draft.step.image = text;
    }
  }

  const commands = entry(value, 'commands');
  if (commands !== undefined) draft.step.commands = readCommands(commands, childPath(path, 'commands'), problems);

  const environment = entry(value, 'environment');
  if (environment !== undefined) draft.step.environment = readEnvironment(environment, childPath(path, 'environment'), problems);

  const when = entry(value, 'when');
  if (when !== undefined) draft.step.when = readWhen(when, childPath(path, 'when'), problems);

  const dependsOn = entry(value, 'depends_on');
  if (dependsOn !== undefined) {
    const names = stringList(dependsOn, childPath(path, 'depends_on'), problems, 'a step name or a list of step names');
    draft.dependsOn = { names: (names ?? []).map((n) => ({ name: n.value, pos: n.pos })), pos: dependsOn.pos };
  }

  const failure = entry(value, 'failure');
  if (failure !== undefined) {
    const mode = stringAt(failure, childPath(path, 'failure'), problems);
    if (mode !== undefined) {
      if ((FAILURE_MODES as readonly string[]).includes(mode)) draft.step.failure = mode as PipelineStep['failure'];
      else problems.add(childPath(path, 'failure'), `must be one of ${FAILURE_MODES.join(', ')}, not ${JSON.stringify(mode)}`, failure.pos);
    }
  }

  // Woodpecker's rule: a step with an image and no commands runs the image's own command.
  if (image === undefined && draft.step.commands.length === 0) {
    if (commands === undefined || isNull(commands)) {
      problems.add(path, 'a step needs `commands`, an `image` (which then runs its own command), or both', value.pos);
    } else if (commands.kind === 'seq' && commands.items.length === 0) {
      problems.add(childPath(path, 'commands'), 'is empty, and a step without an image needs commands', commands.pos);
    } // else the commands were refused one by one already
  }
  // The model's field order, so that JSON of a step reads as the YAML does.
  const { name, image: img, commands: cmds, environment: env, when: conditions, dependsOn: deps, failure: mode } = draft.step;
  draft.step = { name, ...(img !== undefined ? { image: img } : {}), commands: cmds, environment: env, when: conditions, dependsOn: deps, failure: mode };
  return draft;
}

function readCommands(value: YamlValue, path: string, problems: Problems): string[] {
  if (isNull(value)) return []; // `commands:` with nothing after it: none, as in Woodpecker
  if (value.kind === 'scalar' && typeof value.value === 'string') {
    return checkCommand(value.value, value.pos, path, problems) ? [value.value] : [];
  }
  if (value.kind !== 'seq') {
    problems.add(path, `must be a command or a list of commands, not ${describe(value)}`, value.pos);
    return [];
  }
  const commands: string[] = [];
  value.items.forEach((item, i) => {
    const itemPath = childPath(path, i);
    if (item.kind === 'scalar' && typeof item.value === 'string') {
      if (checkCommand(item.value, item.pos, itemPath, problems)) commands.push(item.value);
    } else if (item.kind === 'map') {
      problems.add(itemPath, 'must be a string, not a map: YAML reads `key: value` as a map, so quote a command that holds `: `', item.pos);
    } else {
      problems.add(itemPath, `must be a string, not ${describe(item)}${item.kind === 'scalar' && item.value !== null ? ' (quote it)' : ''}`, item.pos);
    }
  });
  return commands;
}

function checkCommand(command: string, pos: SourcePosition, path: string, problems: Problems): boolean {
  if (command.trim() === '') {
    problems.add(path, 'must not be empty', pos);
    return false;
  }
  if (command.includes('\0')) {
    problems.add(path, 'must not contain a NUL character', pos);
    return false;
  }
  return true;
}

function readEnvironment(value: YamlValue, path: string, problems: Problems): Record<string, string> {
  const env: Record<string, string> = {};
  if (value.kind !== 'map') {
    const hint = value.kind === 'seq' ? ' (write `NAME: value` entries, not `- NAME=value`)' : '';
    problems.add(path, `must be a map of NAME: value, not ${describe(value)}${hint}`, value.pos);
    return env;
  }
  for (const e of value.entries) {
    const varPath = childPath(path, e.key);
    if (!ENV_NAME_PATTERN.test(e.key)) {
      problems.add(varPath, 'is not a variable name: letters, digits and `_`, not starting with a digit', e.keyPos);
      continue;
    }
    if (isReservedVariableName(e.key)) {
      problems.add(varPath, '`CI` and `CI_*` variables are set by CI and cannot be set here', e.keyPos);
      continue;
    }
    const v = e.value;
    if (v.kind === 'scalar' && v.value !== null) {
      // Numbers and booleans as written: `1.0` stays `1.0`, `0755` stays `0755`.
      Object.defineProperty(env, e.key, { value: v.text, enumerable: true, writable: true, configurable: true }); // `__proto__` too
    } else {
      const what = v.kind === 'scalar' ? `it is empty (write '' for an empty value)` : `not ${describe(v)}`;
      problems.add(varPath, `must be a string, number or boolean, ${what}`, v.pos);
    }
  }
  return env;
}

function readWhen(value: YamlValue, path: string, problems: Problems): StepCondition[] {
  if (value.kind === 'map') {
    const condition = readCondition(value, path, problems);
    return condition === undefined ? [] : [condition];
  }
  if (value.kind === 'seq') {
    const conditions: StepCondition[] = [];
    value.items.forEach((item, i) => {
      const itemPath = childPath(path, i);
      if (item.kind !== 'map') {
        problems.add(itemPath, `a condition must be a map (event, branch, status), not ${describe(item)}`, item.pos);
        return;
      }
      const condition = readCondition(item, itemPath, problems);
      if (condition !== undefined) conditions.push(condition);
    });
    return conditions;
  }
  problems.add(path, `must be a condition (a map of event, branch, status) or a list of them, not ${describe(value)}`, value.pos);
  return [];
}

function readCondition(map: YamlMap, path: string, problems: Problems): StepCondition | undefined {
  checkKeys(map, path, CONDITION_KEYS, problems);
  const condition: StepCondition = {};
  let ok = true;

  const event = entry(map, 'event');
  if (event !== undefined) {
    const events = nonEmptyList(event, childPath(path, 'event'), problems, 'an event or a list of events');
    if (events === undefined) ok = false;
    else {
      const valid: BuildEvent[] = [];
      for (const e of events) {
        if ((BUILD_EVENTS as readonly string[]).includes(e.value)) valid.push(e.value as BuildEvent);
        else {
          ok = false;
          const hint = e.value === 'pull_request' ? ' (Slipway builds no pull requests)' : '';
          problems.add(e.path, `must be one of ${BUILD_EVENTS.join(', ')}, not ${JSON.stringify(e.value)}${hint}`, e.pos);
        }
      }
      condition.event = unique(valid);
    }
  }

  const branch = entry(map, 'branch');
  if (branch !== undefined) {
    const branches = readBranches(branch, childPath(path, 'branch'), problems);
    if (branches === undefined) ok = false;
    else condition.branch = branches;
  }

  const status = entry(map, 'status');
  if (status !== undefined) {
    const statuses = nonEmptyList(status, childPath(path, 'status'), problems, 'a status or a list of them');
    if (statuses === undefined) ok = false;
    else {
      const valid: ('success' | 'failure')[] = [];
      for (const s of statuses) {
        if ((CONDITION_STATUSES as readonly string[]).includes(s.value)) valid.push(s.value as 'success' | 'failure');
        else {
          ok = false;
          problems.add(s.path, `must be one of ${CONDITION_STATUSES.join(', ')}, not ${JSON.stringify(s.value)}`, s.pos);
        }
      }
      condition.status = unique(valid);
    }
  }
  return ok ? condition : undefined;
}

/**
 * Branch globs: a pattern, a list of them, or Woodpecker's `{include: [...]}`. Woodpecker's
 * `exclude` is refused rather than dropped: a dropped exclusion would run a step (a deploy, say)
 * on exactly the branches it was meant to skip.
 */
function readBranches(value: YamlValue, path: string, problems: Problems): string[] | undefined {
  let source = value;
  let sourcePath = path;
  if (value.kind === 'map') {
    let ok = true;
    for (const e of value.entries) {
      if (e.key === 'exclude') {
        problems.add(childPath(path, 'exclude'), 'branch exclusion is not supported: list the branches the step runs on', e.keyPos);
        ok = false;
      } else if (e.key !== 'include') {
        problems.add(childPath(path, e.key), `unknown key ${JSON.stringify(e.key)} (known: include)`, e.keyPos);
        ok = false;
      }
    }
    const include = entry(value, 'include');
    if (include === undefined) {
      if (ok) problems.add(path, 'a map of branches needs `include`', value.pos);
      return undefined;
    }
    if (!ok) return undefined;
    source = include;
    sourcePath = childPath(path, 'include');
  }
  const patterns = nonEmptyList(source, sourcePath, problems, 'a branch pattern or a list of them');
  if (patterns === undefined) return undefined;
  let ok = true;
  for (const p of patterns) {
    if (p.value.trim() === '' || /\s/.test(p.value)) {
      problems.add(p.path, `is not a branch pattern: ${JSON.stringify(p.value)}`, p.pos);
      ok = false;
    }
    // Matching is linear in the pattern and the branch (glob-pattern.ts); a branch name has at
    // most 255 characters, so a longer pattern is a mistake, or an attempt to slow matching down.
    else if (p.value.length > MAX_BRANCH_PATTERN_LENGTH) {
      problems.add(p.path, `is longer than ${MAX_BRANCH_PATTERN_LENGTH} characters`, p.pos);
      ok = false;
    }
  }
  return ok ? unique(patterns.map((p) => p.value)) : undefined;
}

// ---------------------------------------------------------------------------------------------
// The steps together: names, dependencies, cycles
// ---------------------------------------------------------------------------------------------

function checkNames(drafts: StepDraft[], problems: Problems): void {
  const first = new Map<string, StepDraft>();
  for (const d of drafts) {
    const namePath = d.namePath;
    if (!isValidName(d.step.name)) {
      problems.add(namePath, `${JSON.stringify(d.step.name)} is not a valid step name: ${NAME_RULE}`, d.namePos);
      continue;
    }
    const earlier = first.get(d.step.name);
    if (earlier === undefined) {
      first.set(d.step.name, d);
      continue;
    }
    const which = d.named ? '' : ` (the name given to unnamed step ${d.step.name.slice('step-'.length)})`;
    problems.add(namePath, `duplicate step name ${JSON.stringify(d.step.name)}${which}: ${earlier.path} has it too`, d.namePos);
  }
}

/**
 * pipeline.ts's rule (Woodpecker's): when no step has `depends_on`, each waits for the one
 * before it; when any has, those without wait for nothing. Then: every name must be a step, and
 * the whole must be a DAG.
 */
function resolveDependencies(drafts: StepDraft[], problems: Problems): void {
  const explicit = drafts.some((d) => d.dependsOn !== undefined);
  const names = new Set(drafts.map((d) => d.step.name));
  drafts.forEach((d, i) => {
    if (!explicit) {
      const before = drafts[i - 1];
      d.step.dependsOn = before === undefined ? [] : [before.step.name];
      return;
    }
    const deps: string[] = [];
    for (const ref of d.dependsOn?.names ?? []) {
      if (!names.has(ref.name)) {
        const known = [...names].filter((n) => n !== d.step.name);
        const list = known.length > 0 ? ` (steps: ${known.join(', ')})` : '';
        problems.add(childPath(d.path, 'depends_on'), `no step is named ${JSON.stringify(ref.name)}${list}`, ref.pos);
      } else if (!deps.includes(ref.name)) deps.push(ref.name);
    }
    d.step.dependsOn = deps;
  });
  if (!explicit || names.size !== drafts.length) return; // duplicate names: which step a name means is unclear

  const byName = new Map(drafts.map((d) => [d.step.name, d]));
  const cycles = findCycles(
    drafts.map((d) => d.step.name),
    new Map(drafts.map((d) => [d.step.name, d.step.dependsOn])),
  );
  for (const cycle of cycles) {
    const d = byName.get(cycle[0] as string) as StepDraft;
    const message =
      cycle.length === 1
        ? `step ${JSON.stringify(d.step.name)} depends on itself`
        : `depends_on makes a cycle: ${[...cycle, cycle[0]].join(' -> ')} (each waits for the next)`;
    problems.add(childPath(d.path, 'depends_on'), message, d.dependsOn?.pos ?? d.pos);
  }
}

// ---------------------------------------------------------------------------------------------
// Artifacts
// ---------------------------------------------------------------------------------------------

function readArtifacts(value: YamlValue, problems: Problems): string[] {
  if (isNull(value)) return [];
  const paths = stringList(value, 'artifacts', problems, 'a path or a list of paths (globs allowed)');
  if (paths === undefined) return [];
  const artifacts: string[] = [];
  for (const p of paths) {
    // The engine's own rule (it refuses these when the build ends): refused here when the pipeline is saved.
    const problem = artifactPatternProblem(p.value);
    if (problem !== undefined) problems.add(p.path, problem, p.pos);
    else if (!artifacts.includes(p.value)) artifacts.push(p.value);
  }
  return artifacts;
}

// ---------------------------------------------------------------------------------------------
// Small readers
// ---------------------------------------------------------------------------------------------

function entry(map: YamlMap, key: string): YamlValue | undefined {
  return map.entries.find((e) => e.key === key)?.value;
}

function keyPosOf(map: YamlMap, key: string): SourcePosition {
  return map.entries.find((e) => e.key === key)?.keyPos ?? map.pos;
}

function checkKeys(map: YamlMap, path: string, known: readonly string[], problems: Problems, ignored?: (key: string) => boolean): void {
  for (const e of map.entries) {
    if (known.includes(e.key) || ignored?.(e.key)) continue;
    const hint = KEY_HINTS[e.key];
    problems.add(childPath(path, e.key), `unknown key ${JSON.stringify(e.key)}${hint !== undefined ? `: ${hint}` : ''} (known: ${known.join(', ')})`, e.keyPos);
  }
}

function stringAt(value: YamlValue, path: string, problems: Problems): string | undefined {
  if (value.kind === 'scalar' && typeof value.value === 'string') return value.value;
  problems.add(path, `must be a string, not ${describe(value)}`, value.pos);
  return undefined;
}

interface Located {
  value: string;
  path: string;
  pos: SourcePosition;
}

/** A string or a list of strings (Woodpecker's "slice or string"). Undefined if anything in it is not a string. */
function stringList(value: YamlValue, path: string, problems: Problems, what: string): Located[] | undefined {
  if (value.kind === 'scalar' && typeof value.value === 'string') return [{ value: value.value, path, pos: value.pos }];
  if (value.kind !== 'seq') {
    problems.add(path, `must be ${what}, not ${describe(value)}`, value.pos);
    return undefined;
  }
  const out: Located[] = [];
  let ok = true;
  value.items.forEach((item, i) => {
    const itemPath = childPath(path, i);
    if (item.kind === 'scalar' && typeof item.value === 'string') out.push({ value: item.value, path: itemPath, pos: item.pos });
    else {
      problems.add(itemPath, `must be a string, not ${describe(item)}`, item.pos);
      ok = false;
    }
  });
  return ok ? out : undefined;
}

/** A string or a non-empty list of strings: an empty list would match nothing, and a step that can never run is a mistake. */
function nonEmptyList(value: YamlValue, path: string, problems: Problems, what: string): Located[] | undefined {
  const list = stringList(value, path, problems, what);
  if (list !== undefined && list.length === 0) {
    problems.add(path, 'must not be an empty list (the step would never run)', value.pos);
    return undefined;
  }
  return list;
}

/** `a number`, `a list`, `empty`, ... for messages. */
function describe(value: YamlValue): string {
  if (value.kind === 'map') return 'a map';
  if (value.kind === 'seq') return 'a list';
  if (value.value === null) return 'empty';
  if (typeof value.value === 'number') return `a number (${value.text})`;
  if (typeof value.value === 'boolean') return `a boolean (${value.text})`;
  return `the string ${JSON.stringify(value.value)}`;
}

function isNull(value: YamlValue): boolean {
  return value.kind === 'scalar' && value.value === null;
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function inTextOrder(list: PipelineProblem[]): PipelineProblem[] {
  return list
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.p.column - b.p.column || a.i - b.i)
    .map(({ p }) => p);
}

import { posix } from 'node:path';
import { InvalidPipeline } from '../ci-errors.ts';
import { artifactPatternProblem } from '../engine/collect-artifacts.ts';
import type { PipelineProblem } from '../ci-errors.ts';
import { isReservedVariableName } from './ci-variables.ts';
import { ENV_NAME_PATTERN, NAME_RULE, hasControlCharacter, isValidName } from './names.ts';
import type { BuildEvent, CommandsStep, Pipeline, PipelineStep, SourcePosition, StepCondition, StepKind } from './pipeline.ts';
import { imageTagTemplateProblem } from './image-tag.ts';
import { templateProblem } from './step-template.ts';
import { findCycles } from './step-graph.ts';
import { childPath, readYamlTree } from './yaml-tree.ts';
import type { YamlMap, YamlValue } from './yaml-tree.ts';

// The pipeline YAML (docs/pipelines.md is the user's description; keep the two in step), read in
// three passes: YAML text to a tree with positions (yaml-tree.ts); the tree to steps, checking
// each value where it stands; then the steps together (names, depends_on, cycles). Every problem
// found is collected, each with its path and position, and thrown at the end as one
// InvalidPipeline, so that a user fixes the file in one go.

export const PIPELINE_KEYS = ['steps', 'artifacts', 'executor'] as const;
/** The keys of every kind of step. */
export const COMMON_STEP_KEYS = ['name', 'kind', 'when', 'depends_on', 'failure'] as const;
export const STEP_KINDS: readonly StepKind[] = ['commands', 'build-image', 'deploy', 'publish'];
/** The keys of each kind of step beyond the common ones; a key of another kind is refused as misplaced. */
export const STEP_KIND_KEYS: Readonly<Record<StepKind, readonly string[]>> = {
  commands: ['image', 'commands', 'environment'],
  'build-image': ['dockerfile', 'context', 'tags', 'registry', 'buildArgs'],
  deploy: ['service', 'to', 'deadline'],
  publish: ['store', 'files', 'target'],
};
/** The keys of a step of kind `commands` (the default kind). */
export const STEP_KEYS = ['name', 'kind', ...STEP_KIND_KEYS.commands, 'when', 'depends_on', 'failure'] as const;
/** The longest deploy deadline: a day. */
export const MAX_DEPLOY_DEADLINE_SECONDS = 24 * 3600;
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
    problems.add(path, `a step must be a map (name, kind, commands, ...), not ${describe(value)}`, value.pos);
    return undefined;
  }
  const kind = readKind(value, path, problems);
  checkStepKeys(value, path, kind, problems);

  const draft: StepDraft = {
    step: { name: `step-${index + 1}`, kind: 'commands', commands: [], environment: {}, when: [], dependsOn: [], failure: 'fail' },
    path,
    pos: value.pos,
    namePos: value.pos,
    namePath: keyName !== undefined ? path : childPath(path, 'name'),
    named: false,
  };
  let name = draft.step.name;
  const nameValue = entry(value, 'name');
  if (keyName !== undefined) {
    name = keyName.name;
    draft.namePos = keyName.pos;
    draft.named = true;
    if (nameValue !== undefined) {
      problems.add(childPath(path, 'name'), 'a step of the map form is named by its key: remove `name`', keyPosOf(value, 'name'));
    }
  } else if (nameValue !== undefined) {
    const text = stringAt(nameValue, childPath(path, 'name'), problems);
    if (text !== undefined) {
      name = text;
      draft.namePos = nameValue.pos;
      draft.named = true;
    }
  }

  let when: StepCondition[] = [];
  const whenValue = entry(value, 'when');
  if (whenValue !== undefined) when = readWhen(whenValue, childPath(path, 'when'), problems);

  const dependsOn = entry(value, 'depends_on');
  if (dependsOn !== undefined) {
    const names = stringList(dependsOn, childPath(path, 'depends_on'), problems, 'a step name or a list of step names');
    draft.dependsOn = { names: (names ?? []).map((n) => ({ name: n.value, pos: n.pos })), pos: dependsOn.pos };
  }

  let failureMode: PipelineStep['failure'] = 'fail';
  const failure = entry(value, 'failure');
  if (failure !== undefined) {
    const mode = stringAt(failure, childPath(path, 'failure'), problems);
    if (mode !== undefined) {
      if ((FAILURE_MODES as readonly string[]).includes(mode)) failureMode = mode as PipelineStep['failure'];
      else problems.add(childPath(path, 'failure'), `must be one of ${FAILURE_MODES.join(', ')}, not ${JSON.stringify(mode)}`, failure.pos);
    }
  }

  // The model's field order, so that JSON of a step reads as the YAML does.
  const common = { when, dependsOn: [] as string[], failure: failureMode };
  const at: StepAt = { map: value, path, problems };
  switch (kind) {
    case undefined: // refused by readKind; the step is still named, for the checks of names and depends_on
    case 'commands':
      draft.step = { name, kind: 'commands', ...readCommandsFields(at, kind === undefined), ...common };
      break;
    case 'build-image': {
      const dockerfile = required(at, 'dockerfile', 'the Dockerfile\'s path in the workspace', readWorkspacePath) ?? '';
      const context = required(at, 'context', 'the build context, a directory of the workspace (`.` for all of it)', readWorkspacePath) ?? '';
      if (dockerfile !== '' && context !== '' && !insideContext(dockerfile, context)) {
        problems.add(childPath(path, 'dockerfile'), `${JSON.stringify(dockerfile)} is not inside the context ${JSON.stringify(context)}: the engine reads the Dockerfile from the context it is sent`, entry(value, 'dockerfile')?.pos ?? value.pos);
      }
      draft.step = {
        name,
        kind,
        dockerfile,
        context,
        tags: required(at, 'tags', 'the tags to push, REPOSITORY:TAG: one or a list (web:{{tag}}; {{tag}}, {{commit}}, {{build}} allowed)', readImageTags) ?? [],
        registry: required(at, 'registry', 'the name of a registry configured in the job', readName) ?? '',
        buildArgs: optional(at, 'buildArgs', readBuildArgs) ?? {},
        ...common,
      };
      break;
    }
    case 'deploy': {
      const deadline = optional(at, 'deadline', readDeadline);
      draft.step = {
        name,
        kind,
        service: required(at, 'service', 'the service to deploy', readName) ?? '',
        to: required(at, 'to', 'the environment to deploy to', readName) ?? '',
        ...(deadline !== undefined ? { deadlineSeconds: deadline } : {}),
        ...common,
      };
      break;
    }
    case 'publish':
      draft.step = {
        name,
        kind,
        store: required(at, 'store', 'the name of an artifact store configured in the job (`artifactStores`)', readName) ?? '',
        files: required(at, 'files', 'the workspace files to upload: a path or a list (globs allowed)', readFilePatterns) ?? [],
        target: required(at, 'target', 'the name to upload under, e.g. agent/{{tag}}/agent.tar.gz (ending in `/`: a directory)', readTarget) ?? '',
        ...common,
      };
      break;
  }
  return draft;
}

/** A step's `kind`: `commands` when absent; undefined (and a problem) when it names no kind. */
function readKind(map: YamlMap, path: string, problems: Problems): StepKind | undefined {
  const value = entry(map, 'kind');
  if (value === undefined) return 'commands';
  const text = stringAt(value, childPath(path, 'kind'), problems);
  if (text === undefined) return undefined;
  if ((STEP_KINDS as readonly string[]).includes(text)) return text as StepKind;
  problems.add(childPath(path, 'kind'), `is not a kind of step: ${JSON.stringify(text)} (kinds: ${STEP_KINDS.join(', ')})`, value.pos);
  return undefined;
}

/**
 * Unknown keys, and keys of another kind than the step's (`commands` in a publish step): each
 * refused at the key. A step whose kind is unknown is checked against every kind's keys.
 */
function checkStepKeys(map: YamlMap, path: string, kind: StepKind | undefined, problems: Problems): void {
  const own = kind === undefined ? STEP_KINDS.flatMap((k) => STEP_KIND_KEYS[k]) : STEP_KIND_KEYS[kind];
  const known = ['name', 'kind', ...own, 'when', 'depends_on', 'failure'];
  for (const e of map.entries) {
    if (known.includes(e.key)) continue;
    const owner = STEP_KINDS.find((k) => STEP_KIND_KEYS[k].includes(e.key));
    if (owner !== undefined && kind !== undefined) {
      const hint = kind === 'build-image' && e.key === 'image' ? ': the image is what the step builds, named by `registry` and `tags`' : '';
      problems.add(childPath(path, e.key), `\`${e.key}\` belongs to steps of kind ${owner}, not to a ${kind} step${hint} (keys of a ${kind} step: ${known.join(', ')})`, e.keyPos);
      continue;
    }
    const hint = KEY_HINTS[e.key];
    problems.add(childPath(path, e.key), `unknown key ${JSON.stringify(e.key)}${hint !== undefined ? `: ${hint}` : ''} (known: ${known.join(', ')})`, e.keyPos);
  }
}

/** Where the fields of one step are read: its map, its path, the problems. */
interface StepAt {
  map: YamlMap;
  path: string;
  problems: Problems;
}

type FieldReader<T> = (value: YamlValue, path: string, problems: Problems) => T | undefined;

function required<T>(at: StepAt, key: string, what: string, read: FieldReader<T>): T | undefined {
  const value = entry(at.map, key);
  if (value === undefined || isNull(value)) {
    at.problems.add(childPath(at.path, key), `is required: ${what}`, value?.pos ?? at.map.pos);
    return undefined;
  }
  return read(value, childPath(at.path, key), at.problems);
}

function optional<T>(at: StepAt, key: string, read: FieldReader<T>): T | undefined {
  const value = entry(at.map, key);
  return value === undefined ? undefined : read(value, childPath(at.path, key), at.problems);
}

/** The fields of a `commands` step. `quiet`: the step's kind was refused, so say nothing about missing commands. */
function readCommandsFields(at: StepAt, quiet: boolean): Pick<CommandsStep, 'image' | 'commands' | 'environment'> {
  const { map: value, path } = at;
  let img: string | undefined;
  const image = entry(value, 'image');
  if (image !== undefined) {
    const text = stringAt(image, childPath(path, 'image'), at.problems);
    if (text !== undefined) {
      if (/^\s*$/.test(text)) at.problems.add(childPath(path, 'image'), 'must not be empty', image.pos);
      else if (/\s/.test(text) || text.startsWith('-')) at.problems.add(childPath(path, 'image'), `is not an image reference: ${JSON.stringify(text)}`, image.pos);
      else img = text;
    }
  }

  const commands = entry(value, 'commands');
  const list = commands !== undefined ? readCommands(commands, childPath(path, 'commands'), at.problems) : [];

  const environment = entry(value, 'environment');
  const env = environment !== undefined ? readEnvironment(environment, childPath(path, 'environment'), at.problems) : {};

  // Woodpecker's rule: a step with an image and no commands runs the image's own command.
  if (!quiet && image === undefined && list.length === 0) {
    if (commands === undefined || isNull(commands)) {
      at.problems.add(path, 'a step needs `commands`, an `image` (which then runs its own command), or both', value.pos);
    } else if (commands.kind === 'seq' && commands.items.length === 0) {
      at.problems.add(childPath(path, 'commands'), 'is empty, and a step without an image needs commands', commands.pos);
    } // else the commands were refused one by one already
  }
  return { ...(img !== undefined ? { image: img } : {}), commands: list, environment: env };
}

// ---------------------------------------------------------------------------------------------
// The fields of delivery steps
// ---------------------------------------------------------------------------------------------

/** A name of something the job configures (a registry, a store), a service or an environment: the rule for names. */
function readName(value: YamlValue, path: string, problems: Problems): string | undefined {
  const text = stringAt(value, path, problems);
  if (text === undefined) return undefined;
  if (!isValidName(text)) {
    problems.add(path, `${JSON.stringify(text)} is not a valid name: ${NAME_RULE}`, value.pos);
    return undefined;
  }
  return text;
}

/** Whether the workspace path `file` is under the directory `context` (`.`: the whole workspace). */
function insideContext(file: string, context: string): boolean {
  const dir = posix.normalize(context).replace(/\/+$/, '');
  return dir === '.' || posix.normalize(file).startsWith(`${dir}/`);
}

/** A path inside the workspace (`.` for the workspace itself). */
function readWorkspacePath(value: YamlValue, path: string, problems: Problems): string | undefined {
  const text = stringAt(value, path, problems);
  if (text === undefined) return undefined;
  const problem = text === '.' ? undefined : artifactPatternProblem(text);
  if (problem !== undefined) {
    problems.add(path, problem.replace('artifact paths are', 'paths are'), value.pos);
    return undefined;
  }
  return text;
}

function readFilePatterns(value: YamlValue, path: string, problems: Problems): string[] | undefined {
  const list = nonEmptyList(value, path, problems, 'a path or a list of paths (globs allowed)', 'nothing would be uploaded');
  if (list === undefined) return undefined;
  const out: string[] = [];
  let ok = true;
  for (const p of list) {
    const problem = artifactPatternProblem(p.value);
    if (problem !== undefined) {
      problems.add(p.path, problem.replace('artifact paths are', 'paths are'), p.pos);
      ok = false;
    } else if (!out.includes(p.value)) out.push(p.value);
  }
  return ok ? out : undefined;
}

/** A build-image step's `tags`: `REPOSITORY:TAG` templates (image-tag.ts). */
function readImageTags(value: YamlValue, path: string, problems: Problems): string[] | undefined {
  const list = nonEmptyList(value, path, problems, 'a tag or a list of tags', 'nothing would be pushed');
  if (list === undefined) return undefined;
  let ok = true;
  for (const t of list) {
    const problem = t.value.trim() === '' ? 'must not be empty' : imageTagTemplateProblem(t.value);
    if (problem !== undefined) {
      problems.add(t.path, problem, t.pos);
      ok = false;
    }
  }
  return ok ? unique(list.map((t) => t.value)) : undefined;
}

/**
 * A publish step's `target`: a template (step-template.ts) naming a path in the store, relative,
 * without `.` or `..` segments; ending in `/` it names a directory. `sha256/` is the store's
 * content-addressed half, and not a name.
 */
function readTarget(value: YamlValue, path: string, problems: Problems): string | undefined {
  const text = stringAt(value, path, problems);
  if (text === undefined) return undefined;
  const segments = text.replace(/\/$/, '').split('/');
  const problem =
    text.trim() === '' ? 'must not be empty'
    : hasControlCharacter(text) || text.includes('\\') ? 'must not contain control characters or `\\`'
    : text.startsWith('/') ? 'must be relative to the store\'s URL (no leading `/`)'
    : segments.some((s) => s === '' || s === '.' || s === '..') ? 'must not have empty, `.` or `..` segments'
    : segments[0] === 'sha256' ? '`sha256/` is where the store keeps files by content hash: choose another first segment'
    : templateProblem(text);
  if (problem !== undefined) {
    problems.add(path, problem, value.pos);
    return undefined;
  }
  return text;
}

/** `buildArgs`: NAME: value, as `environment` (values of strings, numbers and booleans as written). */
function readBuildArgs(value: YamlValue, path: string, problems: Problems): Record<string, string> | undefined {
  if (value.kind !== 'map') {
    problems.add(path, `must be a map of NAME: value, not ${describe(value)}`, value.pos);
    return undefined;
  }
  const args: Record<string, string> = {};
  for (const e of value.entries) {
    const argPath = childPath(path, e.key);
    if (!ENV_NAME_PATTERN.test(e.key)) {
      problems.add(argPath, 'is not a build argument name: letters, digits and `_`, not starting with a digit', e.keyPos);
      continue;
    }
    const v = e.value;
    if (v.kind === 'scalar' && v.value !== null) Object.defineProperty(args, e.key, { value: v.text, enumerable: true, writable: true, configurable: true });
    else problems.add(argPath, `must be a string, number or boolean, ${v.kind === 'scalar' ? `it is empty (write '' for an empty value)` : `not ${describe(v)}`}`, v.pos);
  }
  return args;
}

/** A deploy deadline: seconds (a whole number), or `90s`, `10m`, `1h`. */
function readDeadline(value: YamlValue, path: string, problems: Problems): number | undefined {
  let seconds: number | undefined;
  if (value.kind === 'scalar' && typeof value.value === 'number' && Number.isInteger(value.value)) seconds = value.value;
  else if (value.kind === 'scalar' && typeof value.value === 'string') {
    const m = /^(\d{1,6})(s|m|h)$/.exec(value.value.trim());
    if (m !== null) seconds = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  }
  if (seconds === undefined) {
    problems.add(path, `must be a duration: seconds, or a number with s, m or h (90s, 10m, 1h), not ${describe(value)}`, value.pos);
    return undefined;
  }
  if (seconds < 1 || seconds > MAX_DEPLOY_DEADLINE_SECONDS) {
    problems.add(path, `must be from 1 second to ${MAX_DEPLOY_DEADLINE_SECONDS / 3600} hours`, value.pos);
    return undefined;
  }
  return seconds;
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
function nonEmptyList(value: YamlValue, path: string, problems: Problems, what: string, why = 'the step would never run'): Located[] | undefined {
  const list = stringList(value, path, problems, what);
  if (list !== undefined && list.length === 0) {
    problems.add(path, `must not be an empty list (${why})`, value.pos);
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

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { InvalidPipeline, type PipelineProblem } from '../ci-errors.ts';
import { parsePipeline } from './parse-pipeline.ts';
import type { CommandsStep, Pipeline, PipelineStep } from './pipeline.ts';
import { topologicalOrder } from './step-graph.ts';

/** YAML text from lines, so that line numbers in the tests are easy to count. */
function lines(...text: string[]): string {
  return text.join('\n') + '\n';
}

/** The problems of a refused pipeline; fails the test when it is accepted. */
function problemsOf(text: string): PipelineProblem[] {
  try {
    parsePipeline(text);
  } catch (e) {
    assert.ok(e instanceof InvalidPipeline, `expected InvalidPipeline, got ${String(e)}`);
    return e.problems;
  }
  assert.fail(`expected the pipeline to be refused:\n${text}`);
}

/** The one problem at `path`, checked for its position and (a part of) its message. */
function assertProblem(problems: PipelineProblem[], path: string, line: number, column: number, message: string | RegExp): void {
  const found = problems.filter((p) => p.path === path);
  assert.equal(found.length, 1, `expected one problem at ${JSON.stringify(path)}, got ${JSON.stringify(problems, null, 1)}`);
  const p = found[0] as PipelineProblem;
  assert.deepEqual({ line: p.line, column: p.column }, { line, column }, `position of ${path}: ${p.message}`);
  if (typeof message === 'string') assert.ok(p.message.includes(message), `message of ${path}: ${JSON.stringify(p.message)} lacks ${JSON.stringify(message)}`);
  else assert.match(p.message, message);
}

function step(partial: Partial<Omit<CommandsStep, 'kind'>> & { name: string }): CommandsStep {
  return { kind: 'commands', commands: [], environment: {}, when: [], dependsOn: [], failure: 'fail', ...partial };
}

describe('parsePipeline: valid pipelines', () => {
  it('reads a list of steps, each waiting for the one before it', () => {
    const pipeline = parsePipeline(
      lines(
        'steps:',
        '  - name: build',
        '    commands:',
        '      - npm ci',
        '      - npm run build',
        '  - name: test',
        '    commands: npm test',
        'artifacts:',
        '  - dist/**',
        'executor: node',
      ),
    );
    assert.deepEqual(pipeline, {
      steps: [
        step({ name: 'build', commands: ['npm ci', 'npm run build'] }),
        step({ name: 'test', commands: ['npm test'], dependsOn: ['build'] }),
      ],
      artifacts: ['dist/**'],
      executor: 'node',
    } satisfies Pipeline);
  });

  it("reads Woodpecker's map form, keeping the file's order and naming steps by their keys", () => {
    const pipeline = parsePipeline(
      lines('steps:', '  zeta:', '    commands: [echo z]', '  alpha:', '    image: alpine:3', '    commands: [echo a]', '  mid:', '    commands: [echo m]'),
    );
    assert.deepEqual(
      pipeline.steps.map((s) => [s.name, s.dependsOn]),
      [
        ['zeta', []],
        ['alpha', ['zeta']],
        ['mid', ['alpha']],
      ],
    );
    assert.equal((pipeline.steps[1] as CommandsStep).image, 'alpine:3');
  });

  it('names unnamed steps of the list form step-1, step-2, ... by position', () => {
    const pipeline = parsePipeline(lines('steps:', '  - commands: [a]', '  - name: two', '    commands: [b]', '  - commands: [c]'));
    assert.deepEqual(
      pipeline.steps.map((s) => s.name),
      ['step-1', 'two', 'step-3'],
    );
  });

  it('keeps an image step without commands: the image runs its own command', () => {
    const pipeline = parsePipeline(lines('steps:', '  - name: plugin', '    image: registry.local:5000/tools/notify:1.2'));
    assert.deepEqual(pipeline.steps, [step({ name: 'plugin', image: 'registry.local:5000/tools/notify:1.2' })]);
    assert.deepEqual((parsePipeline(lines('steps:', '  - name: p', '    image: x', '    commands: []')).steps[0] as CommandsStep).commands, []);
  });

  it('reads environment values of strings, numbers and booleans as written', () => {
    const pipeline = parsePipeline(
      lines(
        'steps:',
        '  - name: env',
        '    commands: [env]',
        '    environment:',
        '      GOOS: linux',
        '      CGO_ENABLED: 0',
        '      VERSION: 1.10',
        '      MODE: 0755',
        '      DEBUG: true',
        '      WORD: yes',
        '      EMPTY: ""',
        '      __proto__: kept',
      ),
    );
    const env = (pipeline.steps[0] as CommandsStep).environment;
    assert.deepEqual(
      Object.entries(env),
      [
        ['GOOS', 'linux'],
        ['CGO_ENABLED', '0'],
        ['VERSION', '1.10'],
        ['MODE', '0755'],
        ['DEBUG', 'true'],
        ['WORD', 'yes'],
        ['EMPTY', ''],
        ['__proto__', 'kept'],
      ],
    );
    assert.equal(Object.getPrototypeOf(env), Object.prototype);
  });

  it('reads when as a map or a list, each field a string or a list, and branch include', () => {
    const pipeline = parsePipeline(
      lines(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '    when:',
        '      event: tag',
        '  - name: b',
        '    commands: [x]',
        '    when:',
        '      - event: [push, manual]',
        '        branch: [main, release/*]',
        '      - event: cron',
        '        status: [success, failure]',
        '  - name: c',
        '    commands: [x]',
        '    when:',
        '      branch:',
        '        include: [main]',
        '      status: failure',
        '  - name: d',
        '    commands: [x]',
        '    when: []',
      ),
    );
    assert.deepEqual(
      pipeline.steps.map((s) => s.when),
      [
        [{ event: ['tag'] }],
        [
          { event: ['push', 'manual'], branch: ['main', 'release/*'] },
          { event: ['cron'], status: ['success', 'failure'] },
        ],
        [{ branch: ['main'], status: ['failure'] }],
        [],
      ],
    );
  });

  it('reads failure: ignore and failure: fail', () => {
    const pipeline = parsePipeline(lines('steps:', '  - name: lint', '    commands: [x]', '    failure: ignore', '  - name: t', '    commands: [x]', '    failure: fail'));
    assert.deepEqual(
      pipeline.steps.map((s) => s.failure),
      ['ignore', 'fail'],
    );
  });

  it('accepts a single artifact path, and leaves out duplicates', () => {
    assert.deepEqual(parsePipeline(lines('steps:', '  - commands: [x]', 'artifacts: out/report.xml')).artifacts, ['out/report.xml']);
    assert.deepEqual(parsePipeline(lines('steps:', '  - commands: [x]', 'artifacts: [a, b/*.tgz, a]')).artifacts, ['a', 'b/*.tgz']);
  });

  it('applies YAML anchors, aliases and << merge keys, the step winning over what it merges', () => {
    const pipeline = parsePipeline(
      lines(
        'variables:',
        '  - &node_image node:20',
        'x-defaults: &defaults',
        '  image: *node_image',
        '  environment:',
        '    NODE_ENV: test',
        '  failure: ignore',
        'steps:',
        '  - name: one',
        '    <<: *defaults',
        '    commands: [npm test]',
        '  - <<: *defaults',
        '    name: two',
        '    failure: fail',
        '    commands: [npm run lint]',
      ),
    );
    assert.deepEqual(pipeline.steps, [
      step({ name: 'one', image: 'node:20', commands: ['npm test'], environment: { NODE_ENV: 'test' }, failure: 'ignore' }),
      step({ name: 'two', image: 'node:20', commands: ['npm run lint'], environment: { NODE_ENV: 'test' }, failure: 'fail', dependsOn: ['one'] }),
    ]);
  });

  it('accepts x-* keys as homes for anchors, and merges a list of maps, the earlier winning', () => {
    const pipeline = parsePipeline(lines('x-a: &a {image: first, failure: ignore}', 'x-b: &b {image: second, commands: [x]}', 'steps:', '  - <<: [*a, *b]', '    name: s'));
    assert.deepEqual(pipeline.steps, [step({ name: 's', image: 'first', failure: 'ignore', commands: ['x'] })]);
  });

  it('keeps multi-line block commands as one command', () => {
    const pipeline = parsePipeline(lines('steps:', '  - name: s', '    commands:', '      - |', '        for i in 1 2; do', '          echo $i', '        done'));
    assert.deepEqual((pipeline.steps[0] as CommandsStep).commands, ['for i in 1 2; do\n  echo $i\ndone\n']);
  });

  it('accepts a JSON document (YAML is a superset)', () => {
    const pipeline = parsePipeline('{"steps": [{"name": "a", "commands": ["true"]}], "artifacts": []}');
    assert.deepEqual(pipeline, { steps: [step({ name: 'a', commands: ['true'] })], artifacts: [] });
  });

  it('gives JSON that parses back to the same pipeline', () => {
    const text = lines('steps:', '  - name: a', '    image: alpine', '    commands: [x]', '    when: {event: push}', '  - name: b', '    depends_on: [a]', '    commands: [y]');
    const pipeline = parsePipeline(text);
    assert.deepEqual(JSON.parse(JSON.stringify(pipeline)), pipeline);
  });
});

describe('parsePipeline: depends_on', () => {
  it('without depends_on anywhere, each step waits for the one before it', () => {
    const p = parsePipeline(lines('steps:', '  - {name: a, commands: [x]}', '  - {name: b, commands: [x]}', '  - {name: c, commands: [x]}'));
    assert.deepEqual(
      p.steps.map((s) => s.dependsOn),
      [[], ['a'], ['b']],
    );
  });

  it('with depends_on on one step, steps without it wait for nothing (Woodpecker)', () => {
    const p = parsePipeline(
      lines('steps:', '  - {name: build, commands: [x]}', '  - {name: deploy, commands: [x], depends_on: [build, test]}', '  - {name: test, commands: [x]}'),
    );
    assert.deepEqual(
      p.steps.map((s) => [s.name, s.dependsOn]),
      [
        ['build', []],
        ['deploy', ['build', 'test']],
        ['test', []],
      ],
    );
  });

  it('reads depends_on: [] as "start at once", and a single name as a list of one', () => {
    const p = parsePipeline(lines('steps:', '  - {name: a, commands: [x], depends_on: []}', '  - {name: b, commands: [x], depends_on: a}', '  - {name: c, commands: [x]}'));
    assert.deepEqual(
      p.steps.map((s) => s.dependsOn),
      [[], ['a'], []],
    );
  });

  it('drops a name given twice in one depends_on', () => {
    const p = parsePipeline(lines('steps:', '  - {name: a, commands: [x]}', '  - {name: b, commands: [x], depends_on: [a, a]}'));
    assert.deepEqual(p.steps[1]?.dependsOn, ['a']);
  });

  it('refuses a step depending on an unknown step, listing the steps there are', () => {
    const problems = problemsOf(lines('steps:', '  - {name: a, commands: [x]}', '  - name: b', '    commands: [x]', '    depends_on: [a, nope]'));
    assertProblem(problems, 'steps[1].depends_on', 5, 21, 'no step is named "nope" (steps: a)');
  });

  it('refuses a cycle, naming it from the first step of the file on it', () => {
    const problems = problemsOf(
      lines(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '  - name: b',
        '    commands: [x]',
        '    depends_on: [d]',
        '  - name: c',
        '    commands: [x]',
        '    depends_on: [b]',
        '  - name: d',
        '    commands: [x]',
        '    depends_on: [c, a]',
      ),
    );
    assert.equal(problems.length, 1);
    assertProblem(problems, 'steps[1].depends_on', 6, 17, 'depends_on makes a cycle: b -> d -> c -> b');
  });

  it('refuses a step that depends on itself', () => {
    const problems = problemsOf(lines('steps:', '  build:', '    commands: [x]', '    depends_on: build'));
    assertProblem(problems, 'steps.build.depends_on', 4, 17, 'step "build" depends on itself');
  });

  it('reports each of two separate cycles', () => {
    const problems = problemsOf(
      lines(
        'steps:',
        '  a: {commands: [x], depends_on: [b]}',
        '  b: {commands: [x], depends_on: [a]}',
        '  c: {commands: [x], depends_on: [d]}',
        '  d: {commands: [x], depends_on: [c]}',
      ),
    );
    assert.deepEqual(
      problems.map((p) => [p.path, p.message]),
      [
        ['steps.a.depends_on', 'depends_on makes a cycle: a -> b -> a (each waits for the next)'],
        ['steps.c.depends_on', 'depends_on makes a cycle: c -> d -> c (each waits for the next)'],
      ],
    );
  });

  it('resolves any DAG as written, and its steps can be ordered (property)', () => {
    fc.assert(
      fc.property(randomDag(), ({ names, deps }) => {
        const text = stringify({ steps: names.map((name, i) => ({ name, commands: [`echo ${name}`], depends_on: deps[i] })) });
        const pipeline = parsePipeline(text);
        assert.deepEqual(
          pipeline.steps.map((s) => s.dependsOn),
          deps.map((d) => [...new Set(d)]),
        );
        const order = topologicalOrder(pipeline.steps);
        const position = new Map(order.map((n, i) => [n, i]));
        for (const s of pipeline.steps) for (const d of s.dependsOn) assert.ok((position.get(d) ?? -1) < (position.get(s.name) ?? -1));
      }),
      { numRuns: 150 },
    );
  });

  it('refuses a DAG with one edge turned back into a cycle, naming a real cycle (property)', () => {
    fc.assert(
      fc.property(
        randomDag().filter(({ deps }) => deps.some((d) => d.length > 0)),
        fc.nat(),
        ({ names, deps }, pick) => {
          // An edge b -> a (b waits for a): add a path back, a waits for b, closing a cycle.
          const edges = deps.flatMap((d, i) => d.map((a) => [names[i] as string, a] as const));
          const [b, a] = edges[pick % edges.length] as readonly [string, string];
          const closed = deps.map((d, i) => (names[i] === a ? [...d, b] : d));
          const text = stringify({ steps: names.map((name, i) => ({ name, commands: ['true'], depends_on: closed[i] })) });
          const problems = problemsOf(text);
          assert.ok(problems.length >= 1);
          for (const p of problems) {
            const m = /(?:makes a cycle: (.*) \(each)|(?:step "(.*)" depends on itself)/.exec(p.message);
            assert.ok(m !== null, p.message);
            const cycle = m[1] !== undefined ? m[1].split(' -> ') : [m[2] as string, m[2] as string];
            const depsOf = new Map(names.map((n, i) => [n, closed[i] as string[]]));
            for (let i = 0; i + 1 < cycle.length; i++) assert.ok(depsOf.get(cycle[i] as string)?.includes(cycle[i + 1] as string), `${p.message}: not an edge`);
            assert.equal(cycle[0], cycle[cycle.length - 1]);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

/** Random step names and, for each step, names of earlier steps it depends on: always a DAG. */
function randomDag(): fc.Arbitrary<{ names: string[]; deps: string[][] }> {
  return fc
    .uniqueArray(fc.stringMatching(/^[a-z][a-z0-9_.-]{0,8}$/), { minLength: 1, maxLength: 12 })
    .chain((names) =>
      fc
        .tuple(...names.map((_, i) => fc.subarray(names.slice(0, i))))
        .map((deps) => ({ names, deps: deps.map((d) => [...d]) })),
    )
    .chain(({ names, deps }) =>
      // Shuffle the file order: dependencies may point forward in the file too.
      fc.shuffledSubarray(names.map((_, i) => i), { minLength: names.length, maxLength: names.length }).map((order) => ({
        names: order.map((i) => names[i] as string),
        deps: order.map((i) => deps[i] as string[]),
      })),
    );
}

describe('parsePipeline: refused pipelines, each problem with its line and column', () => {
  it('refuses YAML syntax errors at their own position', () => {
    const problems = problemsOf(lines('steps:', '  - name: a', '    commands: [x', '  - name: b'));
    assert.equal(problems.length, 1);
    assert.equal(problems[0]?.path, '');
    assert.match(problems[0]?.message ?? '', /^YAML syntax: /);
    assert.ok((problems[0]?.line ?? 0) >= 3);
  });

  it('refuses a key given twice, at the second', () => {
    const problems = problemsOf(lines('steps:', '  - name: a', '    commands: [x]', '    name: b'));
    assertProblem(problems, '', 4, 5, 'given twice');
  });

  it('refuses a second YAML document', () => {
    assertProblem(problemsOf(lines('steps:', '  - commands: [x]', '---', 'steps: []')), '', 3, 1, 'one YAML document');
  });

  it('refuses an empty pipeline, and one of comments only', () => {
    assertProblem(problemsOf(''), '', 1, 1, 'the pipeline is empty');
    assertProblem(problemsOf('# nothing yet\n'), '', 1, 1, 'the pipeline is empty');
  });

  it('refuses a document that is not a map', () => {
    assertProblem(problemsOf('- a\n- b\n'), '', 1, 1, 'must be a map with `steps`, not a list');
  });

  it('refuses a pipeline without steps, or with none in it', () => {
    assertProblem(problemsOf(lines('artifacts: [a]')), 'steps', 1, 1, 'is required');
    assertProblem(problemsOf(lines('steps: []')), 'steps', 1, 8, 'at least one step');
    assertProblem(problemsOf(lines('steps: {}')), 'steps', 1, 8, 'at least one step');
    assertProblem(problemsOf(lines('steps:')), 'steps', 1, 7, 'it is empty');
    assertProblem(problemsOf(lines('steps: echo hi')), 'steps', 1, 8, 'must be a list of steps');
  });

  it('refuses unknown keys at the key, listing the known ones, with a hint for Woodpecker keys', () => {
    const problems = problemsOf(
      lines('steps:', '  - name: a', '    commands: [x]', '    privileged: true', '    secrets: [token]', 'services:', '  - name: db', 'pipeline: {}'),
    );
    assertProblem(problems, 'steps[0].privileged', 4, 5, 'unknown key "privileged" (known: name, kind, image, commands, environment, when, depends_on, failure)');
    assertProblem(problems, 'steps[0].secrets', 5, 5, "secrets are the job's: set them in the job's `secrets`");
    assertProblem(problems, 'services', 6, 1, 'service containers are not supported');
    assertProblem(problems, 'pipeline', 8, 1, 'the list of steps is called `steps`');
  });

  it('refuses a non-string image, an empty one, and one with spaces', () => {
    const problems = problemsOf(
      lines('steps:', '  - name: a', '    image: 5', '  - name: b', '    image:', '  - name: c', '    image: "alpine latest"', '  - name: d', '    image: [alpine]'),
    );
    assertProblem(problems, 'steps[0].image', 3, 12, 'must be a string, not a number (5)');
    assertProblem(problems, 'steps[1].image', 5, 11, 'must be a string, not empty');
    assertProblem(problems, 'steps[2].image', 7, 12, 'is not an image reference');
    assertProblem(problems, 'steps[3].image', 9, 12, 'must be a string, not a list');
  });

  it('refuses a step with neither commands nor image, at the step', () => {
    const problems = problemsOf(lines('steps:', '  - name: a', '    environment: {A: b}', '  - name: b', '    commands: []', '  - name: c', '    commands:'));
    assertProblem(problems, 'steps[0]', 2, 5, 'a step needs `commands`, an `image`');
    assertProblem(problems, 'steps[1].commands', 5, 15, 'is empty, and a step without an image needs commands');
    assertProblem(problems, 'steps[2]', 6, 5, 'a step needs `commands`');
  });

  it('refuses non-string commands, with a hint for `key: value` read as a map', () => {
    const problems = problemsOf(
      lines('steps:', '  - name: a', '    commands:', '      - echo ok', '      - 42', '      - echo key: value', '      - ""', '      - [x]', '  - name: b', '    commands: {a: b}'),
    );
    assertProblem(problems, 'steps[0].commands[1]', 5, 9, 'must be a string, not a number (42) (quote it)');
    assertProblem(problems, 'steps[0].commands[2]', 6, 9, 'quote a command that holds `: `');
    assertProblem(problems, 'steps[0].commands[3]', 7, 9, 'must not be empty');
    assertProblem(problems, 'steps[0].commands[4]', 8, 9, 'must be a string, not a list');
    assertProblem(problems, 'steps[1].commands', 10, 15, 'must be a command or a list of commands, not a map');
  });

  it('refuses bad environment names, CI_* names, empty values and nested values', () => {
    const problems = problemsOf(
      lines(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '    environment:',
        '      1ST: x',
        '      CI_COMMIT_SHA: fake',
        '      CI: "false"',
        '      EMPTY:',
        '      LIST: [a]',
        '      my.var: x',
        '  - name: b',
        '    commands: [x]',
        '    environment: [A=b]',
      ),
    );
    assertProblem(problems, 'steps[0].environment["1ST"]', 5, 7, 'is not a variable name');
    assertProblem(problems, 'steps[0].environment.CI_COMMIT_SHA', 6, 7, 'are set by CI');
    assertProblem(problems, 'steps[0].environment.CI', 7, 7, 'are set by CI');
    assertProblem(problems, 'steps[0].environment.EMPTY', 8, 13, "it is empty (write '' for an empty value)");
    assertProblem(problems, 'steps[0].environment.LIST', 9, 13, 'must be a string, number or boolean, not a list');
    assertProblem(problems, 'steps[0].environment["my.var"]', 10, 7, 'is not a variable name');
    assertProblem(problems, 'steps[1].environment', 13, 18, 'not `- NAME=value`');
  });

  it('refuses invalid events and statuses at the value, unknown condition keys at the key', () => {
    const problems = problemsOf(
      lines(
        'steps:',
        '  - name: a',
        '    commands: [x]',
        '    when:',
        '      event: [push, pull_request]',
        '      status: done',
        '      path: src/*',
        '  - name: b',
        '    commands: [x]',
        '    when:',
        '      - event: []',
        '      - deploy',
        '      - branch: 5',
      ),
    );
    assertProblem(problems, 'steps[0].when.event[1]', 5, 21, 'must be one of manual, push, tag, cron, not "pull_request" (Slipway builds no pull requests)');
    assertProblem(problems, 'steps[0].when.status', 6, 15, 'must be one of success, failure, not "done"');
    assertProblem(problems, 'steps[0].when.path', 7, 7, 'unknown key "path": path conditions are not supported (known: event, branch, status)');
    assertProblem(problems, 'steps[1].when[0].event', 11, 16, 'must not be an empty list');
    assertProblem(problems, 'steps[1].when[1]', 12, 9, 'a condition must be a map');
    assertProblem(problems, 'steps[1].when[2].branch', 13, 17, 'must be a branch pattern or a list of them, not a number (5)');
  });

  it("refuses Woodpecker's branch exclude rather than drop it", () => {
    const problems = problemsOf(lines('steps:', '  - name: deploy', '    commands: [x]', '    when:', '      branch:', '        include: [main]', '        exclude: [main-old]'));
    assertProblem(problems, 'steps[0].when.branch.exclude', 7, 9, 'branch exclusion is not supported');
  });

  it('refuses a when that is neither a map nor a list', () => {
    assertProblem(problemsOf(lines('steps:', '  - name: a', '    commands: [x]', '    when: push')), 'steps[0].when', 4, 11, 'must be a condition');
  });

  it('refuses a failure mode other than fail and ignore', () => {
    assertProblem(problemsOf(lines('steps:', '  - name: a', '    commands: [x]', '    failure: skip')), 'steps[0].failure', 4, 14, 'must be one of fail, ignore, not "skip"');
  });

  it('refuses invalid and duplicate step names', () => {
    const problems = problemsOf(
      lines('steps:', '  - name: build', '    commands: [x]', '  - name: build', '    commands: [x]', '  - name: "my step"', '    commands: [x]', '  - name: step-5', '    commands: [x]', '  - commands: [x]'),
    );
    assertProblem(problems, 'steps[1].name', 4, 11, 'duplicate step name "build": steps[0] has it too');
    assertProblem(problems, 'steps[2].name', 6, 11, '"my step" is not a valid step name');
    assertProblem(problems, 'steps[4].name', 10, 5, 'duplicate step name "step-5" (the name given to unnamed step 5): steps[3] has it too');
  });

  it('refuses a name inside a step of the map form, and an invalid key name', () => {
    const problems = problemsOf(lines('steps:', '  build:', '    name: other', '    commands: [x]', '  ".hidden":', '    commands: [x]'));
    assertProblem(problems, 'steps.build.name', 3, 5, 'named by its key');
    assertProblem(problems, 'steps[".hidden"]', 5, 3, 'is not a valid step name');
  });

  it('refuses a step that is not a map', () => {
    assertProblem(problemsOf(lines('steps:', '  - echo hi')), 'steps[0]', 2, 5, 'a step must be a map');
    assertProblem(problemsOf(lines('steps:', '  build: echo hi')), 'steps.build', 2, 10, 'a step must be a map');
  });

  it('refuses artifacts outside the workspace and of the wrong type', () => {
    const problems = problemsOf(lines('steps:', '  - commands: [x]', 'artifacts:', '  - /etc/passwd', '  - ../secrets', '  - 5'));
    assertProblem(problems, 'artifacts[2]', 6, 5, 'must be a string, not a number (5)');
    const more = problemsOf(lines('steps:', '  - commands: [x]', 'artifacts:', '  - /etc/passwd', '  - a/../../b'));
    assertProblem(more, 'artifacts[0]', 4, 5, 'relative to the workspace');
    assertProblem(more, 'artifacts[1]', 5, 5, 'leaves the workspace');
  });

  it('refuses an invalid executor label', () => {
    assertProblem(problemsOf(lines('steps:', '  - commands: [x]', 'executor: "big box"')), 'executor', 3, 11, 'is not a valid executor label');
    assertProblem(problemsOf(lines('steps:', '  - commands: [x]', 'executor: 3')), 'executor', 3, 11, 'must be a string');
  });

  it('refuses aliases to no anchor and aliases into themselves', () => {
    assertProblem(problemsOf(lines('steps:', '  - name: a', '    commands: *nothing')), 'steps[0].commands', 3, 15, 'alias *nothing names no anchor');
    const problems = problemsOf(lines('steps:', '  - name: a', '    commands: &c [x, *c]'));
    assert.ok(problems.some((p) => p.path === 'steps[0].commands[1]' && p.message.includes('refers to a value that contains it')));
  });

  it('refuses a merge of something that is not a map', () => {
    assertProblem(problemsOf(lines('x-s: &s hello', 'steps:', '  - <<: *s', '    commands: [x]')), 'steps[0]', 1, 9, '`<<` merges maps only');
  });

  it('stops an alias bomb instead of expanding it', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++) bomb.push(`${'abcdefgh'[i]}: &${'abcdefgh'[i]} [${Array(10).fill(`*${'abcdefgh'[i - 1]}`).join(', ')}]`);
    const problems = problemsOf(lines(...bomb.map((l) => `x-${l}`), 'steps:', '  - commands: *h'));
    assert.ok(problems.some((p) => p.message.includes('expands to more than')));
  });

  it('refuses YAML tags, which a pipeline does not use', () => {
    assert.ok(problemsOf(lines('steps:', '  - commands: !reference [x]')).some((p) => p.message.includes('Unresolved tag')));
  });

  it('collects every problem, in the order of the text, into one readable message', () => {
    const text = lines('steps:', '  - name: a', '    image: 5', '  - name: b', '    commands: [x]', '    when: {event: push_event}', 'bogus: 1');
    try {
      parsePipeline(text);
      assert.fail('expected a refusal');
    } catch (e) {
      assert.ok(e instanceof InvalidPipeline);
      assert.equal(e.code, 'INVALID_PIPELINE');
      assert.equal(e.status, 422);
      assert.deepEqual(
        e.problems.map((p) => [p.line, p.column]),
        [
          [3, 12],
          [6, 19],
          [7, 1],
        ],
      );
      assert.equal(
        e.message,
        [
          'invalid pipeline: 3 problems:',
          '  line 3, column 12: steps[0].image: must be a string, not a number (5)',
          '  line 6, column 19: steps[1].when.event: must be one of manual, push, tag, cron, not "push_event"',
          '  line 7, column 1: bogus: unknown key "bogus" (known: steps, artifacts, executor)',
        ].join('\n'),
      );
      assert.deepEqual(e.body.details[0], { path: 'steps[0].image', message: 'must be a string, not a number (5)', line: 3, column: 12 });
    }
  });

  it('never throws anything but InvalidPipeline, whatever the text (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), yamlish()), (text) => {
        try {
          parsePipeline(text);
        } catch (e) {
          assert.ok(e instanceof InvalidPipeline, String(e));
          for (const p of e.problems) assert.ok(p.line >= 1 && p.column >= 1, JSON.stringify(p));
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** Text built from pieces of pipeline YAML, to reach deeper than random characters do. */
function yamlish(): fc.Arbitrary<string> {
  const piece = fc.constantFrom(
    'steps:',
    '  - name: a',
    '    commands: [x]',
    '    image: alpine',
    '    when: {event: push}',
    '    depends_on: [a]',
    '  b:',
    '    commands: x',
    'artifacts: [a]',
    '  - <<: *x',
    'x-d: &x {image: y}',
    '    environment: {A: 1}',
    '  -',
    '    failure: ignore',
    'executor: e',
  );
  return fc.array(piece, { maxLength: 12 }).map((ls) => ls.join('\n'));
}

describe('parsePipeline: kinds of steps', () => {
  it('gives a step without `kind` the kind commands, so every existing pipeline reads as before', () => {
    const pipeline = parsePipeline(lines('steps:', '  - name: a', '    commands: [make]', '  - name: b', '    kind: commands', '    image: alpine:3', '    commands: [make test]'));
    assert.deepEqual(pipeline.steps, [
      step({ name: 'a', commands: ['make'] }),
      step({ name: 'b', image: 'alpine:3', commands: ['make test'], dependsOn: ['a'] }),
    ]);
  });

  it('reads a build-image step: dockerfile, context, tags with variables, registry, buildArgs', () => {
    const pipeline = parsePipeline(
      lines(
        'steps:',
        '  - name: image',
        '    kind: build-image',
        '    dockerfile: docker/Dockerfile',
        '    context: .',
        '    tags: ["web:{{tag}}", "team/web:sha-{{ commit }}", "web:{{tag}}"]',
        '    registry: private',
        '    buildArgs:',
        '      VERSION: 1.10',
        '    when: { event: tag }',
      ),
    );
    assert.deepEqual(pipeline.steps, [
      {
        name: 'image',
        kind: 'build-image',
        dockerfile: 'docker/Dockerfile',
        context: '.',
        tags: ['web:{{tag}}', 'team/web:sha-{{ commit }}'],
        registry: 'private',
        buildArgs: { VERSION: '1.10' },
        when: [{ event: ['tag'] }],
        dependsOn: [],
        failure: 'fail',
      },
    ] satisfies PipelineStep[]);
    assert.deepEqual(parsePipeline(lines('steps:', '  - kind: build-image', '    dockerfile: Dockerfile', '    context: .', '    tags: web:latest', '    registry: r')).steps[0], {
      name: 'step-1',
      kind: 'build-image',
      dockerfile: 'Dockerfile',
      context: '.',
      tags: ['web:latest'],
      registry: 'r',
      buildArgs: {},
      when: [],
      dependsOn: [],
      failure: 'fail',
    });
  });

  it('refuses build-image tags that are not REPOSITORY:TAG, and a Dockerfile outside the context, at the value', () => {
    const problems = problemsOf(
      lines(
        'steps:',
        '  - kind: build-image',
        '    dockerfile: docker/Dockerfile',
        '    context: app',
        '    tags: ["{{tag}}", "Web:1", "web:-x", "web:", "127.0.0.1:5000/web:1", "team/web:{{tag}}", "{{commit}}/x:sha-{{build}}"]',
        '    registry: r',
      ),
    );
    assertProblem(problems, 'steps[0].dockerfile', 3, 17, '"docker/Dockerfile" is not inside the context "app"');
    assertProblem(problems, 'steps[0].tags[0]', 5, 12, 'must be REPOSITORY:TAG');
    assertProblem(problems, 'steps[0].tags[1]', 5, 23, 'repository "Web" is not a Docker repository name');
    assertProblem(problems, 'steps[0].tags[2]', 5, 32, 'tag "-x" is not a Docker tag');
    assertProblem(problems, 'steps[0].tags[3]', 5, 42, 'tag "" is not a Docker tag');
    assertProblem(problems, 'steps[0].tags[4]', 5, 50, 'repository "127.0.0.1:5000/web" is not a Docker repository name');
    assert.equal(problems.length, 6, JSON.stringify(problems));
    const ok = parsePipeline(lines('steps:', '  - kind: build-image', '    dockerfile: app/docker/Dockerfile', '    context: ./app/', '    tags: web:1', '    registry: r')).steps[0];
    assert.equal(ok?.kind === 'build-image' ? ok.dockerfile : undefined, 'app/docker/Dockerfile');
  });

  it('reads a deploy step, its deadline in seconds or with a unit', () => {
    const pipeline = parsePipeline(
      lines('steps:', '  deploy-dev:', '    kind: deploy', '    service: shop', '    to: dev', '    deadline: 10m', '  deploy-demo:', '    kind: deploy', '    service: shop', '    to: demo', '    deadline: 90', '  prod:', '    kind: deploy', '    service: shop', '    to: prod'),
    );
    assert.deepEqual(
      pipeline.steps.map((s) => (s.kind === 'deploy' ? [s.name, s.service, s.to, s.deadlineSeconds] : undefined)),
      [
        ['deploy-dev', 'shop', 'dev', 600],
        ['deploy-demo', 'shop', 'demo', 90],
        ['prod', 'shop', 'prod', undefined],
      ],
    );
    assert.ok(!('deadlineSeconds' in (pipeline.steps[2] as object)), 'no deadline: no field');
  });

  it('reads a publish step: store, files (a glob or a list), target with variables', () => {
    const pipeline = parsePipeline(
      lines('steps:', '  - name: pack', '    commands: [make agent.tar.gz]', '  - name: upload', '    kind: publish', '    store: cdn', '    files: out/*.tar.gz', '    target: agent/{{tag}}/agent.tar.gz', '    failure: ignore'),
    );
    assert.deepEqual(pipeline.steps[1], {
      name: 'upload',
      kind: 'publish',
      store: 'cdn',
      files: ['out/*.tar.gz'],
      target: 'agent/{{tag}}/agent.tar.gz',
      when: [],
      dependsOn: ['pack'],
      failure: 'ignore',
    } satisfies PipelineStep);
    const dir = parsePipeline(lines('steps:', '  - kind: publish', '    store: cdn', '    files: [dist/**, README.md]', '    target: builds/{{build}}/')).steps[0];
    assert.deepEqual(dir?.kind === 'publish' ? [dir.files, dir.target] : undefined, [['dist/**', 'README.md'], 'builds/{{build}}/']);
  });

  it('gives JSON of every kind that parses back the same (what a stored build holds)', () => {
    const text = lines('steps:', '  - kind: publish', '    store: cdn', '    files: a', '    target: a', '  - kind: deploy', '    service: s', '    to: dev', '    deadline: 1h');
    const pipeline = parsePipeline(text);
    assert.deepEqual(parsePipeline(JSON.stringify(pipeline).replace(/"dependsOn":\[[^\]]*\],?/g, '').replace(/"deadlineSeconds":3600/, '"deadline":3600')), pipeline);
  });

  it('refuses an unknown kind, and a kind that is not a string, at the value', () => {
    const problems = problemsOf(lines('steps:', '  - name: a', '    kind: docker', '    image: x', '  - name: b', '    kind: [publish]', '    store: cdn'));
    assertProblem(problems, 'steps[0].kind', 3, 11, 'is not a kind of step: "docker" (kinds: commands, build-image, deploy, publish)');
    assertProblem(problems, 'steps[1].kind', 6, 11, 'must be a string, not a list');
    assert.equal(problems.length, 2, JSON.stringify(problems));
  });

  it('refuses keys of another kind at the key, naming the kind they belong to', () => {
    const problems = problemsOf(
      lines(
        'steps:',
        '  - name: upload',
        '    kind: publish',
        '    store: cdn',
        '    files: a.tgz',
        '    target: a.tgz',
        '    commands: [echo]',
        '  - name: ship',
        '    kind: deploy',
        '    service: shop',
        '    to: dev',
        '    image: alpine:3',
        '  - name: image',
        '    kind: build-image',
        '    image: app',
        '    dockerfile: Dockerfile',
        '    context: .',
        '    tags: [app:latest]',
        '    registry: r',
        '  - name: c',
        '    commands: [x]',
        '    store: cdn',
        '    environmnet: {}',
      ),
    );
    assertProblem(problems, 'steps[0].commands', 7, 5, '`commands` belongs to steps of kind commands, not to a publish step (keys of a publish step: name, kind, store, files, target, when, depends_on, failure)');
    assertProblem(problems, 'steps[1].image', 12, 5, '`image` belongs to steps of kind commands, not to a deploy step');
    assertProblem(problems, 'steps[2].image', 15, 5, 'the image is what the step builds, named by `registry` and `tags`');
    assertProblem(problems, 'steps[3].store', 22, 5, '`store` belongs to steps of kind publish, not to a commands step');
    assertProblem(problems, 'steps[3].environmnet', 23, 5, 'unknown key "environmnet"');
    assert.equal(problems.length, 5, JSON.stringify(problems));
  });

  it('refuses a delivery step without its required fields, at the step', () => {
    const problems = problemsOf(lines('steps:', '  - name: upload', '    kind: publish', '  - name: ship', '    kind: deploy', '    service: shop', '  - name: image', '    kind: build-image', '    tags: []'));
    assertProblem(problems, 'steps[0].store', 2, 5, 'is required: the name of an artifact store configured in the job');
    assertProblem(problems, 'steps[0].files', 2, 5, 'is required');
    assertProblem(problems, 'steps[0].target', 2, 5, 'is required');
    assertProblem(problems, 'steps[1].to', 4, 5, 'is required: the environment to deploy to');
    assertProblem(problems, 'steps[2].dockerfile', 7, 5, 'is required');
    assertProblem(problems, 'steps[2].context', 7, 5, 'is required');
    assertProblem(problems, 'steps[2].registry', 7, 5, 'is required');
    assertProblem(problems, 'steps[2].tags', 9, 11, 'must not be an empty list (nothing would be pushed)');
    assert.equal(problems.length, 8, JSON.stringify(problems));
  });

  it('refuses bad values of delivery steps at the value: names, paths, templates, targets, deadlines', () => {
    const problems = problemsOf(
      lines(
        'steps:',
        '  - kind: publish',
        '    store: my cdn',
        '    files: [../etc/passwd, /abs]',
        '    target: agent/{{version}}/a.tgz',
        '  - kind: publish',
        '    store: cdn',
        '    files: []',
        '    target: sha256/abc',
        '  - kind: publish',
        '    store: cdn',
        '    files: a',
        '    target: a/../b',
        '  - kind: publish',
        '    store: cdn',
        '    files: a',
        '    target: /a',
        '  - kind: publish',
        '    store: cdn',
        '    files: a',
        '    target: "a/{{tag"',
        '  - kind: build-image',
        '    dockerfile: /Dockerfile',
        '    context: ..',
        '    tags: ["web:{{branch}}"]',
        '    registry: r',
        '    buildArgs: [A=1]',
        '  - kind: deploy',
        '    service: shop',
        '    to: dev',
        '    deadline: 2 weeks',
        '  - kind: deploy',
        '    service: shop',
        '    to: dev',
        '    deadline: 0',
      ),
    );
    assertProblem(problems, 'steps[0].store', 3, 12, '"my cdn" is not a valid name');
    assertProblem(problems, 'steps[0].files[0]', 4, 13, 'leaves the workspace');
    assertProblem(problems, 'steps[0].files[1]', 4, 28, 'is absolute; paths are relative to the workspace');
    assertProblem(problems, 'steps[0].target', 5, 13, '{{version}} is not a variable: the variables are {{tag}}, {{commit}}, {{build}}');
    assertProblem(problems, 'steps[1].files', 8, 12, 'must not be an empty list (nothing would be uploaded)');
    assertProblem(problems, 'steps[1].target', 9, 13, '`sha256/` is where the store keeps files by content hash');
    assertProblem(problems, 'steps[2].target', 13, 13, 'must not have empty, `.` or `..` segments');
    assertProblem(problems, 'steps[3].target', 17, 13, 'must be relative to the store\'s URL');
    assertProblem(problems, 'steps[4].target', 21, 13, 'has a `{{` or `}}` that is not a variable reference');
    assertProblem(problems, 'steps[5].dockerfile', 23, 17, 'is absolute');
    assertProblem(problems, 'steps[5].context', 24, 14, 'leaves the workspace');
    assertProblem(problems, 'steps[5].tags[0]', 25, 12, '{{branch}} is not a variable');
    assertProblem(problems, 'steps[5].buildArgs', 27, 16, 'must be a map of NAME: value, not a list');
    assertProblem(problems, 'steps[6].deadline', 31, 15, 'must be a duration: seconds, or a number with s, m or h (90s, 10m, 1h), not the string "2 weeks"');
    assertProblem(problems, 'steps[7].deadline', 35, 15, 'must be from 1 second to 24 hours');
    assert.equal(problems.length, 15, JSON.stringify(problems, null, 1));
  });

  it('checks names and depends_on across steps of every kind', () => {
    const problems = problemsOf(lines('steps:', '  - name: up', '    kind: publish', '    store: cdn', '    files: a', '    target: a', '    depends_on: [nope]', '  - name: up', '    commands: [x]'));
    assertProblem(problems, 'steps[0].depends_on', 7, 18, 'no step is named "nope"');
    assertProblem(problems, 'steps[1].name', 8, 11, 'duplicate step name "up"');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../../core/document-reader-test-support.ts';
import { InvalidExecutorSpec, InvalidJob, type FieldProblem } from './ci-errors.ts';
import {
  DEFAULT_EXECUTOR_SPEC,
  branchProblem,
  defaultExecutorSpec,
  parseExecutorSpec,
  parseJobDefinition,
  readExecutorSpecDocument,
  readJobDocument,
  repoProblem,
  type ExecutorSpec,
  type JobDefinition,
} from './job-definition.ts';

/** The problems of a refused job; fails the test when it is accepted. */
function jobProblems(name: string, json: unknown): FieldProblem[] {
  try {
    parseJobDefinition(name, json);
  } catch (e) {
    assert.ok(e instanceof InvalidJob, `expected InvalidJob, got ${String(e)}`);
    return e.details;
  }
  assert.fail(`expected ${JSON.stringify(json)} to be refused`);
}

function specProblems(label: string, json: unknown): FieldProblem[] {
  try {
    parseExecutorSpec(label, json);
  } catch (e) {
    assert.ok(e instanceof InvalidExecutorSpec, `expected InvalidExecutorSpec, got ${String(e)}`);
    return e.details;
  }
  assert.fail(`expected ${JSON.stringify(json)} to be refused`);
}

/** The messages about one field. */
function about(problems: FieldProblem[], field: string): string[] {
  return problems.filter((p) => p.field === field).map((p) => p.message);
}

function assertRefused(problems: FieldProblem[], field: string, message: string | RegExp): void {
  const messages = about(problems, field);
  assert.ok(
    messages.some((m) => (typeof message === 'string' ? m.includes(message) : message.test(m))),
    `expected a problem of ${field} like ${String(message)}, got ${JSON.stringify(problems)}`,
  );
}

describe('parseJobDefinition', () => {
  it('applies the defaults to the smallest job', () => {
    assert.deepEqual(parseJobDefinition('app', { repo: 'https://git.example.com/team/app.git' }), {
      name: 'app',
      repo: 'https://git.example.com/team/app.git',
      pipelineFile: '.slipway.yml',
      triggers: {},
      concurrency: 1,
      env: {},
      secrets: {},
    } satisfies JobDefinition);
  });

  it('reads every field, and its answer is accepted again unchanged', () => {
    const job = parseJobDefinition('app.release-2', {
      name: 'app.release-2',
      repo: 'git@git.example.com:team/app.git',
      branch: 'release/2.x',
      pipelineFile: './ci/release.yml',
      triggers: { poll: { intervalSeconds: 30, branch: true }, cron: '0 3 * * 1-5', webhook: { secret: 's3cret', tags: false } },
      executor: 'big',
      concurrency: 3,
      env: { DEPLOY_ENV: 'staging', EMPTY: '' },
    });
    assert.deepEqual(job, {
      name: 'app.release-2',
      repo: 'git@git.example.com:team/app.git',
      branch: 'release/2.x',
      pipelineFile: 'ci/release.yml',
      triggers: {
        poll: { intervalSeconds: 30, tags: true, branch: true },
        cron: '0 3 * * 1-5',
        webhook: { secret: 's3cret', tags: false, branch: true },
      },
      executor: 'big',
      concurrency: 3,
      env: { DEPLOY_ENV: 'staging', EMPTY: '' },
      secrets: {},
    } satisfies JobDefinition);
    const json = JSON.parse(JSON.stringify(job)) as unknown;
    assert.deepEqual(parseJobDefinition('app.release-2', json), job);
    // What GET adds (`lastBuild`) is read-only: ignored, so that a GET answer goes back as is.
    assert.deepEqual(parseJobDefinition('app.release-2', { ...(json as object), lastBuild: 7 }), job);
  });

  it('keeps an inline pipeline as its text, without pipelineFile', () => {
    const pipeline = 'steps:\n  - name: test\n    commands: [npm test]\n';
    const job = parseJobDefinition('inline', { repo: '/srv/git/app', pipeline });
    assert.equal(job.pipeline, pipeline);
    assert.equal(job.pipelineFile, undefined);
    assert.ok(!('pipelineFile' in job));
  });

  it('reads poll: true and webhook: true as their defaults, false as off', () => {
    const job = parseJobDefinition('j', { repo: '/srv/git/app', triggers: { poll: true, webhook: true } });
    assert.deepEqual(job.triggers, { poll: { intervalSeconds: 60, tags: true, branch: false }, webhook: { tags: true, branch: true } });
    assert.deepEqual(parseJobDefinition('j', { repo: '/srv/git/app', triggers: { poll: false, webhook: false, cron: null } }).triggers, {});
  });

  it('treats null as left out', () => {
    const job = parseJobDefinition('j', { repo: '/r', branch: null, executor: null, concurrency: null, env: null, triggers: null, pipelineFile: null });
    assert.deepEqual(job, parseJobDefinition('j', { repo: '/r' }));
  });

  it('refuses an inline pipeline with the line and column of each problem', () => {
    const problems = jobProblems('j', { repo: '/srv/git/app', pipeline: 'steps:\n  - name: a\n    image: 5\n    when: {event: pr}\n' });
    assert.deepEqual(problems, [
      { field: 'pipeline', path: 'steps[0].image', message: 'must be a string, not a number (5)', line: 3, column: 12 },
      { field: 'pipeline', path: 'steps[0].when.event', message: 'must be one of manual, push, tag, cron, not "pr"', line: 4, column: 19 },
    ]);
    const syntax = jobProblems('j', { repo: '/srv/git/app', pipeline: 'steps: [\n' });
    assert.equal(syntax[0]?.field, 'pipeline');
    assert.ok((syntax[0]?.line ?? 0) >= 1);
  });

  it('refuses a pipeline that is not text, and both pipeline and pipelineFile', () => {
    assertRefused(jobProblems('j', { repo: '/r', pipeline: { steps: [] } }), 'pipeline', "must be the pipeline's YAML text");
    assertRefused(jobProblems('j', { repo: '/r', pipeline: 'steps: [{commands: [x]}]', pipelineFile: 'a.yml' }), 'pipelineFile', 'not both');
  });

  it('refuses invalid job names', () => {
    for (const name of ['', '-x', '.hidden', 'a b', 'a/b', 'x'.repeat(101), 'ünï']) {
      assertRefused(jobProblems(name, { repo: '/r' }), 'name', 'is not a valid job name');
    }
    assert.equal(parseJobDefinition('x'.repeat(100), { repo: '/r' }).name.length, 100);
    assertRefused(jobProblems('a', { repo: '/r', name: 'b' }), 'name', 'in the body but "a" in the URL');
  });

  it('refuses a body that is not an object', () => {
    for (const body of [null, [], 'repo', 3]) assertRefused(jobProblems('j', body), '', 'the body must be a JSON object');
  });

  it('refuses unknown fields, listing the known ones', () => {
    const problems = jobProblems('j', { repo: '/r', repository: 'x', triggers: { poll: { every: 3 }, github: true } });
    assertRefused(problems, 'repository', 'unknown field (known: name, repo, branch, pipelineFile, pipeline, triggers, executor, concurrency, env, secrets, credentials, artifactStores, registries, deploys)');
    assertRefused(problems, 'triggers.poll.every', 'unknown field (known: intervalSeconds, tags, branch)');
    assertRefused(problems, 'triggers.github', 'unknown field (known: poll, cron, webhook)');
  });

  it('accepts the git URLs and paths git can clone', () => {
    for (const repo of [
      'https://github.com/org/app.git',
      'http://127.0.0.1:3000/org/app',
      'https://user:token@git.example.com/org/app.git',
      'git://git.example.com/app.git',
      'ssh://git@git.example.com:2222/org/app.git',
      'git@github.com:org/app.git',
      'deploy@[::1]:repos/app.git',
      'file:///srv/git/app.git',
      '/srv/git/app',
      '/home/me/my repo',
    ]) {
      assert.equal(repoProblem(repo), undefined, repo);
    }
  });

  it('refuses what is not a git URL or an absolute path', () => {
    const refused: [unknown, string][] = [
      [undefined, 'is required'],
      [42, 'must be a string'],
      ['', 'is empty'],
      ['relative/path', 'must be absolute'],
      ['./app', 'must be absolute'],
      ['ftp://host/app.git', 'the scheme ftp:// is not supported'],
      ['ext::sh -c touch% /tmp/pwned', 'remote-helper syntax'],
      ['-uhttps://x/y', 'must be a git URL'],
      ['https://', 'not a valid URL'],
      ['https://host', "needs the repository's path"],
      ['file://', 'a file:// URL needs a path'],
      ['file:///', 'a file:// URL needs a path'],
      [' /srv/app', 'spaces'],
      ['/srv/app\n', 'spaces'],
      ['/srv/a\u0000pp', 'control characters'],
      ['git@host', 'must be a git URL'],
    ];
    for (const [repo, message] of refused) assertRefused(jobProblems('j', repo === undefined ? {} : { repo }), 'repo', message);
  });

  it('accepts branch names git accepts and refuses the others', () => {
    for (const b of ['main', 'release/2.x', 'feature/JIRA-12_x', 'v1.0', 'a.b-c_d/e']) assert.equal(branchProblem(b), undefined, b);
    const refused: [string, string][] = [
      ['', 'default branch'],
      ['HEAD', 'default branch'],
      ['refs/heads/main', "give the branch's name (main)"],
      ['my branch', 'spaces'],
      ['a..b', '`..`'],
      ['a~1', '~'],
      ['-x', 'start with `-`'],
      ['a/', 'empty part'],
      ['/a', 'empty part'],
      ['a//b', 'empty part'],
      ['.a', 'part starting with `.`'],
      ['a.lock', '`.lock`'],
      ['a.', 'end with `.`'],
      ['a@{1}', '`@{`'],
    ];
    for (const [b, message] of refused) assertRefused(jobProblems('j', { repo: '/r', branch: b }), 'branch', message);
    assertRefused(jobProblems('j', { repo: '/r', branch: 1 }), 'branch', 'must be a string');
  });

  it('refuses pipeline files outside the repository', () => {
    for (const [file, message] of [
      ['/etc/ci.yml', 'relative to its root'],
      ['../other/.slipway.yml', 'no `..`'],
      ['ci/', 'no trailing `/`'],
      ['', 'must not be empty'],
      ['.', 'must name a file'],
    ] as const) {
      assertRefused(jobProblems('j', { repo: '/r', pipelineFile: file }), 'pipelineFile', message);
    }
  });

  it('refuses bad triggers', () => {
    const problems = jobProblems('j', {
      repo: '/r',
      triggers: { poll: { intervalSeconds: 0, tags: 'yes' }, cron: '61 * * * *', webhook: { secret: '', tags: false, branch: false } },
    });
    assertRefused(problems, 'triggers.poll.intervalSeconds', 'must be from 1 to 604800');
    assertRefused(problems, 'triggers.poll.tags', 'must be true or false');
    assertRefused(problems, 'triggers.cron', 'minute field: 61 is outside 0-59');
    assertRefused(problems, 'triggers.webhook.secret', 'non-empty string');
    assertRefused(problems, 'triggers.webhook', 'accepts nothing');
    assertRefused(jobProblems('j', { repo: '/r', triggers: { poll: { tags: false } } }), 'triggers.poll', 'polls for nothing');
    assertRefused(jobProblems('j', { repo: '/r', triggers: { poll: 30 } }), 'triggers.poll', 'must be true, false or an object');
    assertRefused(jobProblems('j', { repo: '/r', triggers: { cron: 5 } }), 'triggers.cron', 'must be a cron expression');
    assertRefused(jobProblems('j', { repo: '/r', triggers: [] }), 'triggers', 'must be an object');
    assertRefused(jobProblems('j', { repo: '/r', triggers: { poll: { intervalSeconds: 1.5 } } }), 'triggers.poll.intervalSeconds', 'whole number');
  });

  it('refuses a bad executor label, concurrency and env', () => {
    const problems = jobProblems('j', {
      repo: '/r',
      executor: 'big box',
      concurrency: 0,
      env: { OK: 'x', '1BAD': 'x', CI_JOB_NAME: 'x', NUM: 1, 'A-B': 'x' },
    });
    assertRefused(problems, 'executor', 'is not a valid executor label');
    assertRefused(problems, 'concurrency', 'must be from 1 to 1000');
    assertRefused(problems, 'env.1BAD', 'is not a variable name');
    assertRefused(problems, 'env.CI_JOB_NAME', 'set by CI');
    assertRefused(problems, 'env.NUM', 'must be a string, not the number 1');
    assertRefused(problems, 'env.A-B', 'is not a variable name');
    assert.equal(about(problems, 'env.OK').length, 0);
    assertRefused(jobProblems('j', { repo: '/r', concurrency: '2' }), 'concurrency', 'whole number');
    assertRefused(jobProblems('j', { repo: '/r', env: ['A=b'] }), 'env', 'must be an object');
  });

  it('reads credentials as names of secret-store secrets (a leading / dropped), and refuses what is not one', () => {
    const job = parseJobDefinition('j', { repo: '/r', credentials: { DEPLOY_KEY: '/ci/deploy-key', TOKEN: 'tok' } });
    assert.deepEqual(job.credentials, { DEPLOY_KEY: 'ci/deploy-key', TOKEN: 'tok' });
    assert.equal(parseJobDefinition('j', { repo: '/r', credentials: {} }).credentials, undefined, 'absent when empty');
    const problems = jobProblems('j', { repo: '/r', env: { A: 'x' }, secrets: { B: 'y' }, credentials: { A: 'a', B: 'b', C: 'bad name', D: 7, CI_X: 'c', '1E': 'e' } });
    assertRefused(problems, 'credentials.A', 'is also in `env` or `secrets`');
    assertRefused(problems, 'credentials.B', 'is also in `env` or `secrets`');
    assertRefused(problems, 'credentials.C', 'is not a secret name');
    assertRefused(problems, 'credentials.D', 'must be the name of a secret');
    assertRefused(problems, 'credentials.CI_X', 'set by CI');
    assertRefused(problems, 'credentials.1E', 'is not a variable name');
    assertRefused(jobProblems('j', { repo: '/r', credentials: ['a'] }), 'credentials', 'must be an object');
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`C${i}`, 'x']));
    assertRefused(jobProblems('j', { repo: '/r', credentials: many }), 'credentials', 'at most 100');
  });

  it('reads artifact stores (URL, username, password secret) and checks inline publish steps against them', () => {
    const pipeline = 'steps:\n  - kind: publish\n    store: cdn\n    files: a\n    target: a\n';
    const job = parseJobDefinition('j', { repo: '/r', pipeline, artifactStores: { cdn: { url: 'https://cdn.example/agent//', username: 'ci', passwordSecret: '/ci/cdn' } } });
    assert.deepEqual(job.artifactStores, { cdn: { url: 'https://cdn.example/agent', username: 'ci', passwordSecret: 'ci/cdn' } });
    assert.equal(parseJobDefinition('j', { repo: '/r', artifactStores: {} }).artifactStores, undefined, 'absent when empty');
    const problems = jobProblems('j', {
      repo: '/r',
      artifactStores: { a: { url: 'ftp://x/y' }, b: { url: 'http://u:p@x/' }, c: { url: 'http://x/?q=1' }, d: {}, e: { url: 'http://x', username: 'a:b', passwordSecret: 'bad name' }, f: 'http://x', 'g h': { url: 'http://x' }, i: { url: 'http://x', token: 't' } },
    });
    assertRefused(problems, 'artifactStores.a.url', 'must be an http:// or https:// URL');
    assertRefused(problems, 'artifactStores.b.url', 'must not hold credentials');
    assertRefused(problems, 'artifactStores.c.url', 'must not have a query');
    assertRefused(problems, 'artifactStores.d.url', 'is required');
    assertRefused(problems, 'artifactStores.e.username', 'must not contain `:`');
    assertRefused(problems, 'artifactStores.e.passwordSecret', 'is not a secret name');
    assertRefused(problems, 'artifactStores.f', 'must be an object');
    assertRefused(problems, 'artifactStores.g h', 'is not a valid store name');
    assertRefused(problems, 'artifactStores.i.token', 'unknown field');
    const missing = jobProblems('j', { repo: '/r', pipeline, artifactStores: { other: { url: 'http://x' } } });
    assert.deepEqual(missing, [{ field: 'pipeline', path: 'steps[0].store', message: `no artifact store "cdn" in the job's artifactStores (stores: other)` }]);
  });

  it('reads registries (address, username, password secret) and checks inline build-image steps against them', () => {
    const pipeline = 'steps:\n  - kind: build-image\n    dockerfile: Dockerfile\n    context: .\n    tags: web:1\n    registry: private\n';
    const job = parseJobDefinition('j', { repo: '/r', pipeline, registries: { private: { address: '127.0.0.1:5000', username: 'ci', passwordSecret: '/ci/registry' }, hub: { address: 'registry.example.com' }, local: { address: 'localhost' }, v6: { address: '[::1]:5000' } } });
    assert.deepEqual(job.registries, { private: { address: '127.0.0.1:5000', username: 'ci', passwordSecret: 'ci/registry' }, hub: { address: 'registry.example.com' }, local: { address: 'localhost' }, v6: { address: '[::1]:5000' } });
    assert.equal(parseJobDefinition('j', { repo: '/r', registries: {} }).registries, undefined, 'absent when empty');
    const problems = jobProblems('j', {
      repo: '/r',
      registries: { a: { address: 'https://r.example' }, b: { address: 'r.example/team' }, c: { address: 'registry' }, d: {}, e: { address: 'r.example', username: 'a:b', passwordSecret: 'bad name' }, f: 'r.example', 'g h': { address: 'r.example' }, i: { address: 'r.example', url: 'x' }, j: { address: 'r.example:99999' }, k: { address: 'bad_host.example' } },
    });
    assertRefused(problems, 'registries.a.address', 'must be host[:port] without a scheme (r.example)');
    assertRefused(problems, 'registries.b.address', 'must be host[:port] only');
    assertRefused(problems, 'registries.c.address', 'Docker would read it as a Docker Hub namespace');
    assertRefused(problems, 'registries.d.address', 'is required');
    assertRefused(problems, 'registries.e.username', 'must not contain `:`');
    assertRefused(problems, 'registries.e.passwordSecret', 'is not a secret name');
    assertRefused(problems, 'registries.f', 'must be an object');
    assertRefused(problems, 'registries.g h', 'is not a valid registry name');
    assertRefused(problems, 'registries.i.url', 'unknown field');
    assertRefused(problems, 'registries.j.address', 'a port is 1 to 65535');
    assertRefused(problems, 'registries.k.address', 'is not a host name');
    const missing = jobProblems('j', { repo: '/r', pipeline, registries: { other: { address: 'r.example' } } });
    assert.deepEqual(missing, [{ field: 'pipeline', path: 'steps[0].registry', message: `no registry "private" in the job's registries (registries: other)` }]);
  });

  it('keeps a variable named __proto__ as a variable', () => {
    const job = parseJobDefinition('j', JSON.parse('{"repo": "/r", "env": {"__proto__": "x"}}') as unknown);
    assert.deepEqual(Object.entries(job.env), [['__proto__', 'x']]);
    assert.equal(Object.getPrototypeOf(job.env), Object.prototype);
  });

  it('throws one InvalidJob (422) listing every problem readably', () => {
    try {
      parseJobDefinition('j', { repo: 'relative', concurrency: -1, pipeline: 'steps:\n  - image: 1\n' });
      assert.fail('expected a refusal');
    } catch (e) {
      assert.ok(e instanceof InvalidJob);
      assert.equal(e.code, 'INVALID_JOB');
      assert.equal(e.status, 422);
      assert.match(e.message, /^invalid job: 3 problems:\n {2}repo: a local path must be absolute/);
      assert.match(e.message, /\n {2}pipeline \(line 2, column 12\): steps\[0\]\.image: must be a string, not a number \(1\)/);
      assert.match(e.message, /\n {2}concurrency: must be from 1 to 1000/);
      assert.equal(e.body.code, 'INVALID_JOB');
      assert.equal(e.body.details.length, 3);
    }
  });
});

describe('parseExecutorSpec', () => {
  it('gives the default label its documented defaults', () => {
    assert.deepEqual(defaultExecutorSpec(), {
      label: 'default',
      cpus: 1,
      mem: 1024,
      disk: 4096,
      containerizer: 'process',
      constraints: [],
      maxExecutors: 4,
      idleTerminationSeconds: 180,
      volumes: [],
    } satisfies ExecutorSpec);
    assert.deepEqual(parseExecutorSpec('default', {}), defaultExecutorSpec());
    assert.notEqual(defaultExecutorSpec().constraints, DEFAULT_EXECUTOR_SPEC.constraints);
  });

  it('fills fields left out with the defaults', () => {
    assert.deepEqual(parseExecutorSpec('small', { cpus: 0.5, mem: 256 }), { ...defaultExecutorSpec(), label: 'small', cpus: 0.5, mem: 256 });
  });

  it('reads a Docker executor with constraints in both forms and volumes, and accepts its answer again', () => {
    const spec = parseExecutorSpec('docker', {
      label: 'docker',
      cpus: 2,
      mem: 4096,
      disk: 20480,
      containerizer: 'docker',
      image: 'registry.local:5000/slipway-executor:1',
      constraints: [['hostname', 'UNIQUE'], ['rack', 'LIKE', 'r[12]'], { field: 'ssd', operator: 'IS', value: 'true' }, ['zone', 'MAX_PER', '2']],
      maxExecutors: 10,
      idleTerminationSeconds: 0,
      volumes: [{ containerPath: '/var/run/docker.sock', hostPath: '/var/run/docker.sock' }, { containerPath: '/cache', hostPath: '/srv/cache', mode: 'RO' }],
    });
    assert.deepEqual(spec, {
      label: 'docker',
      cpus: 2,
      mem: 4096,
      disk: 20480,
      containerizer: 'docker',
      image: 'registry.local:5000/slipway-executor:1',
      constraints: [
        { field: 'hostname', operator: 'UNIQUE' },
        { field: 'rack', operator: 'LIKE', value: 'r[12]' },
        { field: 'ssd', operator: 'IS', value: 'true' },
        { field: 'zone', operator: 'MAX_PER', value: '2' },
      ],
      maxExecutors: 10,
      idleTerminationSeconds: 0,
      volumes: [
        { containerPath: '/var/run/docker.sock', hostPath: '/var/run/docker.sock', mode: 'RW' },
        { containerPath: '/cache', hostPath: '/srv/cache', mode: 'RO' },
      ],
    } satisfies ExecutorSpec);
    assert.deepEqual(parseExecutorSpec('docker', JSON.parse(JSON.stringify(spec)) as unknown), spec);
  });

  it('refuses bad resources, counts and containerizers', () => {
    const problems = specProblems('x', { cpus: 0, mem: -1, disk: 'big', containerizer: 'mesos', maxExecutors: 0, idleTerminationSeconds: -5, extra: 1 });
    assertRefused(problems, 'cpus', 'must be more than 0');
    assertRefused(problems, 'mem', 'must be more than 0');
    assertRefused(problems, 'disk', 'must be a number');
    assertRefused(problems, 'containerizer', 'must be "process" or "docker"');
    assertRefused(problems, 'maxExecutors', 'must be from 1 to 1000');
    assertRefused(problems, 'idleTerminationSeconds', 'must be from 0 to 604800');
    assertRefused(problems, 'extra', 'unknown field');
  });

  it('requires an image with docker and refuses one, and volumes, with process', () => {
    assertRefused(specProblems('x', { containerizer: 'docker' }), 'image', 'is required with containerizer "docker"');
    assertRefused(specProblems('x', { image: 'alpine' }), 'image', 'only for containerizer "docker"');
    assertRefused(specProblems('x', { volumes: [{ containerPath: '/a', hostPath: '/a' }] }), 'volumes', 'only for containerizer "docker"');
    assertRefused(specProblems('x', { containerizer: 'docker', image: 'has space' }), 'image', 'image reference');
  });

  it('refuses bad constraints and volumes, each at its index', () => {
    const problems = specProblems('x', {
      containerizer: 'docker',
      image: 'e',
      constraints: [['hostname'], ['rack', 'NEAR', 'x'], ['rack', 'LIKE', '('], ['h', 'UNIQUE', 'x'], ['z', 'MAX_PER', 'two'], ['z', 'IS'], 'hostname:UNIQUE'],
      volumes: [{ containerPath: 'rel', hostPath: '/a' }, { containerPath: '/a', hostPath: '/a', mode: 'rw' }, '/a:/a'],
    });
    assertRefused(problems, 'constraints[0]', 'must be [field, operator]');
    assertRefused(problems, 'constraints[1].operator', 'must be one of IS, LIKE, UNLIKE, UNIQUE, MAX_PER');
    assertRefused(problems, 'constraints[2].value', 'is not a regular expression');
    assertRefused(problems, 'constraints[3].value', 'UNIQUE takes no value');
    assertRefused(problems, 'constraints[4].value', 'positive whole number');
    assertRefused(problems, 'constraints[5].value', 'IS needs a value');
    assertRefused(problems, 'constraints[6]', 'must be [field, operator, value?]');
    assertRefused(problems, 'volumes[0].containerPath', 'absolute path');
    assertRefused(problems, 'volumes[1].mode', 'must be "RO" or "RW"');
    assertRefused(problems, 'volumes[2]', 'must be {containerPath, hostPath, mode?}');
  });

  it('refuses a bad label and a body that is not an object, as INVALID_EXECUTOR_SPEC (422)', () => {
    assertRefused(specProblems('no label', {}), 'label', 'is not a valid executor label');
    assertRefused(specProblems('a', { label: 'b' }), 'label', 'in the URL');
    try {
      parseExecutorSpec('x', []);
      assert.fail('expected a refusal');
    } catch (e) {
      assert.ok(e instanceof InvalidExecutorSpec);
      assert.equal(e.status, 422);
      assert.equal(e.message, 'invalid executor spec: (body): the body must be a JSON object, not a list');
    }
  });
});

describe('readJobDocument', () => {
  const job = parseJobDefinition('app', {
    repo: 'https://git.example/app.git',
    branch: 'main',
    pipeline: 'steps:\n  - name: t\n    commands: [make]\n',
    triggers: { poll: { intervalSeconds: 30, tags: true, branch: true }, cron: '@daily', webhook: { secret: 's3cret', tags: true, branch: false } },
    executor: 'linux',
    concurrency: 2,
    env: { GREETING: 'hello' },
  });

  it('reads what parseJobDefinition made back equal, and names the job and the field of one that does not match', () => {
    assertReaderChecksEveryField(readJobDocument, job, { kind: 'job', optional: ['branch', 'pipelineFile', 'pipeline', 'executor', 'secrets'] });
    const withFile = parseJobDefinition('app', { repo: '/srv/app.git' });
    assert.deepEqual(readJobDocument(JSON.parse(JSON.stringify(withFile))), withFile);
  });

  it('names the field of a trigger that does not match', () => {
    const e = failureOf(() => readJobDocument({ ...job, triggers: { ...job.triggers, poll: { intervalSeconds: 30, tags: 'yes', branch: true } } }));
    assert.equal(e.field, 'triggers.poll.tags');
    assert.equal(e.document, 'job app');
    assert.equal(failureOf(() => readJobDocument({ ...job, env: { A: 1 } })).field, 'env.A');
  });
});

describe('readExecutorSpecDocument', () => {
  const spec = parseExecutorSpec('linux', {
    cpus: 2,
    mem: 2048,
    disk: 8192,
    containerizer: 'docker',
    image: 'slipway/executor:1',
    constraints: [{ field: 'os', operator: 'IS', value: 'linux' }, { field: 'hostname', operator: 'UNIQUE' }],
    maxExecutors: 3,
    idleTerminationSeconds: 60,
    volumes: [{ containerPath: '/var/run/docker.sock', hostPath: '/var/run/docker.sock', mode: 'RW' }],
  });

  it('reads what parseExecutorSpec made back equal, and names the label and the field of one that does not match', () => {
    assertReaderChecksEveryField(readExecutorSpecDocument, spec, { kind: 'executor spec', optional: ['image'] });
    assert.deepEqual(readExecutorSpecDocument(JSON.parse(JSON.stringify(defaultExecutorSpec()))), defaultExecutorSpec());
  });

  it('names the field of a constraint or a volume that does not match', () => {
    const e = failureOf(() => readExecutorSpecDocument({ ...spec, constraints: [{ field: 'os', operator: 'IS_NOT' }] }));
    assert.equal(e.field, 'constraints[0].operator');
    assert.equal(e.document, 'executor spec linux');
    assert.equal(failureOf(() => readExecutorSpecDocument({ ...spec, volumes: [{ containerPath: '/a', mode: 'RW' }] })).field, 'volumes[0].hostPath');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../../core/document-reader-test-support.ts';
import { readBuild, type Build } from './build.ts';
import { parsePipeline } from './pipeline/parse-pipeline.ts';

const PIPELINE = parsePipeline(`
steps:
  - name: test
    image: node:20
    commands: [npm ci, npm test]
    environment: { NODE_ENV: test }
    when:
      - event: [push, tag]
        branch: [main]
        status: [success]
  - name: package
    commands: [tar czf out.tgz dist]
    failure: ignore
artifacts: [out.tgz]
executor: linux
`);

/** A build with every field, optional ones included. */
const BUILD: Build = {
  job: 'ci',
  number: 3,
  status: 'running',
  cause: { kind: 'tag', description: 'tag v1.2.3' },
  event: 'tag',
  repo: 'https://git.example/app.git',
  commit: '1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d',
  branch: 'main',
  tag: 'v1.2.3',
  label: 'linux',
  pipeline: PIPELINE,
  steps: [
    { name: 'test', status: 'success', exitCode: 0, startedAt: 1_700_000_001_000, finishedAt: 1_700_000_002_000, durationMs: 1_000 },
    { name: 'package', status: 'running', startedAt: 1_700_000_002_000, error: 'none yet' },
  ],
  queuedAt: 1_700_000_000_000,
  startedAt: 1_700_000_000_500,
  finishedAt: 1_700_000_003_000,
  executorId: 'exec-1',
  agentId: 'agent-1',
  hostname: 'host-1',
  error: 'none',
  artifacts: ['out.tgz'],
  outputs: [{ kind: 'artifact', step: 'package', store: 'cdn', name: 'app/v1.2.3/out.tgz', sha256: 'ab'.repeat(32), size: 10, url: 'http://cdn/app/v1.2.3/out.tgz', contentUrl: `http://cdn/sha256/${'ab'.repeat(32)}` }],
  cancelRequested: false,
  seq: 12,
  logBytes: { whole: 2048, steps: { test: 1024, package: 1024 } },
};

describe('readBuild', () => {
  it('reads a stored build back equal, and names the build and the field of one that does not match', () => {
    assertReaderChecksEveryField(readBuild, BUILD, {
      kind: 'build',
      optional: ['commit', 'branch', 'tag', 'pipeline', 'startedAt', 'finishedAt', 'executorId', 'agentId', 'hostname', 'error', 'outputs', 'cancelRequested', 'logBytes'],
    });
  });

  it('names the field inside its cause, steps, pipeline and log sizes', () => {
    const cases: [string, (b: Build) => void][] = [
      ['cause.kind', (b) => ((b.cause as { kind: string }).kind = 'whim')],
      ['steps[1].status', (b) => ((b.steps[1] as { status: string }).status = 'done')],
      ['steps[0].exitCode', (b) => ((b.steps[0] as { exitCode: unknown }).exitCode = 0.5)],
      ['pipeline.steps[0].commands[1]', (b) => (((b.pipeline!.steps[0] as { commands: unknown[] }).commands)[1] = 7)],
      ['pipeline.steps[0].when[0].event', (b) => ((b.pipeline!.steps[0]!.when[0]!.event as string[])[0] = 'release')],
      ['pipeline.steps[1].failure', (b) => ((b.pipeline!.steps[1] as { failure: string }).failure = 'shrug')],
      ['logBytes.steps.test', (b) => ((b.logBytes!.steps as Record<string, unknown>)['test'] = '1024')],
      ['number', (b) => (b.number = 3.5)],
    ];
    for (const [field, damage] of cases) {
      const b = structuredClone(BUILD);
      damage(b);
      const e = failureOf(() => readBuild(b), field);
      assert.equal(e.field, field, e.message);
      assert.match(e.message, /^stored build ci#3(\.5)? cannot be read/);
    }
  });

  it('reads the steps of a build stored before steps had a kind as commands steps, and checks the fields of each kind', () => {
    const old = structuredClone(BUILD) as unknown as { pipeline: { steps: Record<string, unknown>[] } };
    for (const s of old.pipeline.steps) delete s['kind'];
    assert.deepEqual(readBuild(old), BUILD);
    const kinds = structuredClone(BUILD);
    kinds.pipeline = parsePipeline('steps:\n  - kind: publish\n    store: cdn\n    files: a\n    target: a\n  - kind: deploy\n    service: s\n    to: dev\n    deadline: 1m\n');
    assert.deepEqual(readBuild(structuredClone(kinds)), kinds);
    (kinds.pipeline.steps[0] as unknown as Record<string, unknown>)['target'] = 5;
    assert.equal(failureOf(() => readBuild(kinds)).field, 'pipeline.steps[0].target');
  });
});

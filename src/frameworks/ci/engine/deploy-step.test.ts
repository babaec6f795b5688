import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DeployStep, PipelineStep, StepOutput } from '../pipeline/pipeline.ts';
import { releaseVersionOf, runDeployStep } from './deploy-step.ts';
import { BUILD, dag, removeWorkspaces, run, step, workspace } from './engine-test-support.ts';

// Deploy steps in the engine, where they cannot run (no image, no delivery, a refused token);
// test/ci-deploy.e2e.test.ts runs them against delivery on `slipway up`.

after(removeWorkspaces);

describe('deploy steps that cannot run', () => {
  it('ends a deploy step in error without an image upstream, without delivery, or when CI refuses its token; what depends on it is skipped', async () => {
    const ws = await workspace();
    const deploy = (name: string, dependsOn: string[] = []): PipelineStep => ({ name, kind: 'deploy', service: 's', to: 'dev', when: [], dependsOn, failure: 'fail' });
    const none = await run(dag(deploy('ship'), step('after', ['true'], { dependsOn: ['ship'] })), { workspace: ws, delivery: { open: () => Promise.reject(new Error('not asked')) } });
    assert.deepEqual([none.step('ship').status, none.step('ship').error], ['error', 'step ship deploys the images of the steps before it, and none pushed one (add a build-image step it depends on)']);
    assert.equal(none.step('after').status, 'skipped');
    assert.equal(none.result.status, 'error');
    // A commands step upstream makes no image either: only build-image outputs count.
    const noImage = await run(dag(step('make', ['true']), deploy('ship', ['make'])), { workspace: ws });
    assert.equal(noImage.step('ship').status, 'error');
  });

  it('ends a deploy step with an image upstream in error when the executor has no delivery or CI refuses the token, saying which', async () => {
    const image: StepOutput = { kind: 'image', step: 'image', registry: 'r', name: '127.0.0.1:5000/web:v1', digest: `sha256:${'a'.repeat(64)}` };
    const step: DeployStep = { name: 'ship', kind: 'deploy', service: 'web', to: 'dev', when: [], dependsOn: ['image'], failure: 'fail' };
    const lines: string[] = [];
    const spec = { step, build: BUILD, upstream: [image], signal: new AbortController().signal, output: (c: Buffer) => lines.push(c.toString()) };
    assert.deepEqual(await runDeployStep({ ...spec, delivery: undefined }), { status: 'error', error: 'step ship needs delivery, and this executor was given no way to it' });
    const refused = await runDeployStep({ ...spec, delivery: { open: (service) => Promise.reject(new Error(`CI refused a deploy token (403): job shop may not deploy ${service}`)) } });
    assert.deepEqual(refused, { status: 'error', error: 'step ship may not deploy web: CI refused a deploy token (403): job shop may not deploy web' });
    assert.match(lines.join(''), /may not deploy web/, 'the reason is in the step log too');
  });

  it('names a release by the tag, else by job and build number, always a valid version', () => {
    assert.equal(releaseVersionOf({ ...BUILD, tag: 'v1.2.0' }), 'v1.2.0');
    assert.equal(releaseVersionOf({ ...BUILD, tag: 'release/1.0' }), 'release-1.0');
    assert.equal(releaseVersionOf({ ...BUILD, jobName: 'shop', number: 12 }), 'shop-12');
  });

});

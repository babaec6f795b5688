import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../../../core/document-reader-test-support.ts';
import { parseAppDefinition } from '../app-definition.ts';
import { planDeployment } from './deployment-plan.ts';
import { DeploymentRun, readDeploymentDoc, type VersionedApp } from './deployment-run.ts';

const V1 = '2024-01-01T00:00:00.000Z';
const V2 = '2024-01-02T00:00:00.000Z';

function versioned(json: Record<string, unknown>, version: string): VersionedApp {
  return { def: parseAppDefinition({ cmd: 'sleep 1000', ...json }), info: { version, lastScalingAt: version, lastConfigChangeAt: version } };
}

/** A deployment that upgrades /web, starts /new and stops /old, one step done. */
function run(): DeploymentRun {
  const original = new Map([['/web', versioned({ id: '/web', instances: 2 }, V1)], ['/old', versioned({ id: '/old' }, V1)]]);
  const target = new Map([['/web', versioned({ id: '/web', instances: 2, cmd: 'sleep 2000' }, V2)], ['/new', versioned({ id: '/new' }, V2)]]);
  const defs = (m: Map<string, VersionedApp>) => new Map([...m].map(([k, v]) => [k, v.def]));
  const plan = planDeployment(defs(original), defs(target), { id: '97c136bf-5a28-4821-9d94-480d9fbb01c8', version: V2 });
  return new DeploymentRun(plan, original, target, 1_700_000_000_000, 1);
}

describe('readDeploymentDoc', () => {
  it('reads what toDoc stored back equal, and names the deployment and the field of one that does not match', () => {
    const doc = run().toDoc();
    assert.ok(doc.steps.length >= 3 && doc.original.length === 2 && doc.target.length === 2, JSON.stringify(doc.steps));
    assertReaderChecksEveryField(readDeploymentDoc, doc, { kind: 'deployment' });
    // And fromDoc makes the same run of it.
    const back = DeploymentRun.fromDoc(readDeploymentDoc(JSON.parse(JSON.stringify(doc))));
    assert.deepEqual(back.toDoc(), doc);
  });

  it('names the field of a step, an action or an app inside it', () => {
    const doc = JSON.parse(JSON.stringify(run().toDoc())) as ReturnType<DeploymentRun['toDoc']>;
    const action = structuredClone(doc);
    (action.steps[1]!.actions[0] as { action: string }).action = 'DanceApplication';
    const e = failureOf(() => readDeploymentDoc(action));
    assert.equal(e.field, 'steps[1].actions[0].action');
    assert.equal(e.document, `deployment ${doc.id}`);
    const app = structuredClone(doc);
    delete (app.target[1] as { versionInfo?: unknown }).versionInfo;
    assert.equal(failureOf(() => readDeploymentDoc(app)).field, 'target[1].versionInfo');
  });
});

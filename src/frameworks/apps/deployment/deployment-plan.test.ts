import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAppDefinition, type AppDefinition } from '../app-definition.ts';
import { DeploymentCycle, deploymentToJSON, planDeployment, type DeploymentPlan } from './deployment-plan.ts';

const META = { id: '97c136bf-5a28-4821-9d94-480d9fbb01c8', version: '2015-09-30T09:09:17.614Z' };

function app(json: Record<string, unknown>): AppDefinition {
  return parseAppDefinition({ cmd: 'sleep 1000', ...json });
}

function apps(...list: AppDefinition[]): Map<string, AppDefinition> {
  return new Map(list.map((a) => [a.id, a]));
}

/** Steps as `[[ 'StartApplication /a', ... ], ...]`, actions sorted within a step. */
function stepsOf(plan: DeploymentPlan): string[][] {
  return plan.steps.map((s) => s.actions.map((a) => `${a.action} ${a.app}`).sort());
}

describe('planDeployment', () => {
  it('starts a new app with no instances, then scales it to its instances', () => {
    const plan = planDeployment(new Map(), apps(app({ id: '/tools/oauth-server', instances: 3 })), META);
    assert.deepEqual(stepsOf(plan), [['StartApplication /tools/oauth-server'], ['ScaleApplication /tools/oauth-server']]);
    assert.deepEqual(plan.affectedApps, ['/tools/oauth-server']);
    assert.equal(plan.id, META.id);
    assert.equal(plan.version, META.version);
  });

  it('matches the steps of Marathon’s deployment_steps.json example for a new app', () => {
    const example = JSON.parse(
      readFileSync(new URL('./testdata/deployment_steps.json', import.meta.url), 'utf8'),
    ) as { steps: unknown };
    const plan = planDeployment(new Map(), apps(app({ id: '/tools/oauth-server' })), META);
    assert.deepEqual(deploymentToJSON(plan).steps, example.steps);
  });

  it('stops a removed app', () => {
    const plan = planDeployment(apps(app({ id: '/old' }), app({ id: '/kept' })), apps(app({ id: '/kept' })), META);
    assert.deepEqual(stepsOf(plan), [['StopApplication /old']]);
    assert.deepEqual(plan.affectedApps, ['/old']);
  });

  it('scales an app whose only change is its number of instances', () => {
    const plan = planDeployment(apps(app({ id: '/web', instances: 2 })), apps(app({ id: '/web', instances: 5 })), META);
    assert.deepEqual(stepsOf(plan), [['ScaleApplication /web']]);
  });

  it('restarts an app with any other change, with or without a change of instances', () => {
    const plan = planDeployment(
      apps(app({ id: '/a', cmd: 'v1' }), app({ id: '/b', env: { X: '1' } })),
      apps(app({ id: '/a', cmd: 'v2' }), app({ id: '/b', env: { X: '2' }, instances: 4 })),
      META,
    );
    assert.deepEqual(stepsOf(plan), [['RestartApplication /a', 'RestartApplication /b']]);
  });

  it('leaves unchanged apps out of the plan, and makes no step when nothing changes', () => {
    const same = apps(app({ id: '/a' }), app({ id: '/b', instances: 2 }));
    const plan = planDeployment(same, apps(app({ id: '/a' }), app({ id: '/b', instances: 2 })), META);
    assert.deepEqual(plan.steps, []);
    assert.deepEqual(plan.affectedApps, []);
    assert.equal(deploymentToJSON(plan).currentStep, 0);
  });

  it('deploys an app after the apps it depends on: db before web', () => {
    const target = apps(app({ id: '/shop/web', dependencies: ['/shop/db'] }), app({ id: '/shop/db' }));
    const plan = planDeployment(new Map(), target, META);
    assert.deepEqual(stepsOf(plan), [
      ['StartApplication /shop/db', 'StartApplication /shop/web'],
      ['ScaleApplication /shop/db'],
      ['ScaleApplication /shop/web'],
    ]);
  });

  it('restarts changed apps in dependency order, apps of one layer together', () => {
    const v = (cmd: string): Map<string, AppDefinition> =>
      apps(
        app({ id: '/db', cmd }),
        app({ id: '/cache', cmd }),
        app({ id: '/api', cmd, dependencies: ['/db', '/cache'] }),
        app({ id: '/web', cmd, dependencies: ['/api'] }),
      );
    const plan = planDeployment(v('v1'), v('v2'), META);
    assert.deepEqual(stepsOf(plan), [
      ['RestartApplication /cache', 'RestartApplication /db'],
      ['RestartApplication /api'],
      ['RestartApplication /web'],
    ]);
  });

  it('orders through an unchanged app in between, and a dependency on a group stands for its apps', () => {
    const original = apps(app({ id: '/data/db', cmd: 'v1' }), app({ id: '/api', dependencies: ['/data'] }), app({ id: '/web', cmd: 'v1', dependencies: ['/api'] }));
    const target = apps(app({ id: '/data/db', cmd: 'v2' }), app({ id: '/api', dependencies: ['/data'] }), app({ id: '/web', cmd: 'v2', dependencies: ['/api'] }));
    assert.deepEqual(stepsOf(planDeployment(original, target, META)), [['RestartApplication /data/db'], ['RestartApplication /web']]);
  });

  it('stops a dependent before what it depends on: web before db', () => {
    const original = apps(app({ id: '/shop/web', dependencies: ['/shop/db'] }), app({ id: '/shop/db' }));
    const plan = planDeployment(original, new Map(), META);
    assert.deepEqual(stepsOf(plan), [['StopApplication /shop/web'], ['StopApplication /shop/db']]);
  });

  it('stops first, then starts, then scales and restarts', () => {
    const plan = planDeployment(
      apps(app({ id: '/gone' }), app({ id: '/changed', cmd: 'v1' })),
      apps(app({ id: '/changed', cmd: 'v2' }), app({ id: '/new' })),
      META,
    );
    assert.deepEqual(stepsOf(plan), [
      ['StopApplication /gone'],
      ['StartApplication /new'],
      ['RestartApplication /changed', 'ScaleApplication /new'],
    ]);
    assert.deepEqual(plan.affectedApps, ['/changed', '/gone', '/new']);
  });

  it('refuses a dependency cycle, naming the apps on it', () => {
    const target = apps(app({ id: '/a', dependencies: ['/b'] }), app({ id: '/b', dependencies: ['/c'] }), app({ id: '/c', dependencies: ['/a'] }), app({ id: '/d' }));
    assert.throws(
      () => planDeployment(new Map(), target, META),
      (err: unknown) => {
        assert.ok(err instanceof DeploymentCycle);
        assert.equal(err.code, 'DEPLOYMENT_CYCLE');
        assert.deepEqual(err.cycle, ['/a', '/b', '/c', '/a']);
        assert.match(err.message, /\/a -> \/b -> \/c -> \/a/);
        return true;
      },
    );
  });

  it('refuses an app that depends on itself', () => {
    assert.throws(() => planDeployment(new Map(), apps(app({ id: '/a', dependencies: ['/a'] })), META), DeploymentCycle);
  });

  it('orders a long chain of dependencies without overflowing the stack', () => {
    const chain = Array.from({ length: 20_000 }, (_, i) => app({ id: `/c${i}`, dependencies: i === 0 ? [] : [`/c${i - 1}`] }));
    const plan = planDeployment(new Map(), apps(...chain), META);
    assert.equal(plan.steps.length, 20_001);
    assert.deepEqual(plan.steps[1]?.actions, [{ action: 'ScaleApplication', app: '/c0' }]);
    assert.deepEqual(plan.steps.at(-1)?.actions, [{ action: 'ScaleApplication', app: '/c19999' }]);
  });
});

describe('deploymentToJSON', () => {
  it('has the fields of an entry of Marathon’s deployments.json example, of the same types', () => {
    const example = (
      JSON.parse(readFileSync(new URL('./testdata/deployments.json', import.meta.url), 'utf8')) as Record<string, unknown>[]
    )[0]!;
    const plan = planDeployment(apps(app({ id: '/foo', instances: 1 })), apps(app({ id: '/foo', instances: 2 })), META);
    const json = deploymentToJSON(plan) as unknown as Record<string, unknown>;
    assert.deepEqual(Object.keys(json).sort(), Object.keys(example).sort());
    for (const key of Object.keys(example)) assert.equal(typeof json[key], typeof example[key], key);
    assert.deepEqual(json, {
      id: META.id,
      version: META.version,
      affectedApps: ['/foo'],
      affectedPods: [],
      steps: [{ actions: [{ action: 'ScaleApplication', app: '/foo' }] }],
      currentActions: [{ action: 'ScaleApplication', app: '/foo', readinessCheckResults: [] }],
      currentStep: 1,
      totalSteps: 1,
    });
    // The current action of the example, readiness results included, in the same shape.
    const exampleAction = (example.currentActions as Record<string, unknown>[])[0]!;
    const results = exampleAction.readinessCheckResults as never[];
    const withReadiness = deploymentToJSON(plan, { currentStep: 1, readiness: new Map([['/foo', results]]) });
    assert.deepEqual(withReadiness.currentActions[0], exampleAction);
  });

  it('shows the actions of the current step and refuses a step out of range', () => {
    const plan = planDeployment(new Map(), apps(app({ id: '/a' })), META);
    const json = deploymentToJSON(plan, { currentStep: 2 });
    assert.equal(json.totalSteps, 2);
    assert.deepEqual(json.currentActions, [{ action: 'ScaleApplication', app: '/a', readinessCheckResults: [] }]);
    assert.throws(() => deploymentToJSON(plan, { currentStep: 3 }), RangeError);
  });

  it('survives a round trip through JSON unchanged', () => {
    const plan = planDeployment(new Map(), apps(app({ id: '/a' })), META);
    const json = deploymentToJSON(plan);
    assert.deepEqual(JSON.parse(JSON.stringify(json)), json);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appIdIn, freezeAt, parseDeliveryEnvironment, parseDeliveryRelease, parseDeliveryService } from './delivery-definitions.ts';
import { InvalidDelivery } from './delivery-errors.ts';

const fields = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvalidDelivery) return e.problems.map((p) => p.field);
    throw e;
  }
  return [];
};

describe('delivery documents', () => {
  it('reads an environment with its defaults, and gives each service its app id', () => {
    const env = parseDeliveryEnvironment('Demo_1', { order: 2, appPrefix: '/demo/', apps: { web: '/shop/web' } });
    assert.deepEqual(env, { name: 'Demo_1', order: 2, appPrefix: '/demo/', apps: { web: '/shop/web' }, configEnv: 'Demo_1', gate: { kind: 'none' }, freezes: [] });
    assert.equal(appIdIn(env, 'web'), '/shop/web');
    assert.equal(appIdIn(env, 'Api.v2'), '/demo/api-v2');
    assert.equal(parseDeliveryEnvironment('dev', { order: 1 }).appPrefix, '/dev/');
    assert.deepEqual(parseDeliveryEnvironment('prod', { order: 3, gate: { kind: 'auto' } }).gate, { kind: 'auto', healthyMinutes: 10 });
  });

  it('knows when an environment is frozen', () => {
    const env = parseDeliveryEnvironment('prod', { order: 3, freezes: [{ from: '2026-12-24T00:00:00Z', to: '2026-12-27T00:00:00Z', reason: 'holidays' }] });
    assert.equal(freezeAt(env, Date.parse('2026-12-25T12:00:00Z'))?.reason, 'holidays');
    assert.equal(freezeAt(env, Date.parse('2026-12-27T00:00:00Z')), undefined, 'the end is not in it');
  });

  it('names every wrong field at once', () => {
    assert.deepEqual(fields(() => parseDeliveryEnvironment('dev', { order: -1, appPrefix: 'dev', apps: { web: 'web', 'a b': '/x' }, gate: { kind: 'auto', healthyMinutes: 'soon' }, freezes: [{ from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' }] })), ['order', 'appPrefix', 'apps.web', 'apps.a b', 'gate.healthyMinutes', 'freezes[0].to']);
    assert.deepEqual(fields(() => parseDeliveryService('web', { app: { id: '/x', container: { type: 'MESOS' } }, image: 'Web', extra: 1 })), ['extra', 'app.id', 'app.container', 'image']);
    assert.deepEqual(fields(() => parseDeliveryService('web', [])), ['']);
    assert.deepEqual(fields(() => parseDeliveryRelease('web', { version: 'v 1', commit: 'xyz', images: [], build: { job: '', number: 0 } }, 'u', 0)), ['version', 'commit', 'images', 'build.job', 'build.number']);
  });

  it('reads a release a build made', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const r = parseDeliveryRelease('web', { version: 'v1.2.0', commit: 'abcdef1', images: [{ name: '127.0.0.1:5000/team/web:v1.2.0', digest }], artifacts: [{ name: 'agent.tar.gz', sha256: 'b'.repeat(64) }], build: { job: 'web', number: 4 } }, 'ci', 5);
    assert.deepEqual(r, { service: 'web', version: 'v1.2.0', commit: 'abcdef1', images: [{ name: '127.0.0.1:5000/team/web:v1.2.0', digest }], artifacts: [{ name: 'agent.tar.gz', sha256: 'b'.repeat(64) }], build: { job: 'web', number: 4 }, createdBy: 'ci', createdAt: 5 });
  });
});

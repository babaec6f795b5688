import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertReaderChecksEveryField, failureOf } from '../../core/document-reader-test-support.ts';
import { readStoredApp, type StoredAppJson } from './apps-store.ts';

const APP: StoredAppJson = {
  id: '/web',
  cmd: 'python3 -m http.server $PORT0',
  instances: 2,
  cpus: 0.1,
  mem: 32,
  version: '2024-01-02T00:00:00.000Z',
  versionInfo: { lastScalingAt: '2024-01-02T00:00:00.000Z', lastConfigChangeAt: '2024-01-01T00:00:00.000Z' },
};

describe('readStoredApp', () => {
  it("reads a stored app back equal, and names the app and the field of one without the store's keys", () => {
    // Marathon's own fields are parseAppDefinition's to check: only the store's keys are required.
    assertReaderChecksEveryField((doc) => readStoredApp(doc), { id: APP.id, version: APP.version, versionInfo: APP.versionInfo } as StoredAppJson, {
      kind: 'app',
    });
    assert.deepEqual(readStoredApp(JSON.parse(JSON.stringify(APP))), APP);
  });

  it('names the field of versionInfo that is missing', () => {
    const e = failureOf(() => readStoredApp({ ...APP, versionInfo: { lastScalingAt: APP.versionInfo.lastScalingAt } }));
    assert.equal(e.field, 'versionInfo.lastConfigChangeAt');
    assert.equal(e.document, 'app /web version 2024-01-02T00:00:00.000Z');
  });
});

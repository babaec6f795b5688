import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROLLOUT_DEADLINE_WITHOUT_CHECKS_MS, ROLLOUT_LAUNCH_SLACK_MS, rolloutDeadlineOf } from './services-port.ts';

const check = { gracePeriodSeconds: 10, intervalSeconds: 2, timeoutSeconds: 1, maxConsecutiveFailures: 3 };

test('a rollout deadline comes from the slowest health check and the waves of the upgrade strategy', () => {
  // One instance at a time (minimumHealthCapacity 1, maximumOverCapacity 0 would be none: at least one).
  const perInstance = (10 + 2 * 4 + 1) * 1000 + ROLLOUT_LAUNCH_SLACK_MS;
  assert.equal(rolloutDeadlineOf({ instances: 3, healthChecks: [check], upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 0 } }), 3 * perInstance);
  // All at once beside the old ones (Marathon's default 1 / 1): one wave.
  assert.equal(rolloutDeadlineOf({ instances: 10, healthChecks: [check], upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 } }), perInstance);
  // Half may stop: waves of 5.
  assert.equal(rolloutDeadlineOf({ instances: 10, healthChecks: [check], upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 } }), 2 * perInstance);
  // The slowest check counts.
  const slow = { ...check, gracePeriodSeconds: 100 };
  assert.equal(rolloutDeadlineOf({ instances: 1, healthChecks: [check, slow], upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 } }), (100 + 9) * 1000 + ROLLOUT_LAUNCH_SLACK_MS);
});

test('an app without health checks gets the fixed deadline', () => {
  assert.equal(rolloutDeadlineOf({ instances: 4, healthChecks: [], upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 } }), ROLLOUT_DEADLINE_WITHOUT_CHECKS_MS);
});

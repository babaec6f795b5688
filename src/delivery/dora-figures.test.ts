import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredPromotion } from './delivery-store.ts';
import { doraFigures } from './dora-figures.ts';

const DAY = 86_400_000;
const NOW = 100 * DAY;
let n = 0;
function promotion(p: Partial<StoredPromotion> & Pick<StoredPromotion, 'state' | 'release' | 'createdAt'>): StoredPromotion {
  n += 1;
  return { id: `p${n}`, service: 's', env: 'prod', appId: '/prod/s', image: 'r/s@sha256:x', by: 'u', ...p };
}

describe('doraFigures', () => {
  it('counts deployments, lead time, failure rate and time to restore in the window', () => {
    const released: Record<string, number> = { a: NOW - 5 * DAY, b: NOW - 3 * DAY, c: NOW - 2 * DAY, old: NOW - 60 * DAY };
    const promotions = [
      promotion({ release: 'old', state: 'succeeded', createdAt: NOW - 59 * DAY, startedAt: NOW - 59 * DAY, healthyAt: NOW - 59 * DAY, endedAt: NOW - 59 * DAY }),
      promotion({ release: 'a', state: 'succeeded', createdAt: NOW - 4 * DAY, startedAt: NOW - 4 * DAY, healthyAt: NOW - 4 * DAY, endedAt: NOW - 4 * DAY }),
      // Failed and rolled back by delivery in 120 s.
      promotion({ release: 'b', state: 'failed', createdAt: NOW - 3 * DAY, startedAt: NOW - 3 * DAY, endedAt: NOW - 3 * DAY + 120_000 }),
      promotion({ release: 'c', state: 'succeeded', createdAt: NOW - 2 * DAY, startedAt: NOW - 2 * DAY, healthyAt: NOW - 2 * DAY + 3_600_000, endedAt: NOW - 2 * DAY + 3_600_000 }),
      // c was bad after all: rolled back by hand 600 s after it went live.
      promotion({ release: 'a', state: 'succeeded', isRollback: true, createdAt: NOW - 2 * DAY + 3_900_000, healthyAt: NOW - 2 * DAY + 4_200_000, endedAt: NOW - 2 * DAY + 4_200_000 }),
      promotion({ release: 'c', state: 'rejected', createdAt: NOW - DAY, endedAt: NOW - DAY }),
    ];
    const f = doraFigures(promotions, { now: NOW, windowDays: 30, releasedAt: (v) => released[v] });
    assert.equal(f.deployments, 3, 'a, c and the rollback; not the one 59 days ago');
    assert.equal(f.deploymentsPerDay, 0.1);
    // Lead times: a 1 day, c 1 h (the rollback is no change): median (86,400 + 3,600) / 2.
    assert.equal(f.leadTimeSeconds, 45_000);
    assert.equal(f.changeFailureRate, 0.333, 'b of a, b, c');
    // Restores: b 120 s, c's rollback 600 s: median 360 s.
    assert.equal(f.timeToRestoreSeconds, 360);
  });

  it('answers null for what has nothing to count', () => {
    const f = doraFigures([], { now: NOW, windowDays: 7, releasedAt: () => undefined });
    assert.deepEqual(f, { windowDays: 7, deployments: 0, deploymentsPerDay: 0, leadTimeSeconds: null, changeFailureRate: null, timeToRestoreSeconds: null });
  });
});

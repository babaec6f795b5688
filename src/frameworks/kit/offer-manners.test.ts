import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DECLINE_BUSY_SECONDS, DECLINE_IDLE_SECONDS, REVIVE_RETRY_MS, declineSeconds, freshOfferManners, offersSeen, planOfferMode, type OfferMannersState } from './offer-manners.ts';

const input = (need: number, now: number, subscribed = true) => ({ need, now, subscribed, role: 'ci' });

describe('offer manners', () => {
  it('revives when a need appears or grows, and suppresses once nothing is needed', () => {
    let s: OfferMannersState = freshOfferManners();
    let r = planOfferMode(s, input(2, 1000));
    assert.deepEqual(r.call, { type: 'REVIVE', revive: { roles: ['ci'] } });
    s = offersSeen(r.next, 1000, 2);
    r = planOfferMode(s, input(2, 1100));
    assert.equal(r.call, undefined, 'the same need asks nothing again');
    r = planOfferMode(r.next, input(1, 1200));
    assert.equal(r.call, undefined, 'a smaller need asks nothing');
    r = planOfferMode(r.next, input(3, 1300));
    assert.equal(r.call?.type, 'REVIVE', 'a grown need revives');
    r = planOfferMode(r.next, input(0, 1400));
    assert.deepEqual(r.call, { type: 'SUPPRESS', suppress: { roles: ['ci'] } });
    r = planOfferMode(r.next, input(0, 1500));
    assert.equal(r.call, undefined, 'suppressed once');
    r = planOfferMode(r.next, input(1, 1600));
    assert.equal(r.call?.type, 'REVIVE', 'any need revives a suppressed framework');
  });

  it('revives for a need that comes after offers met the one before', () => {
    let r = planOfferMode(freshOfferManners(), input(3, 1000));
    assert.equal(r.call?.type, 'REVIVE');
    // The offers met all three; the rest of them was declined (with a long filter).
    const met = offersSeen(r.next, 1100, 0);
    r = planOfferMode(met, input(1, 1200));
    assert.equal(r.call?.type, 'REVIVE', 'one more build: revive, which clears the decline filters');
  });

  it('does not suppress without a subscription', () => {
    assert.equal(planOfferMode(freshOfferManners(), input(0, 1000, false)).call, undefined);
  });

  it('revives again when needs wait without offers (a REVIVE lost, or overtaken by a SUPPRESS)', () => {
    let r = planOfferMode(freshOfferManners(), input(1, 10_000));
    assert.equal(r.call?.type, 'REVIVE');
    r = planOfferMode(r.next, input(1, 10_000 + REVIVE_RETRY_MS - 1));
    assert.equal(r.call, undefined, 'not before the retry time');
    r = planOfferMode(r.next, input(1, 10_000 + REVIVE_RETRY_MS));
    assert.equal(r.call?.type, 'REVIVE', 'starved: revive again');
    const fed = offersSeen(r.next, 10_000 + REVIVE_RETRY_MS + 100, 1);
    r = planOfferMode(fed, input(1, 10_000 + 2 * REVIVE_RETRY_MS + 50));
    assert.equal(r.call, undefined, 'offers came less than the retry time ago');
  });

  it('declines briefly while needs wait, for long otherwise', () => {
    assert.equal(declineSeconds(true), DECLINE_BUSY_SECONDS);
    assert.equal(declineSeconds(false), DECLINE_IDLE_SECONDS);
  });
});

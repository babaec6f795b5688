import type { OutgoingCall } from './framework-session.ts';

/**
 * How a framework behaves towards offers, the same for every framework of Slipway (Mesos's
 * "offer manners": docs/app-framework-development-guide.md, docs/scheduler-http-api.md):
 *
 * - Offers nobody needs are declined with a long filter (DECLINE_IDLE_SECONDS, Marathon's
 *   `--decline_offer_duration`): the master offers them to the others meanwhile. Offers declined
 *   while needs wait for something else (a constraint, a fit) come back soon
 *   (DECLINE_BUSY_SECONDS).
 * - SUPPRESS once nothing is needed; REVIVE when a need appears or grows (REVIVE also clears the
 *   filters of earlier declines, so a new need is met at once).
 * - The starvation retry: needs that waited REVIVE_RETRY_MS without any offer REVIVE again. Calls
 *   over HTTP are separate requests, so a SUPPRESS sent before a REVIVE may reach the master after
 *   it and leave the framework suppressed while it waits; a lost call does the same.
 *
 * Pure: `planOfferMode` answers the call to send (if any) and the next state; the framework's
 * applier sends the one and keeps the other.
 */

/** Offers nobody needs are declined for this long. */
export const DECLINE_IDLE_SECONDS = 120;
/** Offers declined while needs wait for others come back this soon. */
export const DECLINE_BUSY_SECONDS = 5;
/** Needs waiting this long without any offer make the framework REVIVE again. */
export const REVIVE_RETRY_MS = 5_000;

export interface OfferMannersState {
  /** SUPPRESS was the last of REVIVE/SUPPRESS sent on this subscription. */
  suppressed: boolean;
  /** The total need when the mode was last planned. */
  lastNeed: number;
  /** When offers last arrived, and when REVIVE was last sent (milliseconds). */
  lastOffersAt: number;
  lastReviveAt: number;
}

/** A new subscription: the master offers to it unsuppressed, and nothing was asked yet. */
export function freshOfferManners(): OfferMannersState {
  return { suppressed: false, lastNeed: 0, lastOffersAt: 0, lastReviveAt: 0 };
}

/**
 * Offers arrived at `now`, and after launching from them the framework still needs `remaining`:
 * a need that comes next is compared with that (so it revives, clearing the filters of the offers
 * just declined), not with the need the offers met.
 */
export function offersSeen(state: OfferMannersState, now: number, remaining: number): OfferMannersState {
  return { ...state, lastOffersAt: now, lastNeed: Math.min(state.lastNeed, remaining) };
}

export interface OfferModeInput {
  /** How many launches the framework waits to make (any unit, compared with the last). */
  need: number;
  now: number;
  /** Whether the framework is subscribed (SUPPRESS is only sent on a subscription). */
  subscribed: boolean;
  role: string;
}

export function planOfferMode(state: OfferMannersState, input: OfferModeInput): { call?: OutgoingCall; next: OfferMannersState } {
  const { need, now } = input;
  const starved = need > 0 && now - state.lastOffersAt >= REVIVE_RETRY_MS && now - state.lastReviveAt >= REVIVE_RETRY_MS;
  if (need > 0 && (state.suppressed || need > state.lastNeed || starved)) {
    return { call: { type: 'REVIVE', revive: { roles: [input.role] } }, next: { ...state, suppressed: false, lastNeed: need, lastReviveAt: now } };
  }
  if (need === 0 && !state.suppressed && input.subscribed) {
    return { call: { type: 'SUPPRESS', suppress: { roles: [input.role] } }, next: { ...state, suppressed: true, lastNeed: 0 } };
  }
  return { next: state.lastNeed === need ? state : { ...state, lastNeed: need } };
}

/** The filter of a DECLINE: long when nothing waits, short when needs wait for other offers. */
export function declineSeconds(stillNeeded: boolean): number {
  return stillNeeded ? DECLINE_BUSY_SECONDS : DECLINE_IDLE_SECONDS;
}

/** What a framework keeps of its offer mode, and the changes of it its plans carry. */
export interface OfferModeState {
  /** What the framework waits to launch, by what it launches (an app, a label), as its last pass found it. */
  needs: ReadonlyMap<string, number>;
  manners: OfferMannersState;
}

export type OfferModeChange = { type: 'NEEDS'; needs: ReadonlyMap<string, number> } | { type: 'OFFER_MANNERS'; state: OfferMannersState };

/** Applies an offer-mode change to a framework's state. */
export function applyOfferMode(target: OfferModeState, c: OfferModeChange): void {
  if (c.type === 'NEEDS') target.needs = c.needs;
  else target.manners = c.state;
}

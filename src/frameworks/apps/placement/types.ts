import type { Resources } from '../../../core/resources.ts';
import type { AppConstraint } from '../app-definition.ts';
import type { Location } from '../../kit/instance-tally.ts';

export type { Location } from '../../kit/instance-tally.ts';

/** What placement needs to know of an app (a projection of the normalized AppDefinition). */
export interface PlacementApp {
  id: string;
  cpus: number;
  mem: number;
  disk: number;
  /** How many host ports each instance needs, picked from the offer's port ranges. */
  ports: number;
  /**
   * The fixed host ports of an app with `requirePorts`. When given, these are the instance's
   * ports (and `ports` is ignored); an offer fits only if it holds every one of them.
   */
  requirePorts?: number[];
  constraints: readonly AppConstraint[];
  /** Roles whose resources may be used (`*` for unreserved). Undefined: any role in the offer. */
  acceptedResourceRoles?: string[];
}


export interface PlacementOffer extends Location {
  id: string;
  /** The offered resources (already allocatable to the framework's role). */
  resources: Resources;
}

export interface PlacementInput {
  app: PlacementApp;
  /** How many instances to place. */
  wanted: number;
  offers: readonly PlacementOffer[];
  /** The app's instances already running or staging. */
  running: readonly Location[];
  /** Seed of the tie-breaking shuffle: the same input and seed give the same plan. */
  seed: number;
}

export interface Placement {
  offerId: string;
  agentId: string;
  /** cpus/mem/disk and the chosen ports, taken from the offer with the offer's roles. */
  resources: Resources;
  /** The host ports, in the order of the app's ports. */
  ports: number[];
}

import type { DeliveryEnvironment, DeliveryRelease, DeliveryService, JsonObject } from './delivery-definitions.ts';

/**
 * What delivery persists (src/store implements it: `KyselyDeliveryStore`, delivery.db). Releases
 * are appended, never changed; a promotion is saved at each change of its state, before memory
 * changes and before anything is asked of the services framework, so that a restart finds every
 * promotion that was started and ends or resumes it (DeliveryCenter.resume).
 */

export type PromotionState = 'waiting-approval' | 'deploying' | 'rolling-back' | 'succeeded' | 'failed' | 'rejected';

export const ENDED_STATES: ReadonlySet<PromotionState> = new Set<PromotionState>(['succeeded', 'failed', 'rejected']);

export interface StoredPromotion {
  id: string;
  service: string;
  env: string;
  /** The release's version deployed. */
  release: string;
  appId: string;
  /** The image it deploys: `registry/repository@digest`. */
  image: string;
  state: PromotionState;
  reason?: string;
  /** Who asked for it (`delivery` for an automatic one). */
  by: string;
  auto?: boolean;
  /** Whether it is a rollback (POST .../rollback): automation then pauses in the environment. */
  isRollback?: boolean;
  approvedBy?: string;
  createdAt: number;
  startedAt?: number;
  /** Milliseconds since the epoch past which a deployment not yet healthy is rolled back. */
  deadline?: number;
  deadlineMs?: number;
  /** The deadline the promotion asked for (a deploy step's `deadline`), which wins over the environment's and the app's. */
  askedDeadlineMs?: number;
  deploymentId?: string;
  /** The app's definition as the deployment set it (its `lastConfigChangeAt`: what the new instances carry). */
  configVersion?: string;
  /** The config release current in the environment when it started, if the service has config. */
  configRelease?: number;
  /** What ran before: the release (if delivery put it there) and the app's definition (absent: no app). */
  previousRelease?: string;
  previousApp?: JsonObject;
  /** The deployment that put `previousApp` back after a failure. */
  rollbackDeploymentId?: string;
  /** When every instance first ran it healthy (auto gates count from here). */
  healthyAt?: number;
  endedAt?: number;
}

export interface DeliveryStore {
  load(): Promise<{ services: DeliveryService[]; environments: DeliveryEnvironment[]; releases: DeliveryRelease[]; promotions: StoredPromotion[] }>;
  saveService(service: DeliveryService): Promise<void>;
  deleteService(name: string): Promise<void>;
  saveEnvironment(env: DeliveryEnvironment): Promise<void>;
  deleteEnvironment(name: string): Promise<void>;
  /** Appends a release; answers false when the service already has that version (nothing written). */
  appendRelease(release: DeliveryRelease): Promise<boolean>;
  savePromotion(promotion: StoredPromotion): Promise<void>;
  close(): Promise<void>;
}

import type { StoredPromotion } from './delivery-store.ts';

/**
 * The four DORA measures of one service in one environment (production), from its promotions
 * in the last `windowDays` (docs/delivery.md says how each is counted):
 *
 * - deployment frequency: succeeded promotions (rollbacks included) per day of the window;
 * - lead time for changes: median, over succeeded promotions that are not rollbacks, from the
 *   release being made (the build that made it, just after its commit) to healthy in production;
 * - change failure rate: failed promotions over promotions that ended succeeded or failed (not
 *   rollbacks, not rejected ones);
 * - time to restore: median, over failures, from the failed promotion's start to the service
 *   running the release before again: its rollback's end for a promotion rolled back by delivery,
 *   the healthy end of the rollback promotion for a bad release rolled back by hand.
 *
 * Figures with nothing to count are null.
 */
export interface DoraFigures {
  windowDays: number;
  deployments: number;
  deploymentsPerDay: number;
  leadTimeSeconds: number | null;
  changeFailureRate: number | null;
  timeToRestoreSeconds: number | null;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function doraFigures(promotions: readonly StoredPromotion[], o: { now: number; windowDays: number; releasedAt: (version: string) => number | undefined }): DoraFigures {
  const since = o.now - o.windowDays * 86_400_000;
  const inWindow = promotions.filter((p) => (p.endedAt ?? p.createdAt) >= since).sort((a, b) => a.createdAt - b.createdAt);
  const succeeded = inWindow.filter((p) => p.state === 'succeeded');
  const leads = succeeded.flatMap((p) => {
    const made = o.releasedAt(p.release);
    return p.isRollback !== true && made !== undefined && p.healthyAt !== undefined ? [(p.healthyAt - made) / 1000] : [];
  });
  const changes = inWindow.filter((p) => p.isRollback !== true && (p.state === 'succeeded' || p.state === 'failed'));
  const failures = changes.filter((p) => p.state === 'failed');
  const restores: number[] = [];
  for (const p of inWindow) {
    if (p.isRollback === true && p.state === 'succeeded' && p.healthyAt !== undefined) {
      // A bad release that went live and was rolled back by hand: from when it went live.
      const bad = inWindow.filter((q) => q.state === 'succeeded' && q.isRollback !== true && q.createdAt < p.createdAt).at(-1);
      if (bad?.healthyAt !== undefined) restores.push((p.healthyAt - bad.healthyAt) / 1000);
    } else if (p.state === 'failed' && p.startedAt !== undefined && p.endedAt !== undefined) {
      restores.push((p.endedAt - p.startedAt) / 1000);
    }
  }
  return {
    windowDays: o.windowDays,
    deployments: succeeded.length,
    deploymentsPerDay: Math.round((succeeded.length / o.windowDays) * 1000) / 1000,
    leadTimeSeconds: median(leads),
    changeFailureRate: changes.length > 0 ? Math.round((failures.length / changes.length) * 1000) / 1000 : null,
    timeToRestoreSeconds: median(restores),
  };
}

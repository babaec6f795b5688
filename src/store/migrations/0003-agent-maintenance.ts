import type { Kysely, Migration } from 'kysely';

/**
 * `agents.maintenance`: what the operator set on an agent (DEACTIVATE_AGENT, DRAIN_AGENT), as JSON
 * of `AgentMaintenance` (src/master/master-store.ts), so that a restarted master neither offers a
 * deactivated agent again nor forgets a drain half done (Mesos keeps both in its registry).
 * Nullable: `null` is an agent the operator left alone, as every row written before this migration.
 */
export const migration0003AgentMaintenance: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('agents').addColumn('maintenance', 'text').execute();
  },
};

import type { Kysely, Migration } from 'kysely';

/**
 * Two facts a restarted master must not lose:
 * - `agents.unreachable_at`: an agent that was unreachable when the master stopped comes back as
 *   one returning from a partition (its tasks of frameworks that are not partition-aware were
 *   reported LOST and must be killed, not adopted);
 * - `tasks.role`: the role a task's resources were allocated to, for multi-role frameworks, so
 *   that shares and quota are charged to the same role after a restart.
 * Both nullable: rows written before this migration have neither.
 */
export const migration0002UnreachableAndRole: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('agents').addColumn('unreachable_at', 'bigint').execute();
    await db.schema.alterTable('tasks').addColumn('role', 'text').execute();
  },
};

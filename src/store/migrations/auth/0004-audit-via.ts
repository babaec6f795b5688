import type { Kysely, Migration } from 'kysely';

/** Which part reported an audit entry (`slipway apps`, `slipway ci`: their token's name); null for the master's own. */
export const migration0004AuditVia: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('audit').addColumn('via', 'text').execute();
  },
};

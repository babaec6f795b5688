import type { Kysely, Migration } from 'kysely';

/**
 * `agents.credential`: the credential (token id) an agent's id is bound to (issue 12), so that a
 * restarted master still refuses a REGISTER of a known id from another credential. Nullable: agents
 * registered before authentication existed, or without a credential, are bound at their next REGISTER.
 */
export const migration0004AgentCredential: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('agents').addColumn('credential', 'text').execute();
  },
};

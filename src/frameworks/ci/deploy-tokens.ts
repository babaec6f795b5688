/**
 * How CI gets a deploy step its token (issue 14): a port CI owns, which the server implements
 * with its tokens and policies (src/server/ci-deploy-tokens.ts). A token from `mint` may read and
 * deploy (release, promote, roll back) the one delivery service it names, nothing else, and
 * expires after `ttlMs`; delivery records its name (`ci:<job>#<number>`) as who made the release,
 * so a person other than the build approves it at a manual gate.
 */
export interface DeployTokens {
  mint(o: { service: string; job: string; build: number; ttlMs: number }): Promise<{ token: string; expiresAt: number }>;
  /** Delivery's base URL (`/deliver/v1` is under it), which the token is for. */
  deliveryUrl(): string;
}

/** How long a deploy step's token lives when the step gives no deadline: an hour. */
export const DEPLOY_TOKEN_TTL_MS = 3600_000;
/** What a token gets on top of the step's deadline: time to make the release and follow the promotion's end. */
export const DEPLOY_TOKEN_MARGIN_MS = 600_000;

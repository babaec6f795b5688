import { createHash } from 'node:crypto';
import type { PolicyRegistry } from '../auth/policy-registry.ts';
import type { TokenRegistry } from '../auth/tokens.ts';
import type { DeployTokens } from '../frameworks/ci/deploy-tokens.ts';

/**
 * CI's DeployTokens over the installation's tokens and policies (`slipway up`): each service gets
 * a policy of its own, `ci-deploy.<service>` (a hash of the name when it is not a policy name),
 * made on first use, granting `read` and `deploy` on `delivery` `<service>/*` and nothing else;
 * each deploy step a token of that policy named `ci:<job>/<build>` (what delivery records as the
 * release's author), which expires after the TTL CI asks for.
 */
export function ciDeployTokens(o: { tokens: TokenRegistry; policies: PolicyRegistry; deliveryUrl: () => string }): DeployTokens {
  return {
    deliveryUrl: o.deliveryUrl,
    async mint({ service, job, build, ttlMs }) {
      const name = /^[a-z0-9][a-z0-9._-]{0,53}$/.test(service) ? `ci-deploy.${service}` : `ci-deploy.${createHash('sha256').update(service).digest('hex').slice(0, 16)}`;
      const rule = { kind: 'delivery', match: `${service}/*`, capabilities: ['read', 'deploy'] };
      const known = o.policies.get(name);
      if (known === undefined || JSON.stringify(known.rules) !== JSON.stringify([rule])) {
        await o.policies.put(name, { description: `made by CI: what a deploy step's token may do, release and promote delivery service ${service}`, rules: [rule] });
      }
      const { token, view } = await o.tokens.create({ name: `ci:${job}/${build}`.slice(0, 128), policies: [name], ttlMs });
      return { token, expiresAt: view.expiresAt !== undefined ? Date.parse(view.expiresAt) : Date.now() + ttlMs };
    },
  };
}

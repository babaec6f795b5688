import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Check, GateRequest, OwnCredentials, RouteRule } from '../../auth/http-gate.ts';
import { httpErrorReply } from '../../core/http-error-reply.ts';
import type { ConfigCenter, ReleaseView } from '../config-center.ts';
import { configName } from '../config-definitions.ts';
import { ConfigNotFound, InvalidConfig } from '../config-errors.ts';
import { parseProperties } from '../render-files.ts';
import { apolloProof, type SecretValueOf } from './apollo-signature.ts';

/**
 * Apollo's client API (apolloconfig.com, "Other language client access guide"), so that Apollo
 * clients work unchanged: appId is the service, cluster the environment, namespace a file of the
 * current release (`application` is `application.properties`, as Apollo's namespaces of the
 * properties format carry no suffix).
 *
 * - `GET /configs/{appId}/{cluster}/{namespace}[?releaseKey=]`: `{appId, cluster, namespaceName,
 *   configurations, releaseKey}`; 304 when `releaseKey` is the current one. A properties file's
 *   configurations are its keys; any other file's are `{"content": "<the file>"}`.
 * - `GET /configfiles/json/{appId}/{cluster}/{namespace}`: the configurations alone.
 * - `GET /configfiles/{appId}/{cluster}/{namespace}`: the file as text.
 * - `GET /notifications/v2?appId=&cluster=&notifications=[{"namespaceName", "notificationId"}]`:
 *   held up to 60 s; answers the namespaces whose notificationId (the release version) is newer
 *   than the client's, else 304 (Apollo's long poll).
 *
 * Who may: read and files on config `appId/cluster`. Apollo clients send no Slipway token, but
 * they sign with an access key (`apollo.access-key.secret`): a service that names one
 * (`apollo.accessKeySecret`, a secret of the secret store) is read by requests whose signature
 * holds, as `apollo:<appId>` (apollo-signature.ts); a signed request that does not hold is 401.
 * Without a signature a token applies as everywhere (Basic where the client allows it), or the
 * built-in `config-client` policy granted to anonymous requests from this machine
 * (`slipway up --anonymous-policy config-client --anonymous-loopback-only`, docs/security.md):
 * every local process then reads every release.
 */

const scopeOf = (req: GateRequest): Check[] => {
  const p = req.params;
  const q = req.query;
  const app = p['appId'] ?? (typeof q['appId'] === 'string' ? q['appId'] : '');
  const cluster = p['cluster'] ?? (typeof q['cluster'] === 'string' ? q['cluster'] : '');
  // The configurations are the files' contents, secrets included: `files` too, not only read.
  return [
    { capability: 'read', resource: { kind: 'config', name: `${app}/${cluster}` } },
    { capability: 'files', resource: { kind: 'config', name: `${app}/${cluster}` } },
  ];
};

/**
 * The rules of Apollo's routes: the checks above, with Apollo's signatures as a credential of
 * their own. `secretValue` is the secret store's (the server wires it); `now`, the clock the
 * signatures' Timestamps are held against.
 */
export function apolloAccessRules(center: Pick<ConfigCenter, 'service'>, o: { secretValue: SecretValueOf; now: () => number }): RouteRule[] {
  const access: OwnCredentials = {
    prove: apolloProof({
      secretOf: (appId) => {
        try {
          return center.service(appId).apollo?.accessKeySecret;
        } catch (e) {
          if (e instanceof ConfigNotFound) return undefined;
          throw e;
        }
      },
      valueOf: o.secretValue,
      now: o.now,
    }),
    checks: scopeOf,
  };
  return [
    { method: 'GET', url: '/configs/:appId/:cluster/:namespace', access },
    { method: 'GET', url: '/configfiles/json/:appId/:cluster/:namespace', access },
    { method: 'GET', url: '/configfiles/:appId/:cluster/:namespace', access },
    { method: 'GET', url: '/notifications/v2', access },
  ];
}

/** The file a namespace names in a release: itself, or `<namespace>.properties`. */
function fileOf(release: ReleaseView, namespace: string): ReleaseView['files'][number] | undefined {
  return release.files.find((f) => f.name === namespace) ?? release.files.find((f) => f.name === `${namespace}.properties`);
}

function releaseKey(release: ReleaseView, file: { sha256: string }): string {
  return `${release.version}-${file.sha256.slice(0, 16)}`;
}

export function apolloRoutes(app: FastifyInstance, center: ConfigCenter): void {
  void app.register(async (scope) => {
    // Apollo answers errors as JSON {status, message}.
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const { status, message, internal } = httpErrorReply(error);
      if (internal) request.log.error(error);
      return reply.code(status).send({ status, message, timestamp: new Date().toISOString() });
    });
    routes(scope, center);
  });
}

function routes(app: FastifyInstance, center: ConfigCenter): void {
  const namespaceOf = (req: FastifyRequest) => {
    const p = req.params as Record<string, string>;
    const service = configName(p['appId'] ?? '', 'appId');
    const env = configName(p['cluster'] ?? '', 'cluster');
    const namespace = p['namespace'] ?? '';
    const release = center.current(service, env);
    if (release === undefined) throw new ConfigNotFound(`${service} has no release in ${env}`);
    const view = center.release(service, env, release.version);
    const file = fileOf(view, namespace);
    if (file === undefined) throw new ConfigNotFound(`no namespace ${namespace.slice(0, 100)} in ${service}/${env}: the release has ${view.files.map((f) => f.name).join(', ')}`);
    const content = center.fileContent(service, env, view.version, file.name).content;
    const configurations = file.name.endsWith('.properties') ? parseProperties(content) : { content };
    return { service, env, namespace, view, file, content, configurations };
  };

  app.get('/configs/:appId/:cluster/:namespace', (req, reply: FastifyReply) => {
    const n = namespaceOf(req);
    const key = releaseKey(n.view, n.file);
    if ((req.query as Record<string, unknown>)['releaseKey'] === key) return reply.code(304).send();
    return { appId: n.service, cluster: n.env, namespaceName: n.namespace, configurations: n.configurations, releaseKey: key };
  });
  app.get('/configfiles/json/:appId/:cluster/:namespace', (req) => namespaceOf(req).configurations);
  app.get('/configfiles/:appId/:cluster/:namespace', (req, reply: FastifyReply) => reply.type('text/plain; charset=utf-8').send(namespaceOf(req).content));

  app.get('/notifications/v2', async (req, reply: FastifyReply) => {
    const q = req.query as Record<string, string | undefined>;
    const service = configName(q['appId'] ?? '', 'appId');
    const env = configName(q['cluster'] ?? '', 'cluster');
    let asked: { namespaceName: string; notificationId: number }[];
    try {
      const parsed: unknown = JSON.parse(q['notifications'] ?? '');
      if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > 100) throw new Error('not a list');
      asked = parsed.map((n: unknown) => {
        const o = n as { namespaceName?: unknown; notificationId?: unknown };
        if (typeof o.namespaceName !== 'string' || typeof o.notificationId !== 'number' || !Number.isInteger(o.notificationId)) throw new Error('bad entry');
        return { namespaceName: o.namespaceName.replace(/\.properties$/, ''), notificationId: o.notificationId };
      });
    } catch {
      throw new InvalidConfig([{ field: 'notifications', message: 'must be a JSON list of {"namespaceName": "...", "notificationId": N} (1 to 100)' }]);
    }
    const answer = (release: ReleaseView) =>
      asked
        .filter((a) => release.version > a.notificationId && fileOf(release, a.namespaceName) !== undefined)
        .map((a) => ({ namespaceName: a.namespaceName, notificationId: release.version, messages: { details: { [`${service}+${env}+${a.namespaceName}`]: release.version } } }));
    const current = center.current(service, env);
    if (current !== undefined) {
      const now = answer(center.release(service, env, current.version));
      if (now.length > 0) return now;
    }
    const since = Math.max(0, Math.min(...asked.map((a) => a.notificationId)), current?.version ?? 0);
    const abort = new AbortController();
    reply.raw.on('close', () => abort.abort());
    if (reply.raw.destroyed) abort.abort();
    // Apollo holds a notification request 60 s (its clients time out at 90).
    const release = await center.watch(service, env, since, 60_000, abort.signal);
    const changed = release !== undefined ? answer(release) : [];
    if (changed.length === 0) return reply.code(304).send();
    return changed;
  });
}

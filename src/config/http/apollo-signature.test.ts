import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProofRequest } from '../../auth/http-gate.ts';
import { decide } from '../../auth/policy.ts';
import { parseService } from '../config-definitions.ts';
import { InvalidConfig } from '../config-errors.ts';
import { accessKeySecretChecks, apolloProof, apolloSignature, sameSignature, signedPathOf } from './apollo-signature.ts';

describe("Apollo's access-key signature", () => {
  it("matches Apollo's own test vectors (HmacSha1UtilsTest, AccessKeyUtilTest)", () => {
    // apollo-core HmacSha1UtilsTest.testSignString: the string to sign is Timestamp + "\n" + pathWithQuery.
    assert.equal(apolloSignature('1576478257344', '/configs/100004458/default/application?ip=10.0.0.1', 'df23df3f59884980844ff3dada30fa97'), 'EoKyziXvKqzHgwx+ijDJwgVTDgE=');
    // apollo-configservice AccessKeyUtilTest.buildSignature: path, `?`, query.
    assert.equal(apolloSignature('1575018989200', signedPathOf('/configs/someAppId/default/application?ip=10.0.0.1'), 'someSecret'), 'WYjjyJFei6DYiaMlwZjew2O/Yqk=');
  });

  it('signs the path alone when the query is empty, and the query as sent', () => {
    assert.equal(signedPathOf('/configs/a/b/c'), '/configs/a/b/c');
    assert.equal(signedPathOf('/configs/a/b/c?'), '/configs/a/b/c');
    assert.equal(signedPathOf('/notifications/v2?appId=a&notifications=%5B%5D'), '/notifications/v2?appId=a&notifications=%5B%5D');
  });

  it('compares signatures whole', () => {
    assert.equal(sameSignature('WYjjyJFei6DYiaMlwZjew2O/Yqk=', 'WYjjyJFei6DYiaMlwZjew2O/Yqk='), true);
    assert.equal(sameSignature('WYjjyJFei6DYiaMlwZjew2O/Yqk', 'WYjjyJFei6DYiaMlwZjew2O/Yqk='), false);
    assert.equal(sameSignature('', 'WYjjyJFei6DYiaMlwZjew2O/Yqk='), false);
  });
});

describe('apolloProof', () => {
  const now = 1_700_000_000_000;
  const prove = apolloProof({ secretOf: (appId) => ({ web: 'apollo/web', gone: 'apollo/gone' })[appId], valueOf: (name) => (name === 'apollo/web' ? 'k3y-0123456789abcdef' : undefined), now: () => now });
  const signed = (url: string, o: { appId?: string; secret?: string; at?: number; headers?: Record<string, string> } = {}): ProofRequest => {
    const ts = String(o.at ?? now);
    const path = url.split('?')[0]!;
    const appId = path.startsWith('/notifications') ? new URLSearchParams(url.split('?')[1]).get('appId') ?? '' : path.split('/').at(-3)!;
    return {
      method: 'GET',
      url,
      headers: { authorization: `Apollo ${o.appId ?? appId}:${apolloSignature(ts, url, o.secret ?? 'k3y-0123456789abcdef')}`, timestamp: ts, ...o.headers },
      params: path.startsWith('/notifications') ? {} : { appId, cluster: 'prod', namespace: 'application' },
      query: Object.fromEntries(new URLSearchParams(url.split('?')[1] ?? '')),
    };
  };
  const refusal = (req: ProofRequest): string => {
    try {
      prove(req);
    } catch (e) {
      assert.equal((e as { status?: number }).status, 401, String(e));
      return (e as Error).message;
    }
    assert.fail('expected a 401');
  };

  it('proves a signed request as apollo:<appId>, with read and files on that service only', () => {
    const who = prove(signed('/configs/web/prod/application?ip=10.0.0.1'));
    assert.equal(who?.name, 'apollo:web');
    assert.equal(decide(who!.policies, 'files', { kind: 'config', name: 'web/prod' }).allowed, true);
    assert.equal(decide(who!.policies, 'read', { kind: 'config', name: 'webx/prod' }).allowed, false);
    assert.equal(decide(who!.policies, 'configure', { kind: 'config', name: 'web/prod' }).allowed, false);
    assert.equal(prove(signed('/notifications/v2?appId=web&cluster=prod&notifications=%5B%5D'))?.name, 'apollo:web');
    assert.equal(prove(signed('/configs/web/prod/application', { at: now - 59_999 }))?.name, 'apollo:web');
  });

  it('leaves a request without an Apollo signature to the other credentials', () => {
    assert.equal(prove({ method: 'GET', url: '/configs/web/prod/application', headers: {}, params: { appId: 'web' }, query: {} }), undefined);
    assert.equal(prove({ method: 'GET', url: '/configs/web/prod/application', headers: { authorization: 'Bearer slw_x' }, params: { appId: 'web' }, query: {} }), undefined);
  });

  it('refuses, saying why: wrong key, stale or missing Timestamp, another path, another appId, no key', () => {
    assert.match(refusal(signed('/configs/web/prod/application', { secret: 'other' })), /^Unauthorized: .*"\/configs\/web\/prod\/application"/);
    assert.match(refusal(signed('/configs/web/prod/application', { at: now - 60_000 })), /RequestTimeTooSkewed: the Timestamp is 60 s old/);
    assert.match(refusal(signed('/configs/web/prod/application', { at: now + 120_000 })), /120 s ahead/);
    assert.match(refusal(signed('/configs/web/prod/application', { headers: { timestamp: '' } })), /Timestamp header is missing/);
    assert.match(refusal(signed('/configs/web/prod/application', { headers: { timestamp: 'yesterday' } })), /not a time in milliseconds/);
    const other = signed('/configs/web/prod/application');
    assert.match(refusal({ ...other, url: '/configs/web/prod/settings.json', params: { ...other.params, namespace: 'settings.json' } }), /^Unauthorized/);
    assert.match(refusal(signed('/configs/web/prod/application', { appId: 'api' })), /for appId 'api', the request for 'web'/);
    assert.match(refusal(signed('/configs/api/prod/application')), /^no access key: appId 'api'/);
    assert.match(refusal(signed('/configs/gone/prod/application')), /not in the secret store/);
    assert.match(refusal({ ...signed('/configs/web/prod/application'), headers: { authorization: 'Apollo web', timestamp: String(now) } }), /\{appId\}:\{signature\}/);
    for (const m of [refusal(signed('/configs/web/prod/application', { secret: 'other' })), refusal(signed('/configs/gone/prod/application'))]) assert.ok(!m.includes('k3y-0123456789abcdef'));
  });
});

describe("a service's access key", () => {
  const base = { repo: '/srv/t', files: [{ name: 'a.properties', template: 'a', destination: 'a' }] };

  it('is a secret name, normalized, and checked', () => {
    assert.deepEqual(parseService('web', { ...base, apollo: { accessKeySecret: '/apollo/web' } }).apollo, { accessKeySecret: 'apollo/web' });
    assert.equal(parseService('web', base).apollo, undefined);
    for (const [apollo, field] of [[{}, 'apollo.accessKeySecret'], [{ accessKeySecret: 'a b' }, 'apollo.accessKeySecret'], [{ accessKeySecret: 1 }, 'apollo.accessKeySecret'], [{ accessKeySecret: 'k', x: 1 }, 'apollo.x'], ['k', 'apollo']] as const) {
      assert.throws(
        () => parseService('web', { ...base, apollo }),
        (e: unknown) => e instanceof InvalidConfig && e.problems.some((p) => p.field === field),
        JSON.stringify(apollo),
      );
    }
  });

  it('needs `use` on its secret to be named', () => {
    assert.deepEqual(accessKeySecretChecks({ ...base, apollo: { accessKeySecret: '/apollo/web' } }), [{ capability: 'use', resource: { kind: 'secrets', name: 'apollo/web' } }]);
    assert.deepEqual(accessKeySecretChecks(base), []);
    assert.deepEqual(accessKeySecretChecks({ apollo: { accessKeySecret: '../x' } }), []);
  });
});

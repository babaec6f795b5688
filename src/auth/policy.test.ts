import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUILT_IN_POLICIES, capabilitiesOn, decide, matches, type Policy } from './policy.ts';

const p = (name: string) => BUILT_IN_POLICIES[name]!;

describe('policies', () => {
  it('matches names exactly, by prefix, or all', () => {
    assert.ok(matches('*', '/anything'));
    assert.ok(matches('/team-a/*', '/team-a/web'));
    assert.ok(!matches('/team-a/*', '/team-b/web'));
    assert.ok(!matches('/team-a/*', '/team-a'), 'the group itself is not under its prefix');
    assert.ok(matches('build', 'build'));
    assert.ok(!matches('build', 'build-2'));
  });

  it('denies by default, and says what was missing', () => {
    const d = decide([], 'read', { kind: 'apps', name: '/web' });
    assert.deepEqual(d, { allowed: false, reason: "no policy grants read on apps '/web'" });
    assert.equal(decide([p('viewer')], 'deploy', { kind: 'apps', name: '/web' }).allowed, false);
    assert.equal(decide([p('viewer')], 'read', { kind: 'tokens', name: 'x' }).allowed, false, 'a viewer does not see tokens');
    assert.equal(decide([p('viewer')], 'read-logs', { kind: 'ci', name: 'build' }).allowed, false);
  });

  it('gives each built-in role what its description says', () => {
    const apps = { kind: 'apps', name: '/web' } as const;
    assert.deepEqual(capabilitiesOn([p('viewer')], apps), ['read']);
    assert.deepEqual(capabilitiesOn([p('developer')], apps), ['read', 'deploy', 'restart', 'kill', 'read-logs', 'files']);
    assert.deepEqual(capabilitiesOn([p('deployer')], apps), ['read', 'deploy', 'restart', 'read-logs']);
    assert.equal(decide([p('deployer')], 'configure', { kind: 'ci', name: 'job' }).allowed, false, 'a deployer triggers but does not configure CI');
    assert.equal(decide([p('operator')], 'admin', { kind: 'cluster', name: 'maintenance' }).allowed, true);
    assert.equal(decide([p('operator')], 'deploy', apps).allowed, false);
    assert.equal(capabilitiesOn([p('admin')], { kind: 'tokens', name: 'x' }).length, 14, 'admin implies every capability');
    const secret = { kind: 'secrets', name: 'db/password' } as const;
    assert.deepEqual(capabilitiesOn([p('viewer')], secret), ['read'], 'a viewer lists secrets, and cannot use one');
    assert.deepEqual(capabilitiesOn([p('developer')], secret), ['read'], 'a developer uses no secret unless a policy names it');
    assert.deepEqual(capabilitiesOn([p('deployer')], secret), ['read', 'use']);
    assert.deepEqual(capabilitiesOn([p('framework')], secret), [], 'a framework token uses no secret unless a policy says so');
    assert.deepEqual(capabilitiesOn([p('agent')], { kind: 'agents', name: 'host-1' }), ['register']);
    assert.deepEqual(capabilitiesOn([p('agent')], apps), []);
  });

  it('sees the object being changed: task users and resource limits', () => {
    const team: Policy = {
      name: 'team-a',
      description: 'team a deploys its own apps as its own user, within limits',
      rules: [{ kind: 'apps', match: '/team-a/*', capabilities: ['read', 'deploy'], taskUsers: ['team-a'], maxCpus: 2, maxInstances: 10 }],
    };
    const web = { kind: 'apps', name: '/team-a/web' } as const;
    assert.equal(decide([team], 'deploy', web, { taskUser: 'team-a', cpus: 1, instances: 3 }).allowed, true);
    assert.deepEqual(decide([team], 'deploy', web, { taskUser: 'root' }), { allowed: false, reason: "deploy on apps '/team-a/web': may not run tasks as user 'root' (allowed: team-a)" });
    assert.match(JSON.stringify(decide([team], 'deploy', web, { cpus: 4 })), /more than 2 cpus/);
    assert.match(JSON.stringify(decide([team], 'deploy', web, { instances: 11 })), /more than 10 instances/);
    assert.equal(decide([team], 'deploy', { kind: 'apps', name: '/team-b/web' }).allowed, false);
    // Without taskUsers, any user but root; admin may run as root.
    assert.equal(decide([p('developer')], 'deploy', web, { taskUser: 'nobody' }).allowed, true);
    assert.equal(decide([p('developer')], 'deploy', web, { taskUser: 'root' }).allowed, false);
    assert.equal(decide([p('admin')], 'deploy', web, { taskUser: 'root' }).allowed, true);
  });
});

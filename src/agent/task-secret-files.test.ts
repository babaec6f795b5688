import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { TaskInfo } from '../protocol/mesos.ts';
import { deliverSecrets, removeSecretFiles, SecretDeliveryFailed } from './task-secret-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'secret-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ref = (name: string) => ({ type: 'REFERENCE' as const, reference: { name } });
function info(volumes: { path: string; name: string }[], docker = false): TaskInfo {
  return {
    name: 't',
    task_id: { value: 't' },
    agent_id: { value: 'a' },
    resources: [],
    command: { value: 'true', environment: { variables: [{ name: 'PW', type: 'SECRET', secret: ref('pw') }] } },
    container: docker
      ? { type: 'DOCKER', docker: { image: 'i' }, volumes: [{ container_path: '/data', host_path: '/srv' }, ...volumes.map((v) => ({ container_path: v.path, source: { type: 'SECRET', secret: ref(v.name) } }))] }
      : { type: 'MESOS', volumes: volumes.map((v) => ({ container_path: v.path, source: { type: 'SECRET', secret: ref(v.name) } })) },
  };
}

describe('deliverSecrets', () => {
  it('gives the variables, writes the files 0600, mounts absolute ones read-only from outside the sandbox, and removes them', () => {
    const sandbox = join(dir, 'ok');
    const secretsDir = join(dir, 'ok-meta', 'secrets');
    mkdirSync(sandbox, { recursive: true });
    const task = info([{ path: 'conf/key', name: 'k' }, { path: '/run/secrets/k', name: 'k' }], true);
    const d = deliverSecrets({ info: task, secrets: { pw: 'p1', k: 'k1' }, sandbox, secretsDir, user: undefined });
    assert.deepEqual(d.env, { PW: 'p1' });
    assert.equal(readFileSync(join(sandbox, 'conf/key'), 'utf8'), 'k1');
    assert.equal(statSync(join(sandbox, 'conf/key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(sandbox, 'conf')).mode & 0o777, 0o700);
    assert.deepEqual(d.container?.volumes, [{ container_path: '/data', host_path: '/srv' }, { host_path: join(secretsDir, 'volume-2'), container_path: '/run/secrets/k', mode: 'RO' }]);
    assert.equal(readFileSync(join(secretsDir, 'volume-2'), 'utf8'), 'k1');
    removeSecretFiles(task, sandbox, secretsDir);
    assert.ok(!existsSync(join(sandbox, 'conf/key')) && !existsSync(join(secretsDir, 'volume-2')));
  });

  it('follows no link on the way (an earlier run of the task may have left one to /etc)', () => {
    const sandbox = join(dir, 'links');
    mkdirSync(sandbox, { recursive: true });
    const victim = join(dir, 'victim');
    mkdirSync(victim);
    writeFileSync(join(victim, 'key'), 'untouched');
    symlinkSync(victim, join(sandbox, 'conf'));
    assert.throws(() => deliverSecrets({ info: info([{ path: 'conf/key', name: 'k' }]), secrets: { pw: 'p', k: 'evil' }, sandbox, secretsDir: join(dir, 'm1'), user: undefined }), /conf is not a directory \(a link is not followed\)/);
    assert.equal(readFileSync(join(victim, 'key'), 'utf8'), 'untouched');
    // A link in the file's own place is replaced, not written through.
    rmSync(join(sandbox, 'conf'));
    symlinkSync(join(victim, 'key'), join(sandbox, 'key'));
    deliverSecrets({ info: info([{ path: 'key', name: 'k' }]), secrets: { pw: 'p', k: 'new' }, sandbox, secretsDir: join(dir, 'm2'), user: undefined });
    assert.equal(readFileSync(join(victim, 'key'), 'utf8'), 'untouched');
    assert.equal(readFileSync(join(sandbox, 'key'), 'utf8'), 'new');
  });

  it('fails when the master sent no value for a secret', () => {
    assert.throws(() => deliverSecrets({ info: info([]), secrets: {}, sandbox: dir, secretsDir: join(dir, 'm3'), user: undefined }), SecretDeliveryFailed);
  });
});

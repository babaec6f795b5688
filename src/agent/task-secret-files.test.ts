import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { TaskInfo } from '../protocol/mesos.ts';
import { deliverSecrets, removeSecretFiles, SecretDeliveryFailed } from './task-secret-files.ts';
import { TaskUsers } from './task-user.ts';

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
  it('gives the variables, writes the files 0600, mounts absolute ones read-only from outside the sandbox, and removes them', async () => {
    const sandbox = join(dir, 'ok');
    const secretsDir = join(dir, 'ok-meta', 'secrets');
    mkdirSync(sandbox, { recursive: true });
    const task = info([{ path: 'conf/key', name: 'k' }, { path: '/run/secrets/k', name: 'k' }], true);
    const d = await deliverSecrets({ info: task, secrets: { pw: 'p1', k: 'k1' }, sandbox, secretsDir, user: undefined });
    assert.deepEqual(d.env, { PW: 'p1' });
    assert.equal(readFileSync(join(sandbox, 'conf/key'), 'utf8'), 'k1');
    assert.equal(statSync(join(sandbox, 'conf/key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(sandbox, 'conf')).mode & 0o777, 0o700);
    assert.deepEqual(d.container?.volumes, [{ container_path: '/data', host_path: '/srv' }, { host_path: join(secretsDir, 'volume-2'), container_path: '/run/secrets/k', mode: 'RO' }]);
    assert.equal(readFileSync(join(secretsDir, 'volume-2'), 'utf8'), 'k1');
    await removeSecretFiles(task, sandbox, secretsDir, undefined, () => undefined);
    assert.ok(!existsSync(join(sandbox, 'conf/key')) && !existsSync(join(secretsDir, 'volume-2')));
  });

  it('follows no link on the way (an earlier run of the task may have left one to /etc)', async () => {
    const sandbox = join(dir, 'links');
    mkdirSync(sandbox, { recursive: true });
    const victim = join(dir, 'victim');
    mkdirSync(victim);
    writeFileSync(join(victim, 'key'), 'untouched');
    symlinkSync(victim, join(sandbox, 'conf'));
    await assert.rejects(deliverSecrets({ info: info([{ path: 'conf/key', name: 'k' }]), secrets: { pw: 'p', k: 'evil' }, sandbox, secretsDir: join(dir, 'm1'), user: undefined }), /conf is not a directory \(a link is not followed\)/);
    assert.equal(readFileSync(join(victim, 'key'), 'utf8'), 'untouched');
    // A link in the file's own place is replaced, not written through.
    rmSync(join(sandbox, 'conf'));
    symlinkSync(join(victim, 'key'), join(sandbox, 'key'));
    await deliverSecrets({ info: info([{ path: 'key', name: 'k' }]), secrets: { pw: 'p', k: 'new' }, sandbox, secretsDir: join(dir, 'm2'), user: undefined });
    assert.equal(readFileSync(join(victim, 'key'), 'utf8'), 'untouched');
    assert.equal(readFileSync(join(sandbox, 'key'), 'utf8'), 'new');
  });

  it('writes and removes a file in the sandbox of a task of another user as that user: a link leads only where it may write', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root (the agent switches users only as root)');
    const nobody = (await new TaskUsers().resolve('nobody'))!;
    chmodSync(dir, 0o755);
    const sandbox = join(dir, 'as-user');
    mkdirSync(sandbox);
    chownSync(sandbox, nobody.uid, nobody.gid);
    const task = info([{ path: 'conf/key', name: 'k' }]);
    await deliverSecrets({ info: task, secrets: { pw: 'p', k: 'k1' }, sandbox, secretsDir: join(dir, 'm4'), user: nobody });
    const st = statSync(join(sandbox, 'conf/key'));
    assert.deepEqual([st.uid, st.mode & 0o777, readFileSync(join(sandbox, 'conf/key'), 'utf8')], [nobody.uid, 0o600, 'k1']);
    assert.equal(statSync(join(sandbox, 'conf')).uid, nobody.uid);
    // The task's user swaps the directory for a link to a root-owned one: the write fails there.
    const victim = join(dir, 'root-owned');
    mkdirSync(victim, { mode: 0o755 });
    rmSync(join(sandbox, 'conf'), { recursive: true });
    symlinkSync(victim, join(sandbox, 'conf'));
    await assert.rejects(deliverSecrets({ info: task, secrets: { pw: 'p', k: 'evil' }, sandbox, secretsDir: join(dir, 'm5'), user: nobody }), /as user nobody: .*(Permission denied|cannot)/i);
    assert.ok(!existsSync(join(victim, 'key')), 'nothing written where the link points');
    writeFileSync(join(victim, 'key'), 'root file');
    const logged: string[] = [];
    await removeSecretFiles(task, sandbox, join(dir, 'm5'), nobody, (line) => logged.push(line));
    assert.equal(readFileSync(join(victim, 'key'), 'utf8'), 'root file', 'root\'s file is not removed through the link');
    assert.match(logged.join('\n'), /not removed: as user nobody/);
  });

  it('fails when the master sent no value for a secret', async () => {
    await assert.rejects(deliverSecrets({ info: info([]), secrets: {}, sandbox: dir, secretsDir: join(dir, 'm3'), user: undefined }), SecretDeliveryFailed);
  });
});

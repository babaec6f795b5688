import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Resources } from '../../core/resources.ts';
import { parseAppDefinition } from './app-definition.ts';
import { buildTaskInfo, type TaskLaunch } from './task-builder.ts';

const launch: TaskLaunch = { taskId: 't1', agentId: 'a1', host: 'h', version: 'v', resources: Resources.parse('cpus:0.1;mem:32'), allocationRole: '*', ports: [] };

describe('buildTaskInfo with secrets', () => {
  it('references each secret by its store name, in the environment and as volumes, never by value', () => {
    const app = parseAppDefinition({
      id: '/a',
      cmd: 'run',
      secrets: { db: { source: '/team-a/db' }, key: { source: 'team-a/key' } },
      env: { DB: { secret: 'db' }, PLAIN: 'p' },
      container: { type: 'DOCKER', docker: { image: 'busybox' }, volumes: [{ containerPath: '/run/key', secret: 'key' }] },
    });
    const info = buildTaskInfo(app, launch);
    const vars = info.command?.environment?.variables ?? [];
    assert.deepEqual(vars.find((v) => v.name === 'DB'), { name: 'DB', type: 'SECRET', secret: { type: 'REFERENCE', reference: { name: '/team-a/db' } } });
    assert.equal(vars.find((v) => v.name === 'PLAIN')?.value, 'p');
    assert.deepEqual(info.container?.volumes, [{ container_path: '/run/key', source: { type: 'SECRET', secret: { type: 'REFERENCE', reference: { name: 'team-a/key' } } } }]);
  });

  it('gives a process app with a secret file a MESOS container holding only that volume', () => {
    const app = parseAppDefinition({ id: '/a', cmd: 'run', secrets: { s: { source: 's' } }, container: { type: 'MESOS', volumes: [{ containerPath: 'conf/s', secret: 's' }] } });
    const info = buildTaskInfo(app, launch);
    assert.deepEqual(info.container, { type: 'MESOS', volumes: [{ container_path: 'conf/s', source: { type: 'SECRET', secret: { type: 'REFERENCE', reference: { name: 's' } } } }] });
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { executorContainer } from './executor-task.ts';
import { parseExecutorSpec } from './job-definition.ts';

describe('executorContainer', () => {
  const program = { command: { shell: false, arguments: ['node', '/opt/slipway/bin/slipway.js', 'ci-executor'] }, mounts: [{ containerPath: '/opt/slipway', hostPath: '/opt/slipway', mode: 'RO' as const }] };

  it('is none for a process executor', () => {
    assert.equal(executorContainer(parseExecutorSpec('p', {}), program), undefined);
  });

  it('runs the image with host networking, the program and the engine\'s socket mounted, then the spec\'s volumes', () => {
    const spec = parseExecutorSpec('d', { containerizer: 'docker', image: 'node:20', volumes: [{ containerPath: '/src', hostPath: '/srv/src', mode: 'RO' }] });
    assert.deepEqual(executorContainer(spec, program), {
      type: 'DOCKER',
      docker: { image: 'node:20', network: 'HOST' },
      volumes: [
        { container_path: '/opt/slipway', host_path: '/opt/slipway', mode: 'RO' },
        { container_path: '/var/run/docker.sock', host_path: '/var/run/docker.sock', mode: 'RW' },
        { container_path: '/src', host_path: '/srv/src', mode: 'RO' },
      ],
    });
  });

  it('lets a volume of the spec replace a default mount at the same path (one mount per path: the engine refuses two)', () => {
    const spec = parseExecutorSpec('d', { containerizer: 'docker', image: 'node:20', volumes: [{ containerPath: '/var/run/docker.sock', hostPath: '/run/podman/podman.sock' }] });
    const volumes = executorContainer(spec, program)?.volumes ?? [];
    assert.deepEqual(volumes.filter((v) => v.container_path === '/var/run/docker.sock'), [{ container_path: '/var/run/docker.sock', host_path: '/run/podman/podman.sock', mode: 'RW' }]);
    assert.equal(volumes.length, 2);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { containerIdFromMountinfo, hostPathThroughMounts } from './host-paths.ts';

describe('hostPathThroughMounts', () => {
  const hostPath = hostPathThroughMounts([
    { source: '/var/lib/slipway/agent/sandboxes/t1', destination: '/mnt/mesos/sandbox' },
    { source: '/srv/cache', destination: '/mnt/mesos/sandbox/cache/' },
    { source: '/run/docker.sock', destination: '/var/run/docker.sock' },
  ]);

  it('maps a path under a mount to the same path under its source', () => {
    assert.equal(hostPath('/mnt/mesos/sandbox/workspace/job-1'), '/var/lib/slipway/agent/sandboxes/t1/workspace/job-1');
    assert.equal(hostPath('/mnt/mesos/sandbox'), '/var/lib/slipway/agent/sandboxes/t1');
    assert.equal(hostPath('/mnt/mesos/sandbox/'), '/var/lib/slipway/agent/sandboxes/t1');
  });

  it('lets the deepest mount win, and maps a mounted file', () => {
    assert.equal(hostPath('/mnt/mesos/sandbox/cache/x'), '/srv/cache/x');
    assert.equal(hostPath('/var/run/docker.sock'), '/run/docker.sock');
  });

  it('knows no host path for what is in the container\'s own layers, nor for a name that only starts like a mount', () => {
    assert.equal(hostPath('/tmp/work'), undefined);
    assert.equal(hostPath('/mnt/mesos/sandboxes/x'), undefined);
    assert.equal(hostPath('/mnt/mesos/sandbox/../../etc'), undefined);
  });
});

describe('containerIdFromMountinfo', () => {
  const id = '33ba712f7b03eed25e2b7937a53c1639bd472103c14fca2aa76623ebc668101d';

  it('reads the container id from the files the engine mounts into every container', () => {
    const text = [
      '74 52 0:45 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A',
      `91 74 254:0 /var/lib/docker/containers/${id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw`,
      `92 74 254:0 /var/lib/docker/containers/${id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw`,
    ].join('\n');
    assert.equal(containerIdFromMountinfo(text), id);
  });

  it('finds none on a host, nor from a containers directory mounted elsewhere', () => {
    assert.equal(containerIdFromMountinfo('22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n'), undefined);
    assert.equal(containerIdFromMountinfo(`30 22 254:0 /var/lib/docker/containers/${id}/hostname /srv/hostname rw - ext4 /dev/vda rw\n`), undefined);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAppDefinition } from './app-definition.ts';
import { javaDouble, marathonEnvironment } from './marathon-environment.ts';

const LAUNCH = { version: '2024-05-06T07:08:09.010Z', ports: [31000, 31001], host: 'agent-1.local', taskId: 'shop_web.7d1a' };

describe('marathonEnvironment', () => {
  it('gives a Docker task Marathon\'s variables: app, version, image, resources, labels, ports and host', () => {
    const app = parseAppDefinition({
      id: '/shop/web',
      container: { type: 'DOCKER', docker: { image: '127.0.0.1:5000/web:1.2' } },
      cmd: 'serve',
      cpus: 0.1,
      mem: 64,
      portDefinitions: [{ port: 0, name: 'http' }, { port: 9000, name: 'admin-api' }],
      labels: { team: 'shop', 'HAPROXY_0.vhost': 'web.example.com' },
    });
    assert.deepEqual(marathonEnvironment(app, LAUNCH), {
      MESOS_TASK_ID: 'shop_web.7d1a',
      MARATHON_APP_ID: '/shop/web',
      MARATHON_APP_VERSION: '2024-05-06T07:08:09.010Z',
      MARATHON_APP_DOCKER_IMAGE: '127.0.0.1:5000/web:1.2',
      MARATHON_APP_RESOURCE_CPUS: '0.1',
      MARATHON_APP_RESOURCE_MEM: '64.0',
      MARATHON_APP_RESOURCE_DISK: '0.0',
      MARATHON_APP_RESOURCE_GPUS: '0',
      MARATHON_APP_LABELS: 'TEAM HAPROXY_0_VHOST',
      MARATHON_APP_LABEL_TEAM: 'shop',
      MARATHON_APP_LABEL_HAPROXY_0_VHOST: 'web.example.com',
      PORT0: '31000',
      PORT1: '31001',
      // A declared 0 is named after the host port, a declared port after itself.
      PORT_31000: '31000',
      PORT_9000: '31001',
      PORT_HTTP: '31000',
      'PORT_ADMIN-API': '31001',
      PORT: '31000',
      PORTS: '31000,31001',
      HOST: 'agent-1.local',
    });
  });

  it('gives the typical app PORT0 and PORT_DEFAULT from its default port, and no image variable', () => {
    const app = parseAppDefinition({ id: '/http', cmd: 'python3 -m http.server $PORT0', cpus: 0.1, mem: 64 });
    const env = marathonEnvironment(app, { ...LAUNCH, ports: [31005] });
    assert.equal(env['PORT0'], '31005');
    assert.equal(env['PORT'], '31005');
    assert.equal(env['PORTS'], '31005');
    assert.equal(env['PORT_DEFAULT'], '31005');
    assert.equal(env['MARATHON_APP_LABELS'], '');
    assert.equal('MARATHON_APP_DOCKER_IMAGE' in env, false);
  });

  it('sets no port variable at all for a task without ports', () => {
    const app = parseAppDefinition({ id: '/worker', cmd: 'work', portDefinitions: [] });
    const env = marathonEnvironment(app, { ...LAUNCH, ports: [] });
    assert.deepEqual(Object.keys(env).filter((k) => k.startsWith('PORT')), []);
    assert.equal(env['HOST'], 'agent-1.local');
  });

  it('lets the app\'s own env override Marathon\'s variables, as Marathon applies it last', () => {
    const app = parseAppDefinition({ id: '/a', cmd: 'x', env: { PORT0: '8080', HOST: '0.0.0.0', MARATHON_APP_ID: 'mine', MODE: 'prod' } });
    const env = marathonEnvironment(app, LAUNCH);
    assert.equal(env['PORT0'], '8080');
    assert.equal(env['HOST'], '0.0.0.0');
    assert.equal(env['MARATHON_APP_ID'], 'mine');
    assert.equal(env['MODE'], 'prod');
    assert.equal(env['PORT'], '31000', 'the other port variables stay');
  });

  it('leaves out labels too long for an environment variable, from MARATHON_APP_LABELS too', () => {
    const app = parseAppDefinition({
      id: '/a',
      cmd: 'x',
      labels: { ['k'.repeat(492)]: 'kept', ['l'.repeat(493)]: 'key too long', ok: 'v'.repeat(511), long: 'v'.repeat(512) },
    });
    const env = marathonEnvironment(app, LAUNCH);
    assert.equal(env['MARATHON_APP_LABELS'], `${'K'.repeat(492)} OK`);
    assert.equal(env[`MARATHON_APP_LABEL_${'K'.repeat(492)}`], 'kept');
    assert.equal(env['MARATHON_APP_LABEL_OK'], 'v'.repeat(511));
    assert.equal('MARATHON_APP_LABEL_LONG' in env, false);
  });

  it('turns each run of characters other than letters, digits and _ into one _', () => {
    const app = parseAppDefinition({ id: '/a', cmd: 'x', labels: { 'a--b.c_d': '1', 'x y': '2' } });
    const env = marathonEnvironment(app, LAUNCH);
    assert.equal(env['MARATHON_APP_LABELS'], 'A_B_C_D X_Y');
    assert.equal(env['MARATHON_APP_LABEL_A_B_C_D'], '1');
    assert.equal(env['MARATHON_APP_LABEL_X_Y'], '2');
  });
});

describe('javaDouble', () => {
  it('prints numbers as Java prints a double', () => {
    assert.deepEqual([1, 0, 0.1, 128, 1.5, 0.001, 0.0001, 12345678, 1e21].map(javaDouble), ['1.0', '0.0', '0.1', '128.0', '1.5', '0.001', '1.0E-4', '1.2345678E7', '1.0E21']);
  });
});

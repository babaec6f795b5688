import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { APP_DEFAULTS, appToJSON, parseAppDefinition, type AppDefinition, type ParseAppOptions } from './app-definition.ts';
import { MarathonValidationError, type MarathonErrorDetail } from './marathon-error.ts';
import { UNSUPPORTED_FIELDS } from './unsupported-fields.ts';
import { CMD_ARGS_OR_CONTAINER } from './validate-app-schema.ts';

type Json = Record<string, unknown>;

function example(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`./testdata/${name}`, import.meta.url), 'utf8')) as unknown;
}

/** The apps of a Marathon group, each with the id of the group it sits in. */
function appsOfGroup(group: Json): { app: Json; groupId: string }[] {
  const own = ((group['apps'] as Json[] | undefined) ?? []).map((app) => ({ app, groupId: group['id'] as string }));
  return [...own, ...((group['groups'] as Json[] | undefined) ?? []).flatMap(appsOfGroup)];
}

/** The 422 details of a refused definition; fails the test when the definition is accepted. */
function refusal(json: unknown, options?: ParseAppOptions): MarathonErrorDetail[] {
  try {
    parseAppDefinition(json, options);
  } catch (e) {
    assert.ok(e instanceof MarathonValidationError, `expected a MarathonValidationError, got ${String(e)}`);
    return e.details;
  }
  assert.fail(`expected ${JSON.stringify(json)} to be refused`);
}

function errorsAt(details: MarathonErrorDetail[], path: string): string[] {
  return details.find((d) => d.path === path)?.errors ?? [];
}

const UNSUPPORTED = 'not supported by Slipway: ';

/** parse → appToJSON → parse gives the same app, and appToJSON gives JSON (nothing undefined, no class instances). */
function assertRoundTrip(app: AppDefinition, options?: ParseAppOptions): void {
  const json = JSON.parse(JSON.stringify(appToJSON(app))) as unknown;
  assert.deepEqual(json, appToJSON(app), 'appToJSON gives plain JSON');
  assert.deepEqual(parseAppDefinition(json, options), app);
}

const TYPICAL_HTTP_APP = {
  id: '/http',
  cmd: 'python3 -m http.server $PORT0',
  cpus: 0.1,
  mem: 64,
  instances: 3,
  healthChecks: [{ protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 5, intervalSeconds: 2, maxConsecutiveFailures: 2 }],
};

const TYPICAL_DOCKER_APP = { id: '/web', container: { type: 'DOCKER', docker: { image: 'busybox' } }, cmd: 'httpd -f -p $PORT0', cpus: 0.1, mem: 32 };

/** An app that uses most supported fields, deprecated forms included. */
const RICH_APP = {
  id: 'shop/web/',
  args: ['httpd', '-f', '-p', '8080'],
  user: 'nobody',
  instances: 4,
  cpus: 0.5,
  mem: 256,
  disk: 10,
  container: {
    type: 'DOCKER',
    docker: { image: '127.0.0.1:5000/web:1.2', network: 'HOST', forcePullImage: true, privileged: false, parameters: [{ key: 'label', value: 'team=shop' }] },
    volumes: [{ containerPath: '/data', hostPath: 'data', mode: 'RW' }, { containerPath: '/etc/shop', hostPath: '/etc/shop' }],
  },
  portDefinitions: [{ port: 8080, name: 'http' }, { port: 0, protocol: 'udp', labels: { vip: '10.0.0.1:53' } }],
  requirePorts: true,
  env: { MODE: 'prod' },
  labels: { team: 'shop', 'HAPROXY_0_VHOST': 'web.example.com' },
  constraints: [['hostname', 'UNIQUE'], ['rack', 'GROUP_BY', '3'], ['zone', 'LIKE', 'eu-.*'], ['hostname', 'MAX_PER', '2'], ['os', 'IS', 'linux'], ['dc', 'CLUSTER', 'fra']],
  acceptedResourceRoles: ['*', 'web'],
  healthChecks: [{ protocol: 'TCP', portIndex: 1 }],
  readinessChecks: [{ portName: 'http', path: '/ready' }],
  dependencies: ['../db', '/shared/cache'],
  uris: ['https://example.com/assets.tar.gz', 'file:///etc/hosts'],
  upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 },
  backoffSeconds: 2,
  backoffFactor: 2,
  maxLaunchDelaySeconds: 60,
  killSelection: 'OLDEST_FIRST',
  unreachableStrategy: { inactiveAfterSeconds: 30, expungeAfterSeconds: 600 },
  taskKillGracePeriodSeconds: 10,
};

describe('Marathon examples', () => {
  it('accepts both apps of apps_create.json as they are', () => {
    for (const app of example('apps_create.json') as Json[]) assertRoundTrip(parseAppDefinition(app));
  });

  it('accepts the apps of group.json that use host networking, each resolved in its group', () => {
    const accepted = appsOfGroup(example('group.json') as Json)
      .filter(({ app }) => app['id'] !== '/tools/docker/registry')
      .map(({ app, groupId }) => {
        const parsed = parseAppDefinition(app, { idPrefix: groupId });
        assertRoundTrip(parsed, { idPrefix: groupId });
        return parsed;
      });
    assert.deepEqual(accepted.map((a) => a.id), ['/tools/oauth-server', '/tools/datadog-agent']);
    const datadog = accepted[1];
    assert.ok(datadog?.container?.type === 'DOCKER');
    assert.equal(datadog.container.docker.privileged, true);
    assert.deepEqual(datadog.container.volumes[1], { containerPath: '/host/proc/mounts', hostPath: '/proc/mounts', mode: 'RO' });
    assert.deepEqual(datadog.portDefinitions, [{ port: 10018, protocol: 'tcp', labels: {} }], 'the deprecated ports become portDefinitions');
    assert.equal(datadog.maxLaunchDelaySeconds, 3600, 'an explicit value wins over the default');
  });

  it('refuses the BRIDGE app of group.json only for its bridge networking, naming the fields', () => {
    const registry = appsOfGroup(example('group.json') as Json).find(({ app }) => app['id'] === '/tools/docker/registry');
    assert.ok(registry !== undefined);
    const details = refusal(registry.app, { idPrefix: registry.groupId });
    assert.deepEqual(details.map((d) => d.path), ['/container/docker/network', '/container/docker/portMappings']);
    for (const d of details) assert.ok(d.errors.every((e) => e.startsWith(UNSUPPORTED)), JSON.stringify(d));
    assert.match(errorsAt(details, '/container/docker/network')[0] ?? '', /without a bridge.*use HOST/);
  });

  it('refuses app-check-http-example.json only for its Mesos-native check, naming /check', () => {
    const details = refusal(example('app-check-http-example.json'));
    assert.deepEqual(details, [{ path: '/check', errors: [`${UNSUPPORTED}Mesos-native checks are not implemented; use healthChecks (or readinessChecks)`] }]);
  });

  it('accepts app-check-http-example.json with a health check in place of its check, under an absolute id', () => {
    const { check: _check, ...rest } = example('app-check-http-example.json') as Json;
    const app = parseAppDefinition({ ...rest, healthChecks: [{ protocol: 'HTTP', portIndex: 0, path: '/', intervalSeconds: 60, timeoutSeconds: 20 }] });
    assert.equal(app.id, '/http-index-test', 'a relative id hangs under the root group');
    assert.deepEqual(app.portDefinitions, [{ port: 0, protocol: 'tcp', name: 'http', labels: {} }]);
    assertRoundTrip(app);
  });

  it('refuses app.json for its unsupported fields, each named, and for cmd with args, which Marathon refuses too', () => {
    const details = refusal(example('app.json'));
    const unsupported = details.filter((d) => d.errors.every((e) => e.startsWith(UNSUPPORTED))).map((d) => d.path);
    assert.deepEqual(unsupported.sort(), [
      '/container/docker/network',
      '/container/docker/parameters(0)/key',
      '/container/docker/portMappings',
      '/ipAddress',
      '/tty',
    ]);
    // The example gives both cmd and args; Marathon's own validator (AppValidation.scala,
    // containsCmdArgsOrContainer) refuses that, and so does the schema ("not": cmd and args).
    const others = details.filter((d) => !unsupported.includes(d.path));
    assert.deepEqual(others, [{ path: '/', errors: [CMD_ARGS_OR_CONTAINER] }]);
  });

  it('accepts app.json once the named fields are gone (host networking instead of BRIDGE) and args dropped', () => {
    const { ipAddress: _i, tty: _t, args: _a, env, container, ...rest } = example('app.json') as Json & { env: Json; container: Json & { docker: Json } };
    const { network: _n, portMappings: _m, parameters: _params, ...docker } = container.docker;
    // Its env PASSWORD names a secret's source (/db/password) where Marathon wants a declared id.
    assert.deepEqual(
      refusal({ ...rest, env, container: { ...container, docker } }).map((d) => d.path),
      ['/env/PASSWORD/secret'],
    );
    const app = parseAppDefinition({ ...rest, env: { ...env, PASSWORD: { secret: 'secret1' } }, container: { ...container, docker } });
    assert.deepEqual(app.secrets, { secret1: '/db/password', secret3: '/foo2' });
    assert.deepEqual(app.secretEnv, { PASSWORD: 'secret1' });
    assert.equal(app.cmd, 'sleep 1000');
    assert.deepEqual(app.constraints, [{ fieldName: 'hostname', operator: 'LIKE', value: 'srv2.*' }]);
    assert.deepEqual(app.fetch[1], { uri: 'https://foo.com/archive.zip', executable: false, extract: true, cache: true, destPath: 'newname.zip' });
    assert.equal(app.readinessChecks[0]?.portName, 'http');
    assertRoundTrip(app);
  });
});

describe('parseAppDefinition', () => {
  it('parses the typical Marathon HTTP app with its health check', () => {
    const app = parseAppDefinition(TYPICAL_HTTP_APP);
    assert.equal(app.instances, 3);
    assert.deepEqual(app.portDefinitions, [{ port: 0, protocol: 'tcp', name: 'default', labels: {} }]);
    assert.deepEqual(app.healthChecks, [
      { protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 5, intervalSeconds: 2, timeoutSeconds: 20, maxConsecutiveFailures: 2, delaySeconds: 15, ignoreHttp1xx: false, ipProtocol: 'IPv4' },
    ]);
    assertRoundTrip(app);
  });

  it('parses a Docker app from a local image, with host networking by default', () => {
    const app = parseAppDefinition(TYPICAL_DOCKER_APP);
    assert.deepEqual(app.container, { type: 'DOCKER', docker: { image: 'busybox', forcePullImage: false, privileged: false, parameters: [] }, volumes: [], secretVolumes: [] });
    assert.deepEqual(app.networks, [{ mode: 'host' }]);
    assert.equal(app.cmd, 'httpd -f -p $PORT0');
    assertRoundTrip(app);
  });

  it('applies Marathon\'s defaults to a minimal app', () => {
    assert.deepEqual(parseAppDefinition({ id: '/a', cmd: 'sleep 100' }), {
      id: '/a',
      cmd: 'sleep 100',
      instances: 1,
      cpus: 1,
      mem: 128,
      disk: 0,
      gpus: 0,
      executor: '',
      networks: [{ mode: 'host' }],
      portDefinitions: [{ port: 0, protocol: 'tcp', name: 'default', labels: {} }],
      requirePorts: false,
      env: {},
      secrets: {},
      secretEnv: {},
      labels: {},
      constraints: [],
      healthChecks: [],
      readinessChecks: [],
      dependencies: [],
      fetch: [],
      upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
      backoffSeconds: 1,
      backoffFactor: 1.15,
      maxLaunchDelaySeconds: 300,
      killSelection: 'YOUNGEST_FIRST',
      unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 },
    } satisfies AppDefinition);
  });

  it('fills in health-check and readiness-check defaults', () => {
    const app = parseAppDefinition({ id: '/a', cmd: 'x', portDefinitions: [{ name: 'http-api' }], healthChecks: [{}], readinessChecks: [{}] });
    assert.deepEqual(app.healthChecks[0], { protocol: 'HTTP', path: '/', portIndex: 0, ...omit(APP_DEFAULTS.healthCheck, 'path') });
    assert.deepEqual(app.readinessChecks[0], { ...APP_DEFAULTS.readinessCheck, httpStatusCodesForReady: [200] });
  });

  it('normalizes a rich definition (deprecated forms included) and survives a round trip', () => {
    const app = parseAppDefinition(RICH_APP);
    assert.equal(app.id, '/shop/web');
    assert.deepEqual(app.dependencies, ['/db', '/shared/cache'], 'dependencies resolve against the root group');
    assert.deepEqual(app.portDefinitions, [{ port: 8080, protocol: 'tcp', name: 'http', labels: {} }, { port: 0, protocol: 'udp', labels: { vip: '10.0.0.1:53' } }]);
    assert.deepEqual(app.fetch, [
      { uri: 'https://example.com/assets.tar.gz', executable: false, extract: true, cache: false },
      { uri: 'file:///etc/hosts', executable: false, extract: false, cache: false },
    ]);
    assert.deepEqual(app.constraints, [
      { fieldName: 'hostname', operator: 'UNIQUE' },
      { fieldName: 'rack', operator: 'GROUP_BY', value: '3' },
      { fieldName: 'zone', operator: 'LIKE', value: 'eu-.*' },
      { fieldName: 'hostname', operator: 'MAX_PER', value: '2' },
      { fieldName: 'os', operator: 'IS', value: 'linux' },
      { fieldName: 'dc', operator: 'CLUSTER', value: 'fra' },
    ]);
    assert.deepEqual(app.healthChecks.map((h) => [h.protocol, h.portIndex, h.path, h.command]), [['TCP', 1, undefined, undefined]]);
    assert.deepEqual(app.networks, [{ mode: 'host' }], 'docker.network HOST becomes a host network');
    assert.ok(app.container?.type === 'DOCKER');
    assert.deepEqual(app.container.volumes[1], { containerPath: '/etc/shop', hostPath: '/etc/shop', mode: 'RW' });
    assert.deepEqual(app.unreachableStrategy, { inactiveAfterSeconds: 30, expungeAfterSeconds: 600 });
    assertRoundTrip(app);
  });

  it('normalizes each kind of health check, and refuses a second one naming it', () => {
    const check = (h: Json) => parseAppDefinition({ id: '/a', cmd: 'x', healthChecks: [h] }).healthChecks[0];
    assert.deepEqual([check({ protocol: 'MESOS_HTTP', path: '/health' })].map((h) => [h?.protocol, h?.portIndex, h?.path, h?.command]), [['MESOS_HTTP', 0, '/health', undefined]]);
    assert.deepEqual([check({ command: { value: 'test -f /tmp/ok' } })].map((h) => [h?.protocol, h?.portIndex, h?.path, h?.command]), [['COMMAND', undefined, undefined, { value: 'test -f /tmp/ok' }]]);
    const details = refusal({ id: '/a', cmd: 'x', healthChecks: [{ protocol: 'TCP' }, { protocol: 'HTTP' }] });
    assert.deepEqual(details.map((d) => d.path), ['/healthChecks(1)']);
    assert.match(details[0]?.errors[0] ?? '', /one health check per app/);
  });

  it('accepts role "*" as Marathon 1.9+ exports it, and refuses any other role naming it', () => {
    assert.deepEqual(parseAppDefinition({ id: '/a', cmd: 'x', role: '*' }), parseAppDefinition({ id: '/a', cmd: 'x' }));
    assert.deepEqual(refusal({ id: '/a', cmd: 'x', role: 'web' }).map((d) => d.path), ['/role']);
  });

  it('keeps an unreachable strategy of "disabled"', () => {
    const app = parseAppDefinition({ id: '/a', cmd: 'x', unreachableStrategy: 'disabled' });
    assert.equal(app.unreachableStrategy, 'disabled');
    assertRoundTrip(app);
  });

  it('puts version and versionInfo in the JSON when given, and ignores them when parsing', () => {
    const app = parseAppDefinition(TYPICAL_HTTP_APP);
    const json = appToJSON(app, { version: '2024-01-02T03:04:05.678Z', lastScalingAt: '2024-01-02T03:04:05.678Z', lastConfigChangeAt: '2024-01-01T00:00:00.000Z' });
    assert.equal(json.version, '2024-01-02T03:04:05.678Z');
    assert.deepEqual(json.versionInfo, { lastScalingAt: '2024-01-02T03:04:05.678Z', lastConfigChangeAt: '2024-01-01T00:00:00.000Z' });
    assert.deepEqual(parseAppDefinition(json), app);
  });

  it('resolves ids as Marathon does: relative to the group, without trailing slashes, with ..', () => {
    assert.equal(parseAppDefinition({ id: 'a', cmd: 'x' }).id, '/a');
    assert.equal(parseAppDefinition({ id: '/a/b/', cmd: 'x' }).id, '/a/b');
    assert.equal(parseAppDefinition({ id: 'b', cmd: 'x' }, { idPrefix: '/a' }).id, '/a/b');
    assert.equal(parseAppDefinition({ id: '/a/b', cmd: 'x' }, { idPrefix: '/a/' }).id, '/a/b');
    assert.equal(parseAppDefinition({ id: '/a/b/../c', cmd: 'x' }).id, '/a/c');
    assert.equal(parseAppDefinition({ id: '../b/c', cmd: 'x' }, { idPrefix: '/a/b' }).id, '/a/b/c', 'in a group, .. may climb as long as the app lands in the group');
    assert.deepEqual(parseAppDefinition({ id: 'b', cmd: 'x', dependencies: ['c', '../z'] }, { idPrefix: '/a' }).dependencies, ['/a/c', '/z']);
  });

  it('translates the deprecated ports into port definitions, and accepts both when they agree', () => {
    const expected = [{ port: 80, protocol: 'tcp', labels: {} }, { port: 0, protocol: 'tcp', labels: {} }];
    assert.deepEqual(parseAppDefinition({ id: '/a', cmd: 'x', ports: [80, 0] }).portDefinitions, expected);
    assert.deepEqual(parseAppDefinition({ id: '/a', cmd: 'x', ports: [80, 0], portDefinitions: [{ port: 80 }, { port: 0 }] }).portDefinitions, expected);
    assert.deepEqual(parseAppDefinition({ id: '/a', cmd: 'x', portDefinitions: [] }).portDefinitions, [], 'an empty list means no ports');
  });

  it('refuses ids that are not paths of apps', () => {
    assert.deepEqual(errorsAt(refusal({ id: '/', cmd: 'x' }), '/id'), ['Path must contain at least one path element']);
    assert.deepEqual(errorsAt(refusal({ id: '/a/tasks', cmd: 'x' }), '/id'), ['must not end with any of the following reserved keywords: restart, tasks, versions']);
    assert.match(errorsAt(refusal({ id: '/Upper', cmd: 'x' }), '/id')[0] ?? '', /^must fully match regular expression/);
    assert.deepEqual(errorsAt(refusal({ id: '/other/b', cmd: 'x' }, { idPrefix: '/a' }), '/id'), ['Identifier is not child of /a. Hint: use relative paths.']);
    assert.deepEqual(errorsAt(refusal({ id: 'b/c', cmd: 'x' }, { idPrefix: '/a' }), '/id'), ['Identifier is not child of /a. Hint: use relative paths.'], 'an app of a group sits directly in it');
  });

  it('answers with Marathon\'s error body and a stable code', () => {
    try {
      parseAppDefinition({ id: '/a', cmd: 'x', cpus: -1 });
      assert.fail('accepted');
    } catch (e) {
      assert.ok(e instanceof MarathonValidationError);
      assert.equal(e.code, 'MARATHON_INVALID_APP');
      assert.deepEqual(e.body, { message: 'Object is not valid', details: [{ path: '/cpus', errors: ['must be >= 0'] }] });
      assert.match(e.message, /\/cpus: must be >= 0/);
    }
  });

  it('refuses JSON that is not an object', () => {
    assert.deepEqual(refusal([{ id: '/a' }]), [{ path: '/', errors: ['error.expected.jsobject'] }]);
    assert.deepEqual(refusal('app'), [{ path: '/', errors: ['error.expected.jsobject'] }]);
  });

  const BAD_INPUTS: { name: string; json: unknown; path: string; error: string | RegExp; options?: ParseAppOptions }[] = [
    { name: 'a missing id', json: { cmd: 'x' }, path: '/id', error: 'error.path.missing' },
    { name: 'negative cpus', json: { id: '/a', cmd: 'x', cpus: -1 }, path: '/cpus', error: 'must be >= 0' },
    { name: 'cpus below the RAML minimum', json: { id: '/a', cmd: 'x', cpus: 0 }, path: '/cpus', error: 'must be >= 0.001' },
    { name: 'instances given as a string', json: { id: '/a', cmd: 'x', instances: '3' }, path: '/instances', error: 'error.expected.jsnumber' },
    { name: 'a fractional instance count', json: { id: '/a', cmd: 'x', instances: 1.5 }, path: '/instances', error: 'error.expected.int' },
    { name: 'cmd and args together', json: { id: '/a', cmd: 'x', args: ['y'] }, path: '/', error: CMD_ARGS_OR_CONTAINER },
    { name: 'neither cmd, args nor container', json: { id: '/a' }, path: '/', error: CMD_ARGS_OR_CONTAINER },
    { name: 'an unknown top-level field', json: { id: '/a', cmd: 'x', cmdd: 'y' }, path: '/cmdd', error: /^unknown field/ },
    { name: 'an unknown field inside the container', json: { id: '/a', container: { docker: { image: 'i', foo: 1 } } }, path: '/container/docker/foo', error: /^unknown field/ },
    { name: 'a DOCKER container without docker', json: { id: '/a', cmd: 'x', container: { type: 'DOCKER' } }, path: '/container/docker', error: 'error.path.missing' },
    { name: 'a docker image that is empty', json: { id: '/a', container: { docker: { image: '' } } }, path: '/container/docker/image', error: 'must not be empty' },
    { name: 'a host volume without hostPath', json: { id: '/a', container: { docker: { image: 'i' }, volumes: [{ containerPath: '/d' }] } }, path: '/container/volumes(0)/hostPath', error: 'error.path.missing' },
    { name: 'docker network NONE', json: { id: '/a', container: { docker: { image: 'i', network: 'NONE' } } }, path: '/container/docker/network', error: 'unsupported docker network type NONE' },
    { name: 'a bad constraint operator', json: { id: '/a', cmd: 'x', constraints: [['hostname', 'UNIQUELY']] }, path: '/constraints(0)', error: /^Constraint operator must be one of the following UNIQUE, CLUSTER/ },
    { name: 'a constraint with four fields', json: { id: '/a', cmd: 'x', constraints: [['a', 'LIKE', 'b', 'c']] }, path: '/constraints(0)', error: 'Each constraint must have either 2 or 3 fields' },
    { name: 'LIKE with an invalid regex', json: { id: '/a', cmd: 'x', constraints: [['hostname', 'LIKE', 'srv[']] }, path: '/constraints(0)', error: "'srv[' is not a valid regular expression" },
    { name: 'UNLIKE without a regex', json: { id: '/a', cmd: 'x', constraints: [['hostname', 'UNLIKE']] }, path: '/constraints(0)', error: 'A regular expression value must be provided' },
    { name: 'UNIQUE with a value', json: { id: '/a', cmd: 'x', constraints: [['hostname', 'UNIQUE', 'x']] }, path: '/constraints(0)', error: 'Value specified but not used' },
    { name: 'CLUSTER without a value', json: { id: '/a', cmd: 'x', constraints: [['rack', 'CLUSTER']] }, path: '/constraints(0)', error: 'Missing value' },
    { name: 'IS without a value', json: { id: '/a', cmd: 'x', constraints: [['os', 'IS']] }, path: '/constraints(0)', error: 'Missing value' },
    { name: 'GROUP_BY with a value that is not an integer', json: { id: '/a', cmd: 'x', constraints: [['rack', 'GROUP_BY', 'two']] }, path: '/constraints(0)', error: 'Value was specified but is not a number' },
    { name: 'MAX_PER without a value', json: { id: '/a', cmd: 'x', constraints: [['rack', 'MAX_PER']] }, path: '/constraints(0)', error: 'Value was not specified or is not a number' },
    { name: 'MAX_PER with a fraction', json: { id: '/a', cmd: 'x', constraints: [['rack', 'MAX_PER', '1.5']] }, path: '/constraints(0)', error: 'Value was not specified or is not a number' },
    { name: 'a health check portIndex out of range', json: { id: '/a', cmd: 'x', healthChecks: [{ protocol: 'HTTP', portIndex: 1 }] }, path: '/healthChecks(0)', error: 'Health check port indices must address an element of the ports array or container port mappings.' },
    { name: 'a health check on an app without ports', json: { id: '/a', cmd: 'x', portDefinitions: [], healthChecks: [{ protocol: 'TCP' }] }, path: '/healthChecks(0)', error: /^Health check port indices/ },
    { name: 'a COMMAND health check without command', json: { id: '/a', cmd: 'x', healthChecks: [{ protocol: 'COMMAND' }] }, path: '/healthChecks(0)/command', error: 'a COMMAND health check needs command.value' },
    { name: 'two Mesos health checks', json: { id: '/a', cmd: 'x', healthChecks: [{ protocol: 'MESOS_TCP' }, { protocol: 'MESOS_HTTP' }] }, path: '/', error: 'AppDefinition can contain at most one Mesos health check' },
    { name: 'IPv6 on a Marathon HTTP check', json: { id: '/a', cmd: 'x', healthChecks: [{ protocol: 'HTTP', ipProtocol: 'IPv6' }] }, path: '/healthChecks(0)', error: /^IPv6 can only be used/ },
    { name: 'duplicate port names', json: { id: '/a', cmd: 'x', portDefinitions: [{ name: 'http' }, { name: 'http' }] }, path: '/portDefinitions', error: 'Port names must be unique.' },
    { name: 'duplicate fixed ports', json: { id: '/a', cmd: 'x', portDefinitions: [{ port: 80 }, { port: 80 }] }, path: '/portDefinitions', error: 'Ports must be unique.' },
    { name: 'ports and portDefinitions that disagree', json: { id: '/a', cmd: 'x', ports: [80], portDefinitions: [{ port: 81 }] }, path: '/', error: 'cannot specify both ports and port definitions' },
    { name: 'uris and fetch together', json: { id: '/a', cmd: 'x', uris: ['http://a/b'], fetch: [{ uri: 'http://a/c' }] }, path: '/uris', error: 'may not be set in conjunction with fetch' },
    { name: 'a fetch URI that is a relative path', json: { id: '/a', cmd: 'x', fetch: [{ uri: 'setup.py' }] }, path: '/fetch(0)/uri', error: 'URI has invalid syntax.' },
    { name: 'a readiness check on a port that does not exist', json: { id: '/a', cmd: 'x', readinessChecks: [{ portName: 'web' }] }, path: '/readinessChecks(0)/portName', error: 'No port definition reference for portName web' },
    { name: 'a readiness check whose timeout is not below its interval', json: { id: '/a', cmd: 'x', portDefinitions: [{ name: 'http-api' }], readinessChecks: [{ intervalSeconds: 5, timeoutSeconds: 5 }] }, path: '/readinessChecks(0)/timeoutSeconds', error: 'got 5, expected less than 5' },
    { name: 'two readiness checks', json: { id: '/a', cmd: 'x', portDefinitions: [{ name: 'http-api' }], readinessChecks: [{}, {}] }, path: '/readinessChecks', error: 'got 2, expected 1 or less' },
    { name: 'an upgrade strategy above 1', json: { id: '/a', cmd: 'x', upgradeStrategy: { minimumHealthCapacity: 1.5 } }, path: '/upgradeStrategy/minimumHealthCapacity', error: 'must be <= 1' },
    { name: 'an upgrade strategy below 0', json: { id: '/a', cmd: 'x', upgradeStrategy: { maximumOverCapacity: -0.1 } }, path: '/upgradeStrategy/maximumOverCapacity', error: 'must be >= 0' },
    { name: 'an unreachable strategy that expunges before it replaces', json: { id: '/a', cmd: 'x', unreachableStrategy: { inactiveAfterSeconds: 60, expungeAfterSeconds: 30 } }, path: '/unreachableStrategy', error: 'expungeAfterSeconds must be greater than or equal to inactiveAfterSeconds' },
    { name: 'an unknown unreachable strategy', json: { id: '/a', cmd: 'x', unreachableStrategy: 'later' }, path: '/unreachableStrategy', error: 'must be one of: disabled' },
    { name: 'more instances than Marathon can count', json: { id: '/a', cmd: 'x', instances: 1e308 }, path: '/instances', error: /expected 2147483647 or less/ },
    { name: 'an env value that is a number', json: { id: '/a', cmd: 'x', env: { N: 1 } }, path: '/env/N', error: 'error.expected.jsstring' },
    { name: 'empty acceptedResourceRoles', json: { id: '/a', cmd: 'x', acceptedResourceRoles: [] }, path: '/acceptedResourceRoles', error: 'must not be empty' },
    { name: 'a version that is not a timestamp', json: { id: '/a', cmd: 'x', version: 'yesterday' }, path: '/version', error: 'error.expected.date.isoformat' },
  ];
  for (const bad of BAD_INPUTS) {
    it(`refuses ${bad.name} at ${bad.path}`, () => {
      const errors = errorsAt(refusal(bad.json, bad.options), bad.path);
      assert.ok(
        errors.some((e) => (typeof bad.error === 'string' ? e === bad.error : bad.error.test(e))),
        `no ${String(bad.error)} at ${bad.path} in ${JSON.stringify(refusal(bad.json, bad.options))}`,
      );
    });
  }

  it('reports every problem of a definition at once', () => {
    const details = refusal({ cmd: 'x', args: ['y'], cpus: -1, instances: '3', residency: {} });
    assert.deepEqual(details.map((d) => d.path).sort(), ['/', '/cpus', '/id', '/instances', '/residency']);
  });

  it('names each unsupported field it refuses, and nothing vaguer about the same field', () => {
    const cases: [Json, string][] = [
      [{ residency: { taskLostBehavior: 'WAIT_FOREVER' } }, '/residency'],
      [{ ipAddress: { networkName: 'dcos' } }, '/ipAddress'],
      [{ networks: [{ mode: 'container/bridge' }] }, '/networks(0)'],
      [{ networks: [{ name: 'dcos' }] }, '/networks(0)'],
      [{ container: { type: 'MESOS', docker: { image: 'busybox' } } }, '/container/docker'],
      [{ container: { type: 'MESOS', appc: { image: 'a' } } }, '/container/appc'],
      [{ container: { docker: { image: 'i', credential: { principal: 'p' } } } }, '/container/docker/credential'],
      [{ container: { docker: { image: 'i', pullConfig: { secret: 's' } } } }, '/container/docker/pullConfig'],
      [{ container: { docker: { image: 'i' }, volumes: [{ containerPath: 'data', persistent: { size: 10 } }] } }, '/container/volumes(0)/persistent'],
      [{ container: { docker: { image: 'i' }, volumes: [{ containerPath: '/d', external: { name: 'v', provider: 'dvdi' } }] } }, '/container/volumes(0)/external'],
      [{ container: { type: 'MESOS', volumes: [{ containerPath: '/d', hostPath: '/d' }] } }, '/container/volumes(0)'],
      [{ container: { docker: { image: 'i', parameters: [{ key: 'cap-add', value: 'NET_ADMIN' }] } } }, '/container/docker/parameters(0)/key'],
      [{ container: { docker: { image: 'i', network: 'USER' } } }, '/container/docker/network'],
      [{ container: { portMappings: [{ containerPort: 80 }], docker: { image: 'i' } } }, '/container/portMappings'],
      [{ container: { linuxInfo: { seccomp: { unconfined: true } }, docker: { image: 'i' } } }, '/container/linuxInfo'],
      [{ gpus: 1 }, '/gpus'],
      [{ tty: true }, '/tty'],
      [{ executor: '/opt/my-executor' }, '/executor'],
      [{ executorResources: { cpus: 0.1 } }, '/executorResources'],
      [{ check: { http: { portIndex: 0 } } }, '/check'],
      [{ healthChecks: [{ protocol: 'TCP' }, { protocol: 'TCP' }] }, '/healthChecks(1)'],
      [{ role: 'web' }, '/role'],
      [{ resourceLimits: { cpus: 'unlimited' } }, '/resourceLimits'],
      [{ fetch: [{ uri: 'hdfs://nn/app.tgz' }] }, '/fetch(0)/uri'],
      [{ uris: ['s3://bucket/app.tgz'] }, '/uris(0)'],
    ];
    for (const [fields, path] of cases) {
      const details = refusal({ id: '/a', cmd: 'x', ...fields });
      assert.deepEqual(details.map((d) => d.path), [path], `${JSON.stringify(fields)} gives ${JSON.stringify(details)}`);
      assert.ok(details[0]?.errors.length === 1 && details[0].errors[0]?.startsWith(UNSUPPORTED), JSON.stringify(details));
    }
    for (const entry of UNSUPPORTED_FIELDS) {
      assert.ok(cases.some(([fields]) => entry.find({ id: '/a', cmd: 'x', ...fields }).length > 0), `no case for ${entry.field}`);
    }
  });

  it('accepts the supported forms next to the unsupported ones: gpus 0, the default executor, a host network', () => {
    const app = parseAppDefinition({ id: '/a', cmd: 'x', gpus: 0, executor: '//cmd', networks: [{ mode: 'host' }], fetch: [{ uri: '/opt/app.tgz' }] });
    assert.equal(app.executor, '//cmd');
    assert.deepEqual(app.networks, [{ mode: 'host' }]);
    assert.deepEqual(app.fetch, [{ uri: '/opt/app.tgz', executable: false, extract: true, cache: false }]);
  });
});

function omit<T extends object, K extends keyof T>(o: T, key: K): Omit<T, K> {
  const { [key]: _dropped, ...rest } = o;
  return rest;
}

describe('secrets (Marathon secrets, env secret references, secret volumes)', () => {
  const withSecrets = {
    id: '/team-a/web',
    cmd: 'run',
    secrets: { db: { source: '/team-a/db-password' }, tls: { source: 'team-a/tls-key' } },
    env: { PLAIN: 'x', DB_PASSWORD: { secret: 'db' } },
    container: { type: 'DOCKER', docker: { image: 'busybox' }, volumes: [{ containerPath: '/run/secrets/key.pem', secret: 'tls' }, { containerPath: 'data', hostPath: '/srv/data', mode: 'RO' }] },
  };

  it('keeps references only, and shows them back as Marathon does', () => {
    const app = parseAppDefinition(withSecrets);
    assert.deepEqual(app.secrets, { db: '/team-a/db-password', tls: 'team-a/tls-key' });
    assert.deepEqual(app.secretEnv, { DB_PASSWORD: 'db' });
    assert.deepEqual(app.env, { PLAIN: 'x' });
    assert.deepEqual(app.container?.secretVolumes, [{ containerPath: '/run/secrets/key.pem', secret: 'tls' }]);
    const json = appToJSON(app);
    assert.deepEqual(json.env, { PLAIN: 'x', DB_PASSWORD: { secret: 'db' } });
    assert.deepEqual(json.secrets, withSecrets.secrets);
    assertRoundTrip(app);
  });

  it('accepts a secret file in a MESOS container, relative to the sandbox', () => {
    const app = parseAppDefinition({ id: '/a', cmd: 'x', secrets: { s: { source: 'a' } }, container: { type: 'MESOS', volumes: [{ containerPath: 'conf/key', secret: 's' }] } });
    assert.deepEqual(app.container, { type: 'MESOS', secretVolumes: [{ containerPath: 'conf/key', secret: 's' }] });
    assertRoundTrip(app);
  });

  it('refuses undeclared references, bad sources and unsafe paths, each at its path', () => {
    const cases: [unknown, string, RegExp][] = [
      [{ id: '/a', cmd: 'x', env: { P: { secret: 'nope' } } }, '/env/P/secret', /not declared in \/secrets/],
      [{ id: '/a', cmd: 'x', secrets: { s: { source: '../etc' } } }, '/secrets/s/source', /is not a secret name/],
      [{ id: '/a', cmd: 'x', secrets: { s: { source: 'a b' } } }, '/secrets/s/source', /is not a secret name/],
      [{ id: '/a', cmd: 'x', secrets: { s: { source: 'a' } }, container: { type: 'MESOS', volumes: [{ containerPath: '/etc/key', secret: 's' }] } }, '/container/volumes(0)/containerPath', /relative in a MESOS container/],
      [{ id: '/a', cmd: 'x', secrets: { s: { source: 'a' } }, container: { type: 'MESOS', volumes: [{ containerPath: 'x/../../y', secret: 's' }] } }, '/container/volumes(0)/containerPath', /'\.\.'/],
      [{ id: '/a', cmd: 'x', secrets: { s: { source: 'a' } }, container: { docker: { image: 'i' }, volumes: [{ containerPath: '/k', secret: 'other' }] } }, '/container/volumes(0)/secret', /not declared/],
      [{ id: '/a', cmd: 'x', secrets: { s: { source: 'a' } }, container: { docker: { image: 'i' }, volumes: [{ containerPath: '/k', hostPath: '/h', secret: 's' }] } }, '/container/volumes(0)/hostPath', /no hostPath/],
    ];
    for (const [json, path, message] of cases) {
      const d = refusal(json).find((x) => x.path === path);
      assert.ok(d !== undefined, `${JSON.stringify(json)}: expected an error at ${path}, got ${JSON.stringify(refusal(json))}`);
      assert.match(d.errors.join(' '), message);
    }
  });
});

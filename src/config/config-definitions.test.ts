import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidConfig } from './config-errors.ts';
import { parseEnvironment, parseService, parseValues } from './config-definitions.ts';

function problems(f: () => unknown): { field: string; message: string }[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof InvalidConfig, String(e));
    return [...e.problems];
  }
  assert.fail('expected InvalidConfig');
}

describe('parseService', () => {
  it('applies the defaults and keeps what was given', () => {
    assert.deepEqual(parseService('web', { repo: '/srv/git/templates', files: [{ name: 'app.yaml', template: './web/app.yaml', destination: '/etc/web/app.yaml' }], apps: { prod: '/prod/web' } }), {
      name: 'web',
      repo: '/srv/git/templates',
      ref: 'main',
      files: [{ name: 'app.yaml', template: 'web/app.yaml', destination: '/etc/web/app.yaml', mode: '0600' }],
      apps: { prod: '/prod/web' },
      rollout: 'restart',
    });
  });

  it('refuses every bad field at once, each named', () => {
    const p = problems(() =>
      parseService('web', {
        repo: 'ext::sh -c evil',
        ref: '../x',
        files: [
          { name: 'a', template: '../etc/passwd', destination: '/etc/a' },
          { name: 'a', template: 't', destination: '/etc/../x' },
          { name: 'b', template: 't', destination: '/etc/a', mode: '999' },
        ],
        apps: { prod: 'web' },
        rollout: 'sometimes',
        extra: 1,
      }),
    );
    const fields = p.map((x) => x.field);
    for (const f of ['repo', 'ref', 'files[0].template', 'files[1].name', 'files[1].destination', 'files[2].destination', 'files[2].mode', 'apps.prod', 'rollout', 'extra']) assert.ok(fields.includes(f), `${f} in ${fields.join(', ')}`);
    assert.deepEqual(problems(() => parseService('bad name', { repo: '/r', files: [] })).map((x) => x.field), ['name', 'files']);
  });
});

describe('parseEnvironment and parseValues', () => {
  it('takes an environment with or without a body', () => {
    assert.deepEqual(parseEnvironment('prod', undefined), { name: 'prod', description: '' });
    assert.deepEqual(parseEnvironment('prod', { description: 'production' }), { name: 'prod', description: 'production' });
    assert.deepEqual(problems(() => parseEnvironment('prod', { description: 3 })).map((x) => x.field), ['description']);
  });

  it('takes any JSON value, secrets as {"$secret": ...}, and refuses keys templates cannot use', () => {
    assert.deepEqual(parseValues({ port: 80, 'db.host': 'h', list: [1], pw: { $secret: 's' } }), { port: 80, 'db.host': 'h', list: [1], pw: { $secret: 's' } });
    const p = problems(() => parseValues({ '1bad': 1, 'a b': 2, pw: { $secret: 1 }, ok: true }));
    assert.deepEqual(p.map((x) => x.field), ['values.1bad', 'values.a b', 'values.pw']);
    assert.deepEqual(problems(() => parseValues([1])).map((x) => x.field), ['values']);
    assert.deepEqual(problems(() => parseValues({ a: { $sealed: 'x' }, b: [{ c: { $sealed: 'y' } }] })).map((x) => x.field), ['values.a', 'values.b']);
    const proto = parseValues(JSON.parse('{"__proto__": 1}'));
    assert.deepEqual(Object.keys(proto), ['__proto__']);
  });
});

describe('destinations', () => {
  const svc = (destinations: string[]) => () => parseService('web', { repo: '/r', files: destinations.map((d, i) => ({ name: `f${i}`, template: `t${i}`, destination: d })) });
  it('refuses destinations that are one file, or a file and a directory of one another, under a sandbox', () => {
    assert.match(problems(svc(['/etc/a', 'etc//./a']))[0]!.message, /is the destination of another file/);
    assert.match(problems(svc(['conf', 'conf/two']))[0]!.message, /a file and a directory of one another/);
    assert.match(problems(svc(['conf/two', '/conf']))[0]!.message, /a file and a directory of one another/);
    assert.equal(problems(svc(['/./']))[0]!.field, 'files[0].destination');
    assert.doesNotThrow(svc(['/etc/a', '/etc/ab', 'etc/b/c']));
  });
});

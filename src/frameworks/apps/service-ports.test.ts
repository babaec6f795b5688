import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAppDefinition, type AppDefinition } from './app-definition.ts';
import { assignServicePorts } from './service-ports.ts';

const app = (id: string, ports: number[], extra: Record<string, unknown> = {}): AppDefinition =>
  parseAppDefinition({ id, cmd: 'sleep 1000', portDefinitions: ports.map((port) => ({ port })), ...extra });
const portsOf = (apps: Map<string, AppDefinition>, id: string) => apps.get(id)!.portDefinitions.map((p) => p.port);
const range = { min: 10000, max: 10005 };

describe('assignServicePorts', () => {
  it('gives each port declared 0 the lowest free port of the range, and keeps named ones', () => {
    const out = assignServicePorts(new Map(), new Map([['/a', app('/a', [0, 10001, 0])]]), range);
    assert.deepEqual(portsOf(out, '/a'), [10000, 10001, 10002]);
  });

  it('skips ports any app names, before or after the change', () => {
    const original = new Map([['/old', app('/old', [10000])]]);
    const target = new Map([
      ['/b', app('/b', [10002])],
      ['/c', app('/c', [0, 0])],
    ]);
    assert.deepEqual(portsOf(assignServicePorts(original, target, range), '/c'), [10001, 10003]);
  });

  it('gives a changed app back the ports it had, first', () => {
    const before = app('/a', [10003, 10004]);
    const out = assignServicePorts(new Map([['/a', before]]), new Map([['/a', app('/a', [0, 0], { cpus: 2 })]]), range);
    assert.deepEqual(portsOf(out, '/a'), [10003, 10004]);
  });

  it('leaves an unchanged app as it is, and one only scaled (an app stored with 0s would restart)', () => {
    const same = app('/a', [0]);
    const out = assignServicePorts(new Map([['/a', same]]), new Map([['/a', same]]), range);
    assert.equal(out.get('/a'), same);
    const scaled = { ...same, instances: 5 };
    assert.equal(assignServicePorts(new Map([['/a', same]]), new Map([['/a', scaled]]), range).get('/a'), scaled);
    // Any other change assigns them.
    assert.deepEqual(portsOf(assignServicePorts(new Map([['/a', same]]), new Map([['/a', { ...same, cpus: 2 }]]), range), '/a'), [10000]);
  });

  it('throws Marathon\u2019s message when the range is used up', () => {
    const full = new Map([['/a', app('/a', [0, 0, 0, 0, 0])]]);
    assert.deepEqual(portsOf(assignServicePorts(new Map(), full, range), '/a'), [10000, 10001, 10002, 10003, 10004]);
    assert.throws(() => assignServicePorts(new Map(), new Map([...full, ['/b', app('/b', [0])]]), range), /All ports in the range 10000-10005 are already in use/);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { failureOf } from '../core/document-reader-test-support.ts';
import type { Attribute, FrameworkInfo, Resource, TaskInfo, TaskStatus } from '../protocol/mesos.ts';
import {
  readAgentAttributes,
  readAgentResources,
  readFrameworkInfo,
  readQuotaLimits,
  readTaskInfo,
  readTaskState,
  readTaskStatus,
} from './master-store.ts';

const RESOURCES: Resource[] = [
  { name: 'cpus', type: 'SCALAR', scalar: { value: 2 } },
  { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 31000, end: 32000 }] }, role: '*' },
];
const ATTRIBUTES: Attribute[] = [{ name: 'rack', type: 'TEXT', text: { value: 'r1' } }];
const FRAMEWORK: FrameworkInfo = {
  name: 'marathon',
  user: 'root',
  id: { value: 'fw-1' },
  failover_timeout: 604800,
  roles: ['web'],
  capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }],
};
const TASK: TaskInfo = {
  name: 'web',
  task_id: { value: 'web.1' },
  agent_id: { value: 'agent-1' },
  resources: RESOURCES,
  command: { value: 'sleep 1000', shell: true, environment: { variables: [{ name: 'A', value: '1' }] } },
  labels: { labels: [{ key: 'k', value: 'v' }] },
};
const STATUS: TaskStatus = { task_id: { value: 'web.1' }, state: 'TASK_RUNNING', source: 'SOURCE_AGENT', timestamp: 1_700_000_000, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==', healthy: true };

/** Through JSON, as a store reads it. */
const stored = <T>(v: T): unknown => JSON.parse(JSON.stringify(v));

describe("the master's readers of its stored documents", () => {
  it('read good documents back equal', () => {
    assert.deepEqual(readFrameworkInfo(stored(FRAMEWORK), 'fw-1'), FRAMEWORK);
    assert.deepEqual(readAgentResources(stored(RESOURCES), 'agent-1'), RESOURCES);
    assert.deepEqual(readAgentAttributes(stored(ATTRIBUTES), 'agent-1'), ATTRIBUTES);
    assert.deepEqual(readTaskInfo(stored(TASK), 'fw-1', 'web.1'), TASK);
    assert.deepEqual(readTaskStatus(stored(STATUS), 'fw-1', 'web.1'), STATUS);
    assert.deepEqual(readQuotaLimits(stored({ cpus: 4, mem: 1024 }), 'web'), { cpus: 4, mem: 1024 });
    assert.equal(readTaskState('TASK_KILLING', 'fw-1', 'web.1'), 'TASK_KILLING');
    // Fields Mesos has and Slipway does not model pass, as Mesos's JSON parser lets them.
    assert.deepEqual(readFrameworkInfo(stored({ ...FRAMEWORK, offer_filters: {} }), 'fw-1'), { ...FRAMEWORK, offer_filters: {} });
  });

  it('name the document and the field of one that does not match', () => {
    const cases: [string, string, () => unknown][] = [
      ['FrameworkInfo of framework fw-1', 'name', () => readFrameworkInfo({ ...FRAMEWORK, name: undefined }, 'fw-1')],
      ['FrameworkInfo of framework fw-1', 'capabilities[1].type', () => readFrameworkInfo({ ...FRAMEWORK, capabilities: [{ type: 'MULTI_ROLE' }, { type: 'TELEPATHY' }] }, 'fw-1')],
      ['resources of agent agent-1', '[1].ranges.range[0].end', () => readAgentResources([RESOURCES[0], { ...RESOURCES[1], ranges: { range: [{ begin: 1, end: 'x' }] } }], 'agent-1')],
      ['attributes of agent agent-1', '', () => readAgentAttributes({ rack: 'r1' }, 'agent-1')],
      ['TaskInfo of task web.1 of framework fw-1', 'task_id.value', () => readTaskInfo({ ...TASK, task_id: { value: 7 } }, 'fw-1', 'web.1')],
      ['TaskInfo of task web.1 of framework fw-1', 'resources', () => readTaskInfo({ ...TASK, resources: undefined }, 'fw-1', 'web.1')],
      ['TaskStatus of task web.1 of framework fw-1', 'state', () => readTaskStatus({ ...STATUS, state: 'TASK_NAPPING' }, 'fw-1', 'web.1')],
      ['quota of role web', 'cpus', () => readQuotaLimits({ cpus: '4' }, 'web')],
      ['task web.1 of framework fw-1', 'state', () => readTaskState('TASK_NAPPING', 'fw-1', 'web.1')],
    ];
    for (const [document, field, read] of cases) {
      const e = failureOf(read, `${document} ${field}`);
      assert.equal(e.document, document);
      assert.equal(e.field, field, e.message);
      assert.match(e.message, new RegExp(`^stored ${document.replace(/[.]/g, '\\.')} cannot be read: `));
    }
  });
});

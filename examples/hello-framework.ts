/**
 * A minimal framework over Slipway's scheduler HTTP API (Mesos v1, JSON): it subscribes, takes
 * the first offer, launches one task that prints a line, follows its updates to the end and prints
 * the task's stdout through the master's files API.
 *
 *   npx slipway up                       # in one terminal
 *   npx tsx examples/hello-framework.ts  # in another (or --master http://HOST:PORT)
 */
import { SchedulerClient } from '../src/sdk/scheduler-client.ts';

const flag = process.argv.indexOf('--master');
const fw = new SchedulerClient(flag >= 0 ? (process.argv[flag + 1] ?? '') : 'http://127.0.0.1:5050');
await fw.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'me', name: 'hello' } } });
console.log(`subscribed as ${fw.frameworkId} (stream ${fw.streamId})`);

const offer = await fw.waitFor(() => fw.offers()[0], 'an offer');
console.log(`offer ${offer.id.value} from ${offer.hostname}: ${offer.resources.map((r) => `${r.name}:${r.scalar?.value ?? JSON.stringify(r.ranges?.range)}`).join(' ')}`);
await fw.call({
  type: 'ACCEPT',
  accept: {
    offer_ids: [offer.id],
    operations: [
      {
        type: 'LAUNCH',
        launch: {
          task_infos: [
            {
              name: 'hello',
              task_id: { value: 'hello-1' },
              agent_id: offer.agent_id,
              resources: [
                { name: 'cpus', type: 'SCALAR', scalar: { value: 0.1 } },
                { name: 'mem', type: 'SCALAR', scalar: { value: 32 } },
              ],
              command: { value: 'echo "hello from $MESOS_TASK_ID on $HOST"' },
            },
          ],
        },
      },
    ],
  },
});
const end = await fw.waitForState('hello-1', 'TASK_FINISHED');
for (const u of fw.updates('hello-1')) console.log(`update: ${u.state}${u.message ? ` (${u.message})` : ''}`);
// Every API asks for a token: SLIPWAY_TOKEN (the SchedulerClient above sends it too).
const auth = process.env['SLIPWAY_TOKEN'] !== undefined ? { Authorization: `Bearer ${process.env['SLIPWAY_TOKEN']}` } : undefined;
const log = (await (await fetch(`${fw.masterUrl}/files/read?framework_id=${fw.frameworkId}&task_id=hello-1&path=stdout`, { ...(auth !== undefined ? { headers: auth } : {}) })).json()) as { data: string };
console.log(`stdout: ${log.data.trim()}`);
console.log(end.state === 'TASK_FINISHED' ? 'done' : 'unexpected end');
await fw.call({ type: 'TEARDOWN' });
fw.close();

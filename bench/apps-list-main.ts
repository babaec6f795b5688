import Fastify from 'fastify';
import { singleTokenGate } from '../src/server/local-auth.ts';
import { runToken } from '../src/sim/bench-token.ts';
import { SystemClock } from '../src/core/clock.ts';
import { Resources } from '../src/core/resources.ts';
import { Master } from '../src/master/master.ts';
import { mountMarathonApi, startAppsService } from '../src/server/apps-server.ts';
import { InProcessScheduler } from '../src/server/in-process-scheduler.ts';
import { SimAgent } from '../src/sim/sim-agent.ts';
import { stopOnSignal } from '../src/server/stop-on-signal.ts';

/**
 * The server process of the list part of `slipway bench apps`: a real master core on the real
 * clock, with simulated agents (src/sim: tasks are RUNNING at once, updates resent until
 * acknowledged), and the services framework on the in-process scheduler API with its real SQLite
 * store, serving Marathon's API over HTTP, as in `slipway up`. Simulated agents so that 10,000
 * instances fit on one small machine; what is measured (GET /v2/apps) is the framework's.
 *
 * Simulated agents are driven on the real event loop: a message to an agent is handled on a
 * later turn (setImmediate), so the master is never re-entered from inside one of its calls.
 * argv[2]: JSON {port, dataDir, agents, agentResources}. Prints `ready <url>` on stdout.
 */
interface ListServerOptions {
  port: number;
  dataDir: string;
  agents: number;
  agentResources: string;
}

const o = JSON.parse(process.argv[2] ?? '{}') as ListServerOptions;
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
const clock = new SystemClock();
const master = new Master({ masterId: 'bench', clock });
master.start();

const busy = new Set<SimAgent>();
let scheduled = false;
const pump = () => {
  scheduled = false;
  for (const a of busy) {
    busy.delete(a);
    a.drain();
  }
};
const wake = (a: SimAgent) => {
  busy.add(a);
  if (!scheduled) {
    scheduled = true;
    setImmediate(pump);
  }
};
const resources = Resources.parse(o.agentResources).toJSON();
for (let i = 0; i < o.agents; i++) {
  const agent = new SimAgent(
    { hostname: `sim-${i}`, resources, clock },
    (a, message) => {
      if (message.type === 'REGISTER') master.registerAgent(message, { send: (m) => a.receive(m), close: () => undefined });
      else if (a.agentId !== undefined) master.agentMessage(a.agentId, message);
    },
    wake,
  );
  agent.register();
}

const service = await startAppsService({ transport: new InProcessScheduler(master), dataDir: o.dataDir, masterUrl: 'in-process', log });
const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
// Authentication on, as everywhere: the run's token (its parent made it) is the one admin token.
const gate = singleTokenGate(runToken());
gate.install(app);
let leader = '';
mountMarathonApi(app, service, { leader: () => leader, masterUrl: 'in-process', rootMetrics: true, gate });
await app.listen({ host: '127.0.0.1', port: o.port });
leader = `127.0.0.1:${o.port}`;
process.stdout.write(`ready http://${leader}\n`);

stopOnSignal(
  async () => {
    await app.close();
    await service.close();
    master.stop();
  },
  'the list bench server',
  log,
);

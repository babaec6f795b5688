import { join } from 'node:path';
import { mountMarathonApi, startAppsService, type AppsService } from '../src/server/apps-server.ts';
import { InProcessScheduler } from '../src/server/in-process-scheduler.ts';
import { startMasterServer } from '../src/server/master-server.ts';
import { stopOnSignal } from '../src/server/stop-on-signal.ts';

/**
 * The server process of `slipway bench apps` (topology `embedded`): a master with the services
 * framework in the same process on the in-process scheduler API and Marathon's API on the
 * master's port, wired exactly as `slipway up` wires them (src/server/up.ts), but without
 * `up`'s own agent: the benchmark's agents are separate processes it can kill -9.
 * argv[2]: port; argv[3]: data dir. Stops on SIGINT/SIGTERM.
 */
const port = Number(process.argv[2]);
const dataDir = process.argv[3] ?? '.';
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

let apps: AppsService | undefined;
let url = '';
const master = await startMasterServer({
  host: '127.0.0.1',
  port,
  dataDir: join(dataDir, 'master'),
  log,
  extend: async (app, core, gate) => {
    apps = await startAppsService({ transport: new InProcessScheduler(core, 'slipway-apps'), dataDir: join(dataDir, 'apps'), masterUrl: 'in-process', log });
    mountMarathonApi(app, apps, { leader: () => url.replace(/^http:\/\//, ''), masterUrl: 'in-process', rootMetrics: false, gate });
  },
});
url = master.url;
log(`bench server (master + services) at ${url}`);

stopOnSignal(
  async () => {
    await apps?.close();
    await master.close();
  },
  'the bench server (services framework and master)',
  log,
);

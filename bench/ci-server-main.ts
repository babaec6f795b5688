import { join } from 'node:path';
import { mountCiApi, startCiService, type CiService } from '../src/server/ci-server.ts';
import { InProcessScheduler } from '../src/server/in-process-scheduler.ts';
import { startMasterServer } from '../src/server/master-server.ts';
import { stopOnSignal } from '../src/server/stop-on-signal.ts';

/**
 * The server process of `slipway bench ci`: a master with CI in the same process, on the
 * in-process scheduler API, CI's API on the master's port, wired exactly as `slipway up` wires
 * them (src/server/up.ts), but without `up`'s own agent (the benchmark's agents are processes of
 * their own, with distinct hostnames) and without the services framework (idle, it only
 * declines offers; the benchmark measures CI).
 * argv[2]: port; argv[3]: data dir. Stops on SIGINT/SIGTERM.
 */
const port = Number(process.argv[2]);
const dataDir = process.argv[3] ?? '.';
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

let ci: CiService | undefined;
let url = '';
const master = await startMasterServer({
  host: '127.0.0.1',
  port,
  dataDir: join(dataDir, 'master'),
  log,
  extend: async (app, core, gate) => {
    ci = await startCiService({ transport: new InProcessScheduler(core, 'slipway-ci'), dataDir: join(dataDir, 'ci'), serverUrl: () => url, log });
    mountCiApi(app, ci, { gate });
  },
});
url = master.url;
log(`bench server (master + CI) at ${url}`);

stopOnSignal(
  async () => {
    await ci?.close();
    await master.close();
  },
  'the bench server (CI and master)',
  log,
);

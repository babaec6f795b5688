import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { ConfigClient, ConfigRequestFailed, type ConfigReleaseView, type ConfigRolloutView, type ReleaseOptions } from '../../sdk/config-client.ts';
import { pullRelease, readPulled } from '../../sdk/config-pull.ts';
import { positiveInt } from '../options.ts';

/**
 * `slipway config ...`: the config center (`/config/v1`, docs/config.md) from the command line.
 * Every command takes `--master` (the server of `slipway up`) and `--json` (the API's answer as
 * is); failures exit 1 with the server's message and each field it names.
 */
export function registerConfig(program: Command): void {
  const config = program.command('config').description('the config center: services, values, releases, diffs, rollback, instances, pull (docs/config.md)');
  const MASTER = ['--master <url>', 'the server of the config center (slipway up)', 'http://127.0.0.1:5050'] as const;
  const client = (o: { master: string }) => new ConfigClient(o.master);
  const out = (o: { json?: boolean }, json: unknown, text: () => string) => process.stdout.write(o.json === true ? `${JSON.stringify(json, null, 2)}\n` : `${text()}\n`);
  const ROLLOUT = ['--rollout <mode>', 'restart (the linked app, health-gated), hot (watchers only) or none; default: the service\'s'] as const;
  const DEADLINE = ['--deadline <seconds>', 'how long a restart rollout has before it fails and goes back (default: from the app\'s health checks)', positiveInt('--deadline')] as const;
  const line = (r: ConfigReleaseView) => `release ${r.version} of ${r.service} in ${r.env}: ${r.change}${r.rolledBackTo !== undefined ? ` to ${r.rolledBackTo}` : ''}, templates ${r.templateCommit.slice(0, 12)}, values v${r.valuesVersion} (shared v${r.sharedVersion}), by ${r.createdBy} at ${r.createdAt}${r.note !== '' ? ` — ${r.note}` : ''}${r.gray !== undefined ? ` [gray ${r.gray.state}, beside release ${r.gray.main}${r.gray.members.length > 0 ? `, ${r.gray.members.length} instance(s)` : ''}]` : ''}`;

  config
    .command('services')
    .description('list the services')
    .option(...MASTER)
    .option('--json', 'the API answer')
    .action((o: { master: string; json?: boolean }) =>
      run(async () => {
        const r = await client(o).services();
        out(o, r, () => r.services.map((s) => `${s.name.padEnd(20)} ${s.repo} @ ${s.ref} (${s.files.length} file(s))`).join('\n') || 'no services');
      }),
    );
  config
    .command('service-put <name> <file>')
    .description('create or replace a service from a JSON file: {"repo", "ref", "files": [{"name", "template", "destination", "mode"}], "apps": {"env": "/app"}}')
    .option(...MASTER)
    .action((name: string, file: string, o: { master: string }) =>
      run(async () => {
        await client(o).putService(name, JSON.parse(readFileSync(file, 'utf8')));
        process.stdout.write(`service ${name} saved\n`);
      }),
    );
  config
    .command('env-put <name>')
    .description('create or replace an environment')
    .option(...MASTER)
    .option('--description <text>', 'what it is for')
    .action((name: string, o: { master: string; description?: string }) =>
      run(async () => {
        await client(o).putEnvironment(name, o.description);
        process.stdout.write(`environment ${name} saved\n`);
      }),
    );

  const values = config.command('values').description("a service's values in an environment (service '*': the environment's shared values)");
  values
    .command('get <service> <env>')
    .option(...MASTER)
    .option('--json', 'the API answer')
    .action((service: string, env: string, o: { master: string; json?: boolean }) =>
      run(async () => {
        const r = await client(o).values(service, env);
        out(o, r, () => [`version ${r.version}`, ...Object.entries(r.values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)].join('\n'));
      }),
    );
  values
    .command('set <service> <env> <pairs...>')
    .description('set values: key=value (JSON when it reads as JSON, else a string); --secret key=value for a secret')
    .option(...MASTER)
    .option('--secret <pair>', 'a secret key=value (repeatable; prefer stdin for real secrets: --secret key=-)', (v: string, all: string[] = []) => [...all, v])
    .action((service: string, env: string, pairs: string[], o: { master: string; secret?: string[] }) =>
      run(async () => {
        const set: Record<string, unknown> = {};
        for (const p of pairs) {
          const [k, v] = split(p);
          set[k] = readValue(v);
        }
        for (const p of o.secret ?? []) {
          const [k, v] = split(p);
          set[k] = { $secret: v === '-' ? readFileSync(0, 'utf8').replace(/\n$/, '') : v };
        }
        const r = await client(o).patchValues(service, env, { set });
        process.stdout.write(`values of ${service} in ${env}: version ${r.version} (a draft until released)\n`);
      }),
    );
  values
    .command('unset <service> <env> <keys...>')
    .option(...MASTER)
    .action((service: string, env: string, keys: string[], o: { master: string }) =>
      run(async () => {
        const r = await client(o).patchValues(service, env, { unset: keys });
        process.stdout.write(`values of ${service} in ${env}: version ${r.version}\n`);
      }),
    );

  config
    .command('release <service> <env>')
    .description('render and release the files; says unchanged (and makes none) when they would be the same; follows the rollout and exits 1 if it fails')
    .option(...MASTER)
    .option('--note <text>', 'why')
    .option(...ROLLOUT)
    .option(...DEADLINE)
    .option('--gray-instances <n>', 'a gray release for this many instances of the linked app', positiveInt('--gray-instances'))
    .option('--gray-percent <p>', 'a gray release for this percentage of them (rounded up)', positiveInt('--gray-percent'))
    .option('--gray-tasks <ids>', 'a gray release for these instances (task ids, comma-separated)')
    .option('--gray-agents <k=v,...>', 'a gray release for the instances on agents with these attributes (or hostname)')
    .option('--no-wait', 'answer once the release is made, without following its rollout')
    .option('--json', 'the API answer (and the rollout as it ended)')
    .action((service: string, env: string, o: RolloutFlags & GrayFlags & { master: string; note?: string }) =>
      run(async () => {
        const c = client(o);
        const gray = grayOf(o);
        const r = await c.release(service, env, { ...(o.note !== undefined ? { note: o.note } : {}), ...rolloutOptions(o), ...(gray !== undefined ? { gray } : {}) });
        if (o.json !== true) process.stdout.write(`${r.change === 'unchanged' ? `unchanged: ${r.release !== undefined ? `release ${r.release.version} stays` : 'nothing to release'}` : line(r.release!)}\n`);
        const rollout = r.change !== 'unchanged' ? await followRollout(c, r.release!.gray?.rollout !== undefined ? { ...r.release!, rollout: r.release!.gray.rollout } : r.release!, o) : undefined;
        if (o.json === true) out(o, { ...r, ...(rollout !== undefined ? { rollout } : {}) }, () => '');
      }),
    );
  config
    .command('promote <service> <env> <version>')
    .description('complete a gray release: the environment\'s release from now on, rolled out to every instance')
    .option(...MASTER)
    .option(...ROLLOUT)
    .option(...DEADLINE)
    .option('--no-wait', 'answer at once, without following the rollout')
    .option('--json', 'the API answer (and the rollout as it ended)')
    .action((service: string, env: string, version: string, o: RolloutFlags & { master: string }) =>
      run(async () => {
        const c = client(o);
        const r = await c.promote(service, env, whole(version), rolloutOptions(o));
        if (o.json !== true) process.stdout.write(`${line(r)} (gray release promoted)\n`);
        const rollout = await followRollout(c, r, o);
        if (o.json === true) out(o, { ...r, ...(rollout !== undefined ? { rollout } : {}) }, () => '');
      }),
    );
  config
    .command('abandon <service> <env> <version>')
    .description('end a gray release: its instances go back to the environment\'s release')
    .option(...MASTER)
    .option(...ROLLOUT)
    .option('--note <text>', 'why')
    .option('--json', 'the API answer')
    .action((service: string, env: string, version: string, o: { master: string; rollout?: string; note?: string; json?: boolean }) =>
      run(async () => {
        const r = await client(o).abandon(service, env, whole(version), { ...rolloutOptions({ ...(o.rollout !== undefined ? { rollout: o.rollout } : {}), wait: false }), ...(o.note !== undefined ? { note: o.note } : {}) });
        out(o, r, () => `gray release ${r.version} of ${r.service} in ${r.env}: abandoned; its instances go back to release ${r.gray?.main ?? '?'}`);
      }),
    );
  config
    .command('releases <service> <env>')
    .option(...MASTER)
    .option('--json', 'the API answer')
    .action((service: string, env: string, o: { master: string; json?: boolean }) =>
      run(async () => {
        const r = await client(o).releases(service, env);
        out(o, r, () => r.releases.map(line).join('\n') || 'no releases');
      }),
    );
  config
    .command('diff <service> <env> [from] [to]')
    .description('unified diffs from release `from` to `to`; without them, what a release now would change')
    .option(...MASTER)
    .option('--json', 'the API answer')
    .action((service: string, env: string, from: string | undefined, to: string | undefined, o: { master: string; json?: boolean }) =>
      run(async () => {
        const c = client(o);
        const r = from === undefined ? await c.preview(service, env) : await c.diff(service, env, whole(from), whole(to ?? ''));
        out(o, r, () => r.files.map((f) => f.patch).join('\n') || 'no difference');
      }),
    );
  config
    .command('rollback <service> <env>')
    .description('a new release with the files of an earlier one, byte for byte')
    .requiredOption('--to <version>', 'the release to go back to', positiveInt('--to'))
    .option(...MASTER)
    .option(...ROLLOUT)
    .option(...DEADLINE)
    .option('--no-wait', 'answer once the release is made, without following its rollout')
    .option('--json', 'the API answer (and the rollout as it ended)')
    .action((service: string, env: string, o: RolloutFlags & { master: string; to: number }) =>
      run(async () => {
        const c = client(o);
        const r = await c.rollback(service, env, o.to, rolloutOptions(o));
        if (o.json !== true) process.stdout.write(`${line(r)}\n`);
        const rollout = await followRollout(c, r, o);
        if (o.json === true) out(o, { ...r, ...(rollout !== undefined ? { rollout } : {}) }, () => '');
      }),
    );
  config
    .command('instances <service> <env>')
    .description('the instances of the linked app, the release each runs, and why one is stale')
    .option(...MASTER)
    .option('--json', 'the API answer')
    .action((service: string, env: string, o: { master: string; json?: boolean }) =>
      run(async () => {
        const r = await client(o).instances(service, env);
        out(o, r, () => [`app ${r.appId ?? '(none linked)'}, release ${r.release ?? '(none)'}`, ...r.instances.map((i) => `${i.taskId} ${i.host} ${i.state} release ${i.release ?? '-'}${i.stale ? ` STALE: ${i.why.join('; ')}` : ''}`)].join('\n'));
      }),
    );
  config
    .command('pull <service> <env>')
    .description('write the current release\'s files under a directory (atomically, with their modes); --watch follows new releases and --exec runs a command after each change')
    .option(...MASTER)
    .option('--dir <dir>', 'where the files go (a destination /etc/a is <dir>/etc/a)', '.')
    .option('--watch', 'keep pulling as releases come (long poll); the last release stays on disk while the config center is away')
    .option('--exec <command>', 'run this shell command after each change (e.g. a reload)')
    .action((service: string, env: string, o: { master: string; dir: string; watch?: boolean; exec?: string }) =>
      run(async () => {
        const c = client(o);
        // In a task: its id, which a gray release may be for.
        const instance = process.env['MESOS_TASK_ID'] !== undefined && process.env['MESOS_TASK_ID'] !== '' ? process.env['MESOS_TASK_ID'] : undefined;
        const once = async () => {
          const { state, changed } = await pullRelease(c, service, env, o.dir, instance);
          process.stderr.write(`${changed ? 'pulled' : 'up to date with'} release ${state.release} of ${service} in ${env} into ${o.dir}\n`);
          if (changed && o.exec !== undefined) await sh(o.exec);
          return state.release;
        };
        let release: number;
        try {
          release = await once();
        } catch (e) {
          // Away (no answer, or a 5xx) with a release pulled before: it stays, as pull.sh keeps it
          // (Apollo's client cache). A refusal (401, 403, 404, a digest that does not match) fails.
          const away = e instanceof ConfigRequestFailed && (e.status === 0 || e.status >= 500);
          const kept = away ? await readPulled(o.dir) : undefined;
          if (kept === undefined) throw e;
          process.stderr.write(`the config center is not answering (${(e as Error).message}); release ${kept.release} stays on disk\n`);
          release = kept.release;
        }
        let backoff = 1000;
        while (o.watch === true) {
          try {
            const next = await c.watch(service, env, release, 60, undefined, instance);
            backoff = 1000;
            if (next !== undefined) release = await once();
          } catch (e) {
            process.stderr.write(`watch: ${(e as Error).message}; again in ${backoff / 1000} s\n`);
            await new Promise((r) => setTimeout(r, backoff));
            backoff = Math.min(backoff * 2, 30_000);
          }
        }
      }),
    );
}

interface RolloutFlags {
  rollout?: string;
  deadline?: number;
  wait: boolean;
  json?: boolean;
}

interface GrayFlags {
  grayInstances?: number;
  grayPercent?: number;
  grayTasks?: string;
  grayAgents?: string;
}

function grayOf(o: GrayFlags): ReleaseOptions['gray'] {
  const given = [o.grayInstances, o.grayPercent, o.grayTasks, o.grayAgents].filter((x) => x !== undefined).length;
  if (given > 1) throw new InvalidArgumentError('one of --gray-instances, --gray-percent, --gray-tasks, --gray-agents');
  if (o.grayInstances !== undefined) return { instances: o.grayInstances };
  if (o.grayPercent !== undefined) return { percent: o.grayPercent };
  if (o.grayTasks !== undefined) return { taskIds: o.grayTasks.split(',').filter((t) => t !== '') };
  if (o.grayAgents !== undefined) return { agents: Object.fromEntries(o.grayAgents.split(',').filter((p) => p !== '').map(split)) };
  return undefined;
}

function rolloutOptions(o: RolloutFlags): ReleaseOptions {
  if (o.rollout !== undefined && o.rollout !== 'restart' && o.rollout !== 'hot' && o.rollout !== 'none') throw new InvalidArgumentError(`--rollout is restart, hot or none, not '${o.rollout}'`);
  return { ...(o.rollout !== undefined ? { rollout: o.rollout } : {}), ...(o.deadline !== undefined ? { deadlineSeconds: o.deadline } : {}) };
}

/** How often the CLI looks at a rollout it follows. */
const FOLLOW_MS = 500;

/**
 * Follows the rollout of `release` (if it has one and `wait`) to its end, showing its progress on
 * stderr (one line redrawn on a terminal, a line per change otherwise), and through the automatic
 * rollback a failure starts; a failure sets exit code 1. Answers the rollout as it ended.
 */
async function followRollout(c: ConfigClient, release: ConfigReleaseView, o: RolloutFlags): Promise<ConfigRolloutView | undefined> {
  if (release.rollout === undefined) return undefined;
  const own = release.rollout.id;
  if (!o.wait) return c.rollout(release.service, release.env, own);
  const tty = process.stderr.isTTY === true;
  let id: string | undefined = own;
  let shown = '';
  while (id !== undefined) {
    const r: ConfigRolloutView = await c.rollout(release.service, release.env, id);
    const seconds = Math.round(((r.endedAt ?? Date.now()) - r.startedAt) / 1000);
    const text = r.state === 'running' ? `rollout ${r.id} of ${r.appId}: ${r.progress.onRelease}/${r.progress.wanted} on release ${r.release} and healthy, ${seconds} s${r.progress.waitingFor !== undefined ? `; waiting for ${r.progress.waitingFor}` : ''}` : `rollout ${r.id} of ${r.appId}: ${r.state} after ${seconds} s${r.reason !== undefined ? `: ${r.reason}` : ''}`;
    if (text !== shown) {
      process.stderr.write(tty ? `\r\x1b[K${text}${r.state === 'running' ? '' : '\n'}` : `${text}\n`);
      shown = text;
    }
    if (r.state === 'running') {
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
      continue;
    }
    if (r.state === 'failed') process.exitCode = 1;
    // A failed rollout's way back is a rollout too: followed, so that the command ends when the environment is settled.
    id = r.rolledBackBy;
    if (id !== undefined) process.stderr.write(`going back to release ${r.previous ?? '?'}: rollout ${id}\n`);
  }
  return c.rollout(release.service, release.env, own);
}

function split(pair: string): [string, string] {
  const i = pair.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`'${pair}' is not key=value`);
  return [pair.slice(0, i), pair.slice(i + 1)];
}

function readValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

function whole(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`'${v}' is not a release version`);
  return Number(v);
}

function sh(command: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: 'inherit' });
    child.on('close', (code) => {
      if (code !== 0) process.stderr.write(`--exec: ${command} exited ${code}\n`);
      resolve();
    });
  });
}

async function run(f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (e instanceof ConfigRequestFailed) {
      process.stderr.write(`slipway: ${e.message}\n`);
      for (const d of e.details) process.stderr.write(`  ${d.field}: ${d.message}\n`);
    } else process.stderr.write(`slipway: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}

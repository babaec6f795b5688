import type { Command } from 'commander';
import { CiClient, type CiBuildSummary } from '../../sdk/ci-client.ts';
import { importCiConfig } from '../../server/ci-import.ts';

/**
 * `slipway ci build <job>` and `slipway ci jobs`: CI from the command line, through its REST API
 * (the server is `slipway up`'s port, or `slipway ci`'s). A build is triggered, its wait in the
 * queue shown live, its log streamed, and the exit code is the build's: 0 on success.
 */
export function registerCiClientCommands(ci: Command): void {
  // `ci`'s own --master would be taken silently by `ci build --master URL`, which then talked to
  // the default --server: say which option these commands take instead.
  ci.hook('preSubcommand', (parent, sub) => {
    if (parent.opts()['master'] !== undefined) sub.error(`error: \`slipway ci ${sub.name()}\` talks to CI, not to the master: give CI's URL with --server (with \`slipway up\`, the master's URL)`);
  });
  ci.command('build <job>')
    .description('trigger a build of a job, show its log as it runs, exit 0 if it succeeds')
    .option('--server <url>', 'CI (slipway up, or slipway ci)', 'http://127.0.0.1:5050')
    .option('--tag <tag>', 'build this tag')
    .option('--branch <branch>', "build this branch's head")
    .option('--commit <sha>', 'build this commit')
    .option('--no-follow', 'trigger and return at once')
    .action(async (job: string, o: { server: string; tag?: string; branch?: string; commit?: string; follow: boolean }) => {
      const client = new CiClient(o.server);
      try {
        const b = await client.trigger(job, { ...(o.tag !== undefined ? { tag: o.tag } : {}), ...(o.branch !== undefined ? { branch: o.branch } : {}), ...(o.commit !== undefined ? { commit: o.commit } : {}) });
        process.stderr.write(`${job} #${b.number}: ${b.status} (${b.cause.description}${b.commit !== undefined ? `, commit ${b.commit.slice(0, 12)}` : ''})\n`);
        if (!o.follow) return;
        let last = b;
        // While it waits, say why (live, on one line of stderr).
        let shown = '';
        while (last.status === 'queued') {
          const why = (await client.queue()).queue.find((q) => q.job === job && q.number === b.number)?.why ?? '';
          if (why !== shown) process.stderr.write(`  waiting: ${why}\n`);
          shown = why;
          await new Promise((r) => setTimeout(r, 250));
          last = await client.build(job, b.number);
        }
        if (last.status === 'running') await client.followLog(job, b.number, (t) => process.stdout.write(t));
        last = await client.build(job, b.number);
        report(last);
        process.exitCode = last.status === 'success' ? 0 : 1;
      } catch (e) {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exitCode = 1;
      }
    });

  ci.command('import')
    .description('restore jobs and executor specs from a CI mirror repository (git URL or path) into a running CI')
    .requiredOption('--from <git>', 'the mirror repository')
    .option('--server <url>', 'CI (slipway up, or slipway ci)', 'http://127.0.0.1:5050')
    .action(async (o: { from: string; server: string }) => {
      try {
        const r = await importCiConfig(o.from, o.server, (line) => process.stderr.write(`${line}\n`));
        process.stdout.write(`imported ${r.jobs.length} job(s) and ${r.executors.length} executor spec(s) from ${o.from}\n`);
      } catch (e) {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exitCode = 1;
      }
    });

  ci.command('jobs')
    .description('list the jobs and their last build')
    .option('--server <url>', 'CI (slipway up, or slipway ci)', 'http://127.0.0.1:5050')
    .action(async (o: { server: string }) => {
      try {
        const { jobs } = await new CiClient(o.server).jobs();
        for (const j of jobs) process.stdout.write(`${j.name}\t${j.repo}\tlast build ${j.lastBuild ?? '-'}\n`);
      } catch (e) {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exitCode = 1;
      }
    });
}

function report(b: CiBuildSummary): void {
  process.stderr.write(`${b.job} #${b.number}: ${b.status}${b.hostname !== undefined ? ` on ${b.hostname}` : ''}${b.error !== undefined ? ` (${b.error})` : ''}\n`);
  for (const s of b.steps) process.stderr.write(`  ${s.name}: ${s.status}${s.exitCode !== undefined ? ` (exit ${s.exitCode})` : ''}${s.durationMs !== undefined ? `, ${s.durationMs} ms` : ''}\n`);
  for (const a of b.artifacts) process.stderr.write(`  artifact: ${a}\n`);
}

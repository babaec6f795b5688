import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { percentile } from '../src/core/percentile.ts';
import { CI_BUILD_FINISHED, CiClient, type CiExecutorSummary } from '../src/sdk/ci-client.ts';
import { checkoutCommit, CI_EXECUTOR_MODULE, readFileAt, resolveRef } from '../src/server/ci-profile.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { ensureNodeImage } from '../src/sim/node-image.ts';
import { killTaskProcesses, removeDir, removeTaskCgroups, waitFor } from './apps-cluster.ts';
import { CiCluster } from './ci-cluster.ts';
import { CI_BENCH_TARGETS, type CiBenchOptions } from './ci-options.ts';

/**
 * `slipway bench ci`: CI's elastic executors over a real cluster.
 *
 * The cluster: one server process with a master and CI in it (as `slipway up` wires them, on the
 * in-process scheduler API: bench/ci-server-main.ts) and `agents` agents (`slipway agent`,
 * process containerizer, hostnames agent-0, agent-1, ...), each a process of its own with room
 * for several executors. Executors are what CI really launches: `node bin/slipway.js
 * ci-executor` tasks on the agents, started from offers. The jobs build a local git repository
 * the benchmark makes, with a `.slipway.yml` of one step that echoes (and a second pipeline file
 * whose one step runs in the busybox image).
 *
 * Every figure is "trigger → first step running": from the moment this process sends
 * `POST /ci/v1/jobs/{job}/builds` to the moment the build's first step runs. All processes share
 * this host's clock. What "running" is:
 * - process steps: the step's own clock. Its command is `echo "step running at $(date +%s%3N)"`:
 *   the time the step's shell ran, read back from the build log. (CI's STEP_STARTED time,
 *   build.steps[0].startedAt, is taken by the executor just before it spawns the shell; it is
 *   reported too, a few milliseconds earlier.)
 * - image steps: the Docker engine's `start` event of the step's container (timeNano), from the
 *   engine's event stream. STEP_STARTED there is taken before the engine is asked to create the
 *   container, so it would hide the container's start; it is reported apart.
 *
 * Parts:
 * - warm: an executor of the label is idle (idleTerminationSeconds 600); each sample is one
 *   build triggered after the previous one ended and its executor is idle again.
 * - cold: the label has idleTerminationSeconds 0 (an executor exits after each build) and
 *   maxExecutors 1; before each sample the benchmark waits until CI lists no executor of the
 *   label (its task ended) and then 1 s more, so every sample launches a new executor from an
 *   offer: REVIVE, the master's offer, ACCEPT/LAUNCH, the agent spawns `slipway ci-executor`,
 *   which starts, connects, says HELLO, gets the build, checks the commit out and runs the step.
 * - docker: as cold, with a pipeline whose step has `image: slipway-test/busybox` (made with
 *   `docker import` when missing, src/sim/busybox-image.ts). Skipped, with the reason, when
 *   no Docker engine answers.
 * - throughput: `builds` builds of one job (concurrency = builds) triggered at once (concurrent
 *   POSTs) on a label with no executor yet (maxExecutors = agents × executorsPerAgent):
 *   totalSeconds is from the first POST sent to the last build's finishedAt (CI's record);
 *   perAgent counts builds by the hostname of the agent that ran them. Then the same again on
 *   the now warm pool (totalSecondsWarmPool).
 * - profile: what the pieces cost on this machine, outside the cluster: the trigger's git work
 *   on the server (ls-remote, then a checkout of the commit to read the pipeline file, as
 *   CiFramework.trigger does), the executor's checkout, and the start-up of `node
 *   bin/slipway.js ci-executor --help` (node + tsx + loading the command line).
 * Each sample of the warm and cold parts is broken down with the times CI and its processes
 * record (build.queuedAt, the executor's launchedAt, the birth of the task's sandbox files, the
 * build's startedAt = dispatch to the executor, the executor's own log line on receiving the
 * build, STEP_STARTED, the step's clock).
 *
 * Every process runs on this one machine, and other work on it shows in every figure: the load
 * averages at the start and the end are part of the result.
 */

export interface StartBreakdown {
  /** POST sent → its 201 (CI's trigger: git ls-remote, a checkout to read the pipeline file, the store). */
  triggerMs: number;
  /** 201 → CI launches an executor (REVIVE, the master's offer, ACCEPT). Cold only. */
  offerMs?: number;
  /** launch → the agent opens the task's sandbox files and spawns it. Cold only. */
  agentLaunchMs?: number;
  /** spawn → the executor said HELLO and CI dispatched the build (node + tsx + `slipway ci-executor` start-up, WebSocket). Cold only. */
  executorStartMs?: number;
  /** 201 → CI dispatched the build to the idle executor. Warm only. */
  dispatchMs?: number;
  /** dispatch → the executor logs that it got the build (store write, the BUILD frame). */
  buildMessageMs?: number;
  /** the executor got the build → STEP_STARTED (git init, fetch, checkout of the commit). */
  checkoutMs?: number;
  /** STEP_STARTED → the step running (the shell's clock; for image steps the container's start). */
  stepSpawnMs?: number;
}

export interface StartSample {
  build: number;
  /** Trigger → first step running (see the file comment). */
  ms: number;
  /** Trigger → CI's STEP_STARTED (build.steps[0].startedAt). */
  stepStartedMs: number;
  hostname: string;
  breakdown: StartBreakdown;
}

export interface StartStats {
  samples: StartSample[];
  p50Ms: number;
  minMs: number;
  maxMs: number;
  stepStartedP50Ms: number;
  /** The median of each part of the breakdown. */
  breakdownP50: Record<string, number>;
}

export interface ThroughputRun {
  builds: number;
  /** First POST sent → the last build's finishedAt. */
  totalSeconds: number;
  /** First POST sent → every POST answered. */
  triggersAnsweredSeconds: number;
  /** First POST sent → the first build finished. */
  firstFinishedSeconds: number;
  statuses: Record<string, number>;
  perAgent: Record<string, number>;
  maxAgentShare: number;
  /** Executors that ran these builds, per agent. */
  executorsPerAgent: Record<string, number>;
  /** Trigger → first step running (STEP_STARTED), median and max over the builds. */
  startP50Ms: number;
  startMaxMs: number;
}

export interface CiBenchResult {
  builds: number;
  agents: number;
  coldStartP50Ms: number | null;
  coldStartDockerP50Ms: number | null;
  /** Cold start of a process step on an executor that is itself a container (executor spec containerizer docker). */
  coldStartDockerExecutorP50Ms: number | null;
  warmStartP50Ms: number | null;
  totalSeconds: number | null;
  perAgent: Record<string, number> | null;
  /** How "first step running" is timed. */
  timing: { process: string; docker: string };
  warm: StartStats | null;
  cold: StartStats | null;
  docker: StartStats | null;
  dockerExecutor: StartStats | null;
  dockerSkipped: string | null;
  /** The very first build of the fresh server (a cold executor, the server's first request of each kind): not a sample. */
  firstBuildMs: number | null;
  throughput: ThroughputRun | null;
  throughputWarmPool: ThroughputRun | null;
  profile: {
    /** `git ls-remote` + checkout of the commit + `git show` of the pipeline file, as CI's trigger does. */
    triggerGitP50Ms: number;
    resolveRefP50Ms: number;
    readPipelineFileP50Ms: number;
    /** The executor's checkout of the commit (git init, remote add, fetch --depth 1, checkout). */
    checkoutP50Ms: number;
    /** `node bin/slipway.js ci-executor --help`, to its exit. */
    executorCommandStartP50Ms: number;
    /** `node --import tsx` of the executor module alone (what a lazily loading command line would cost). */
    executorModuleStartP50Ms: number;
  } | null;
  settings: {
    executorCpus: number;
    executorMem: number;
    executorsPerAgent: number;
    agentResources: string;
    coldSamples: number;
    dockerSamples: number;
    warmSamples: number;
  };
  machine: { cpus: number; cpuModel: string; memoryGb: number; node: string; platform: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  targets: typeof CI_BENCH_TARGETS;
}

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

const PROCESS_PIPELINE = ['steps:', '  - name: echo', '    commands:', `      - 'echo "step running at $(date +%s%3N)"'`, ''].join('\n');
const dockerPipeline = (image: string) => ['steps:', '  - name: echo', `    image: ${image}`, '    commands:', `      - echo hello from busybox`, ''].join('\n');
const DOCKER_PIPELINE_FILE = '.slipway-docker.yml';

const median = (values: number[]) => percentile(values, 50);
const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const loadAverage = () => os.loadavg().map((l) => round(l, 2));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runCiBench(o: CiBenchOptions, progress: (line: string) => void = () => undefined): Promise<CiBenchResult> {
  const skip = new Set(o.skip);
  const cpuList = os.cpus();
  // Room for the throughput label's executors, plus the warm executor (idle for the whole run)
  // and one cold or Docker executor at a time, on any agent.
  const slots = o.executorsPerAgent + 2;
  const agentResources = `cpus:${round(slots * o.executorCpus + 0.5, 2)};mem:${slots * o.executorMem + 512};disk:100000`;
  const result: CiBenchResult = {
    builds: o.builds,
    agents: o.agents,
    coldStartP50Ms: null,
    coldStartDockerP50Ms: null,
    coldStartDockerExecutorP50Ms: null,
    warmStartP50Ms: null,
    totalSeconds: null,
    perAgent: null,
    timing: {
      process: "POST sent → the step's shell running (its own `date +%s%3N`, from the build log); STEP_STARTED reported apart",
      docker: "POST sent → the Docker engine's `start` event of the step's container (timeNano); STEP_STARTED reported apart",
    },
    warm: null,
    cold: null,
    docker: null,
    dockerExecutor: null,
    dockerSkipped: null,
    firstBuildMs: null,
    throughput: null,
    throughputWarmPool: null,
    profile: null,
    settings: { executorCpus: o.executorCpus, executorMem: o.executorMem, executorsPerAgent: o.executorsPerAgent, agentResources, coldSamples: o.coldSamples, dockerSamples: o.dockerSamples, warmSamples: o.warmSamples },
    machine: { cpus: cpuList.length, cpuModel: cpuList[0]?.model.trim() ?? 'unknown', memoryGb: round(os.totalmem() / 2 ** 30, 1), node: process.version, platform: `${os.platform()} ${os.release()}`, loadAverageAtStart: loadAverage(), loadAverageAtEnd: [] },
    targets: CI_BENCH_TARGETS,
  };

  const dir = mkdtempSync(join(os.tmpdir(), 'slipway-bench-ci-'));
  // Job names carry this run's id: the step containers' labels name the job, and the clean-up
  // removes only this run's containers from a Docker engine other work may share.
  const runId = dir.slice(-6).toLowerCase().replace(/[^a-z0-9]/g, 'x');
  const jobs = { warm: `bench-warm-${runId}`, cold: `bench-cold-${runId}`, docker: `bench-docker-${runId}`, dockerExecutor: `bench-dx-${runId}`, throughput: `bench-tp-${runId}` };
  let cluster: CiCluster | undefined;
  let docker: Docker | undefined;
  let dockerEvents: DockerStarts | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      dockerEvents?.close();
      await cluster?.close().catch(() => undefined);
      await killTaskProcesses(dir);
      removeTaskCgroups(dir);
      if (docker !== undefined) await removeContainers(docker, Object.values(jobs), dir);
      removeDir(dir);
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${signal}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const repo = join(dir, 'repo');
    let image: string | undefined;
    let nodeImage: string | undefined;
    if (!skip.has('docker') || !skip.has('docker-executor')) {
      const engine = await dockerEngine();
      if (typeof engine === 'string') result.dockerSkipped = engine;
      else {
        docker = engine;
        try {
          image = await ensureBusyboxImage(docker);
          if (!skip.has('docker-executor')) nodeImage = await ensureNodeImage(docker);
        } catch (e) {
          result.dockerSkipped = `no image to run the step or the executor in: ${e instanceof Error ? e.message : String(e)}`;
          image = undefined;
          nodeImage = undefined;
        }
      }
      if (result.dockerSkipped !== null) progress(`docker: skipped (${result.dockerSkipped})`);
    }
    makeRepo(repo, image);

    if (!skip.has('profile')) {
      progress('profile: git and executor start-up on this machine, outside the cluster...');
      result.profile = await profile(repo, dir);
      progress(
        `  trigger git ${result.profile.triggerGitP50Ms} ms (ls-remote ${result.profile.resolveRefP50Ms}, pipeline file ${result.profile.readPipelineFileP50Ms}), checkout ${result.profile.checkoutP50Ms} ms, ` +
          `\`slipway ci-executor --help\` ${result.profile.executorCommandStartP50Ms} ms (executor module alone ${result.profile.executorModuleStartP50Ms} ms)`,
      );
    }

    progress(`starting a master with CI and ${o.agents} agents (${agentResources} each)...`);
    cluster = await CiCluster.start({ dir, agents: o.agents, agentResources, containerizers: nodeImage !== undefined ? 'process,docker' : 'process', log: progress });
    const api = new CiClient(cluster.url);
    const spec = (maxExecutors: number, idleTerminationSeconds: number) => ({ cpus: o.executorCpus, mem: o.executorMem, disk: 0, containerizer: 'process', maxExecutors, idleTerminationSeconds });
    await api.putExecutorSpec('bench-warm', spec(1, 600));
    await api.putExecutorSpec('bench-cold', spec(1, 0));
    await api.putExecutorSpec('bench-docker', spec(1, 0));
    if (nodeImage !== undefined) {
      // The executor in a container of an image with node and git; the repository mounted for its checkout.
      await api.putExecutorSpec('bench-docker-executor', { ...spec(1, 0), containerizer: 'docker', image: nodeImage, volumes: [{ containerPath: repo, hostPath: repo, mode: 'RO' }] });
      await api.putJob(jobs.dockerExecutor, { repo, executor: 'bench-docker-executor' });
    }
    await api.putExecutorSpec('bench-tp', spec(o.agents * o.executorsPerAgent, 600));
    await api.putJob(jobs.warm, { repo, executor: 'bench-warm' });
    await api.putJob(jobs.cold, { repo, executor: 'bench-cold' });
    if (image !== undefined) await api.putJob(jobs.docker, { repo, executor: 'bench-docker', pipelineFile: DOCKER_PIPELINE_FILE });
    await api.putJob(jobs.throughput, { repo, executor: 'bench-tp', concurrency: Math.min(o.builds, 1000) });

    // The fresh server's first build: lazy compilation of every route and code path on the way,
    // and the warm label's executor. Not a sample.
    progress('first build (cold executor of the warm label; not a sample)...');
    const first = await sampleStart(api, cluster, jobs.warm, 'cold', undefined);
    result.firstBuildMs = first.ms;
    progress(`  ${first.ms} ms to its step running`);

    if (!skip.has('warm')) {
      progress(`warm: ${o.warmSamples} builds, each with the idle executor of the label...`);
      const samples: StartSample[] = [];
      for (let i = 0; i < o.warmSamples; i++) {
        await waitFor(async () => ((await api.executors()).executors.some((e) => e.label === 'bench-warm' && e.state === 'idle') ? true : undefined), 'the warm executor to be idle', 30_000, () => cluster?.failedProcess());
        await sleep(200);
        samples.push(await sampleStart(api, cluster, jobs.warm, 'warm', undefined));
      }
      result.warm = stats(samples);
      result.warmStartP50Ms = result.warm.p50Ms;
      progress(`  p50 ${result.warm.p50Ms} ms (${samples.map((s) => s.ms).join(', ')}); ${formatBreakdown(result.warm.breakdownP50)}`);
    }

    if (!skip.has('cold')) {
      progress(`cold: ${o.coldSamples} builds, each launching its executor from an offer...`);
      result.cold = await coldSamples(api, cluster, jobs.cold, 'bench-cold', o.coldSamples, undefined);
      result.coldStartP50Ms = result.cold.p50Ms;
      progress(`  p50 ${result.cold.p50Ms} ms (${result.cold.samples.map((s) => s.ms).join(', ')}); ${formatBreakdown(result.cold.breakdownP50)}`);
    }

    if (!skip.has('docker') && docker !== undefined && image !== undefined) {
      progress(`docker: ${o.dockerSamples} builds of an image step (${image}), each launching its executor from an offer...`);
      dockerEvents = await DockerStarts.open(docker, jobs.docker);
      result.docker = await coldSamples(api, cluster, jobs.docker, 'bench-docker', o.dockerSamples, dockerEvents);
      result.coldStartDockerP50Ms = result.docker.p50Ms;
      dockerEvents.close();
      dockerEvents = undefined;
      progress(`  p50 ${result.docker.p50Ms} ms (${result.docker.samples.map((s) => s.ms).join(', ')}); ${formatBreakdown(result.docker.breakdownP50)}`);
    }

    if (!skip.has('docker-executor') && nodeImage !== undefined) {
      progress(`docker executor: ${o.dockerSamples} builds of a process step, each on an executor launched in a container of ${nodeImage}...`);
      result.dockerExecutor = await coldSamples(api, cluster, jobs.dockerExecutor, 'bench-docker-executor', o.dockerSamples, undefined);
      result.coldStartDockerExecutorP50Ms = result.dockerExecutor.p50Ms;
      progress(`  p50 ${result.dockerExecutor.p50Ms} ms (${result.dockerExecutor.samples.map((s) => s.ms).join(', ')}); ${formatBreakdown(result.dockerExecutor.breakdownP50)}`);
    }

    if (!skip.has('throughput')) {
      progress(`throughput: ${o.builds} builds triggered at once, no executor of the label yet (up to ${o.agents * o.executorsPerAgent})...`);
      result.throughput = await throughput(api, jobs.throughput, o.builds, 0, progress);
      result.totalSeconds = result.throughput.totalSeconds;
      result.perAgent = result.throughput.perAgent;
      progress(`  ${result.throughput.totalSeconds} s; per agent ${JSON.stringify(result.throughput.perAgent)}; executors ${JSON.stringify(result.throughput.executorsPerAgent)}`);
      progress(`throughput: ${o.builds} builds more, on the warm pool...`);
      result.throughputWarmPool = await throughput(api, jobs.throughput, o.builds, o.builds, progress);
      progress(`  ${result.throughputWarmPool.totalSeconds} s; per agent ${JSON.stringify(result.throughputWarmPool.perAgent)}`);
    }

    progress('stopping the cluster...');
    await cluster.close();
    cluster = undefined;
    result.machine.loadAverageAtEnd = loadAverage();
    return result;
  } catch (e) {
    // The temp dir and its logs are about to go: keep the ends of the logs in the error.
    const logs = cluster !== undefined ? [cluster.server, ...cluster.agents].map((p) => `--- ${p.name} (end of its log) ---\n${p.logTail(10)}`).join('\n') : '';
    if (e instanceof Error && logs !== '') e.message += `\n${logs}`;
    throw e;
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

// ---------------------------------------------------------------------------------------------
// The repository
// ---------------------------------------------------------------------------------------------

function makeRepo(repo: string, image: string | undefined): void {
  mkdirSync(repo, { recursive: true });
  const env = { ...process.env, GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'bench@localhost', GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'bench@localhost' };
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  git('init', '--quiet', '--initial-branch=main');
  writeFileSync(join(repo, '.slipway.yml'), PROCESS_PIPELINE);
  writeFileSync(join(repo, DOCKER_PIPELINE_FILE), dockerPipeline(image ?? 'slipway-test/busybox:latest'));
  writeFileSync(join(repo, 'README.md'), 'A repository of `slipway bench ci`: one step that echoes.\n');
  git('add', '.');
  git('commit', '--quiet', '-m', 'bench');
}

// ---------------------------------------------------------------------------------------------
// Start samples
// ---------------------------------------------------------------------------------------------

/** Cold samples: before each, no executor of the label exists (its task ended), then 1 s of quiet. */
async function coldSamples(api: CiClient, cluster: CiCluster, job: string, label: string, n: number, events: DockerStarts | undefined): Promise<StartStats> {
  const samples: StartSample[] = [];
  for (let i = 0; i < n; i++) {
    await waitFor(async () => ((await api.executors()).executors.some((e) => e.label === label) ? undefined : true), `no executor of label ${label}`, 60_000, () => cluster.failedProcess());
    await sleep(1000);
    samples.push(await sampleStart(api, cluster, job, 'cold', events));
  }
  return stats(samples);
}

/**
 * One build, from the POST to its end; answers the trigger → first step running time and its
 * breakdown. While it waits, it keeps every executor record of the build's label it sees (a cold
 * executor is gone soon after its build).
 */
async function sampleStart(api: CiClient, cluster: CiCluster, job: string, kind: 'warm' | 'cold', events: DockerStarts | undefined): Promise<StartSample> {
  const seen = new Map<string, CiExecutorSummary>();
  const t0 = Date.now();
  const { number } = await api.trigger(job);
  const t1 = Date.now();
  const build = await waitFor(
    async () => {
      for (const e of (await api.executors()).executors) seen.set(e.id, e);
      const b = await api.build(job, number);
      return CI_BUILD_FINISHED.has(b.status) ? b : undefined;
    },
    `${job} #${number} to end`,
    120_000,
    () => cluster.failedProcess(),
    25,
  );
  if (build.status !== 'success') throw new Error(`bench: ${job} #${number} ended ${build.status}: ${build.error ?? ''}\n${await api.log(job, number)}`);
  const stepStarted = build.steps[0]?.startedAt;
  if (stepStarted === undefined || build.startedAt === undefined || build.executorId === undefined) throw new Error(`bench: ${job} #${number} has no start times: ${JSON.stringify(build)}`);
  let running: number | undefined;
  if (events !== undefined) {
    running = await events.startOf(number, 5000);
  } else {
    const m = /step running at (\d{13})/.exec(await api.log(job, number));
    running = m !== null ? Number(m[1]) : undefined;
  }
  const at = running ?? stepStarted;
  const executor = seen.get(build.executorId);
  const sandbox = executor !== undefined ? cluster.sandboxOf(executor.taskId) : undefined;
  const received = sandbox !== undefined ? buildReceivedAt(sandbox, job, number) : undefined;
  const breakdown: StartBreakdown = { triggerMs: t1 - t0 };
  if (kind === 'cold') {
    if (executor !== undefined) breakdown.offerMs = executor.launchedAt - t1;
    const spawned = sandbox !== undefined ? sandboxBirth(sandbox) : undefined;
    if (executor !== undefined && spawned !== undefined) breakdown.agentLaunchMs = round(spawned - executor.launchedAt, 1);
    if (spawned !== undefined) breakdown.executorStartMs = round(build.startedAt - spawned, 1);
  } else {
    breakdown.dispatchMs = build.startedAt - t1;
  }
  if (received !== undefined) {
    breakdown.buildMessageMs = received - build.startedAt;
    breakdown.checkoutMs = stepStarted - received;
  }
  if (running !== undefined) breakdown.stepSpawnMs = round(running - stepStarted, 1);
  return { build: number, ms: round(at - t0, 1), stepStartedMs: stepStarted - t0, hostname: build.hostname ?? '?', breakdown };
}

/**
 * When the agent created the task's sandbox files (just before it spawned the task). File times
 * come from the kernel's coarse clock: a few milliseconds off either way.
 */
function sandboxBirth(sandbox: string): number | undefined {
  try {
    const st = statSync(join(sandbox, 'stdout'));
    return st.birthtimeMs > 0 ? st.birthtimeMs : undefined;
  } catch {
    return undefined;
  }
}

/** The executor's own log line (stderr of its task, ISO time first) on receiving the build. */
function buildReceivedAt(sandbox: string, job: string, number: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(sandbox, 'stderr'), 'utf8');
  } catch {
    return undefined;
  }
  const needle = `build ${job} #${number}: checking out`;
  for (const line of text.split('\n')) {
    if (!line.includes(needle)) continue;
    const t = Date.parse(line.slice(0, line.indexOf(' ')));
    if (Number.isFinite(t)) return t;
  }
  return undefined;
}

function stats(samples: StartSample[]): StartStats {
  const ms = samples.map((s) => s.ms);
  const parts = new Map<string, number[]>();
  for (const s of samples) for (const [k, v] of Object.entries(s.breakdown)) if (typeof v === 'number') parts.set(k, [...(parts.get(k) ?? []), v]);
  return {
    samples,
    p50Ms: median(ms),
    minMs: Math.min(...ms),
    maxMs: Math.max(...ms),
    stepStartedP50Ms: median(samples.map((s) => s.stepStartedMs)),
    breakdownP50: Object.fromEntries([...parts].map(([k, v]) => [k, round(median(v), 1)])),
  };
}

// ---------------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------------

async function throughput(api: CiClient, job: string, n: number, firstNumberBefore: number, progress: (line: string) => void): Promise<ThroughputRun> {
  const t0 = Date.now();
  const answered = await Promise.all(
    Array.from({ length: n }, async () => {
      await api.trigger(job);
      return Date.now();
    }),
  );
  const triggersAnswered = Math.max(...answered);
  let lastReport = Date.now();
  const builds = await waitFor(
    async () => {
      const list = (await api.builds(job, { limit: Math.min(n, 1000) })).builds.filter((b) => b.number > firstNumberBefore);
      const done = list.filter((b) => CI_BUILD_FINISHED.has(b.status)).length;
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        progress(`  ${done}/${n} finished after ${round((Date.now() - t0) / 1000, 1)} s`);
      }
      return list.length === n && done === n ? list : undefined;
    },
    `${n} builds of ${job} to end`,
    600_000,
    undefined,
    100,
  );
  const statuses: Record<string, number> = {};
  const perAgent: Record<string, number> = {};
  const executors = new Map<string, string>();
  for (const b of builds) {
    statuses[b.status] = (statuses[b.status] ?? 0) + 1;
    const host = b.hostname ?? '(none)';
    perAgent[host] = (perAgent[host] ?? 0) + 1;
    if (b.executorId !== undefined) executors.set(b.executorId, host);
  }
  const executorsPerAgent: Record<string, number> = {};
  for (const host of executors.values()) executorsPerAgent[host] = (executorsPerAgent[host] ?? 0) + 1;
  const finished = builds.map((b) => b.finishedAt ?? t0);
  const starts = builds.filter((b) => b.steps[0]?.startedAt !== undefined).map((b) => b.steps[0]!.startedAt! - t0);
  return {
    builds: n,
    totalSeconds: round((Math.max(...finished) - t0) / 1000),
    triggersAnsweredSeconds: round((triggersAnswered - t0) / 1000),
    firstFinishedSeconds: round((Math.min(...finished) - t0) / 1000),
    statuses,
    perAgent: sortKeys(perAgent),
    maxAgentShare: round(Math.max(...Object.values(perAgent)) / n),
    executorsPerAgent: sortKeys(executorsPerAgent),
    startP50Ms: median(starts),
    startMaxMs: Math.max(...starts),
  };
}

const sortKeys = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1)));

// ---------------------------------------------------------------------------------------------
// Profile
// ---------------------------------------------------------------------------------------------

async function profile(repo: string, dir: string): Promise<NonNullable<CiBenchResult['profile']>> {
  const runs = 5;
  const resolve: number[] = [];
  const read: number[] = [];
  const checkout: number[] = [];
  for (let i = 0; i < runs; i++) {
    const a = performance.now();
    const commit = await resolveRef(repo, {});
    const b = performance.now();
    if (commit === undefined) throw new Error('bench: the repository has no HEAD');
    await readFileAt(repo, commit, '.slipway.yml', join(dir, 'profile', `scratch-${i}`));
    const c = performance.now();
    await checkoutCommit(repo, commit, join(dir, 'profile', `workspace-${i}`));
    const d = performance.now();
    resolve.push(b - a);
    read.push(c - b);
    checkout.push(d - c);
  }
  const command: number[] = [];
  const module: number[] = [];
  for (let i = 0; i < 3; i++) {
    command.push(await timeProcess([BIN, 'ci-executor', '--help']));
    module.push(await timeProcess(['--import', 'tsx', '-e', `await import(${JSON.stringify(CI_EXECUTOR_MODULE)})`]));
  }
  const r1 = (v: number[]) => round(median(v), 1);
  return {
    triggerGitP50Ms: r1(resolve.map((v, i) => v + read[i]!)),
    resolveRefP50Ms: r1(resolve),
    readPipelineFileP50Ms: r1(read),
    checkoutP50Ms: r1(checkout),
    executorCommandStartP50Ms: r1(command),
    executorModuleStartP50Ms: r1(module),
  };
}

async function timeProcess(args: string[]): Promise<number> {
  const t = performance.now();
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`bench: node ${args.join(' ')} exited ${code}`);
  return performance.now() - t;
}

// ---------------------------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------------------------

/** The engine, or why there is none. */
async function dockerEngine(): Promise<Docker | string> {
  const docker = new Docker();
  try {
    await Promise.race([docker.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref())]);
    return docker;
  } catch (e) {
    return `no Docker engine answers at ${process.env['DOCKER_HOST'] ?? '/var/run/docker.sock'}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** The engine's `start` events of one job's step containers: build number → the start time (ms, from timeNano). */
class DockerStarts {
  private readonly starts = new Map<number, number>();
  private constructor(private readonly stream: NodeJS.ReadableStream & { destroy?: () => void }) {
    let buffer = '';
    stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line === '') continue;
        try {
          const e = JSON.parse(line) as { Action?: string; timeNano?: number; Actor?: { Attributes?: Record<string, string> } };
          const n = Number(e.Actor?.Attributes?.['slipway.ci.build_number']);
          if (e.Action === 'start' && Number.isSafeInteger(n) && typeof e.timeNano === 'number' && !this.starts.has(n)) this.starts.set(n, Math.round(e.timeNano / 1e5) / 10);
        } catch {
          // Not an event.
        }
      }
    });
    stream.on('error', () => undefined);
  }

  static async open(docker: Docker, job: string): Promise<DockerStarts> {
    const stream = (await docker.getEvents({ filters: JSON.stringify({ type: ['container'], event: ['start'], label: [`slipway.ci.job=${job}`] }) })) as NodeJS.ReadableStream;
    return new DockerStarts(stream);
  }

  async startOf(number: number, timeoutMs: number): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (!this.starts.has(number) && Date.now() < deadline) await sleep(20);
    return this.starts.get(number);
  }

  close(): void {
    this.stream.destroy?.();
  }
}

/** Removes this run's step containers (a build cut short leaves its container behind). */
async function removeContainers(docker: Docker, jobs: string[], dir: string): Promise<void> {
  try {
    for (const job of jobs) {
      const found = await docker.listContainers({ all: true, filters: { label: [`slipway.ci.job=${job}`] } });
      await Promise.all(found.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    }
    // Executors in containers: tasks of this run's agents, whose sandboxes are under its dir.
    const tasks = await docker.listContainers({ all: true, filters: { label: ['slipway.sandbox'] } });
    const ours = tasks.filter((c) => (c.Labels['slipway.sandbox'] ?? '').startsWith(`${dir}/`));
    await Promise.all(ours.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  } catch {
    // The engine went away: nothing to remove through it.
  }
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

const BREAKDOWN_WORDS: Record<string, string> = {
  triggerMs: 'trigger POST',
  offerMs: 'offer → launch',
  agentLaunchMs: 'agent spawn',
  executorStartMs: 'executor start → HELLO → dispatch',
  dispatchMs: 'dispatch',
  buildMessageMs: 'BUILD frame',
  checkoutMs: 'checkout',
  stepSpawnMs: 'step start',
};

function formatBreakdown(b: Record<string, number>): string {
  return Object.entries(b)
    .map(([k, v]) => `${BREAKDOWN_WORDS[k] ?? k} ${v}`)
    .join(', ');
}

export function formatCiBench(r: CiBenchResult): string {
  const t = r.targets;
  const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');
  const lines = [`slipway bench ci: ${r.agents} agents (${r.settings.agentResources} each), executors of ${r.settings.executorCpus} cpus / ${r.settings.executorMem} MB`];
  const start = (name: string, s: StartStats | null, target: number, note: string) => {
    if (s === null) return;
    lines.push(`  ${name.padEnd(22)} p50 ${String(s.p50Ms).padStart(5)} ms  (min ${s.minMs}, max ${s.maxMs}; ${s.samples.length} samples; STEP_STARTED p50 ${s.stepStartedP50Ms} ms)  target ≤ ${target} ms: ${mark(s.p50Ms <= target)}`);
    lines.push(`  ${''.padEnd(22)} p50 of each part (ms): ${formatBreakdown(s.breakdownP50)}${note}`);
  };
  start('warm start', r.warm, t.warmStartP50Ms, '');
  start('cold start (process)', r.cold, t.coldStartP50Ms, '');
  if (r.docker === null && r.dockerSkipped !== null) lines.push(`  cold start (Docker)    skipped: ${r.dockerSkipped}`);
  start('cold start (Docker)', r.docker, t.coldStartDockerP50Ms, '');
  start('cold, Docker executor', r.dockerExecutor, t.coldStartDockerP50Ms, ' (a process step in an executor that is a container)');
  if (r.firstBuildMs !== null) lines.push(`  first build of the fresh server: ${r.firstBuildMs} ms to its step running (not a sample)`);
  const tp = (name: string, x: ThroughputRun | null, withTarget: boolean) => {
    if (x === null) return;
    lines.push(
      `  ${name.padEnd(22)} ${x.builds} builds in ${x.totalSeconds} s${withTarget ? ` (target ≤ ${t.totalSeconds} s: ${mark(x.totalSeconds <= t.totalSeconds)})` : ''}; all POSTs answered after ${x.triggersAnsweredSeconds} s; first done after ${x.firstFinishedSeconds} s; ${JSON.stringify(x.statuses)}`,
    );
    lines.push(`  ${''.padEnd(22)} per agent ${JSON.stringify(x.perAgent)} (largest share ${x.maxAgentShare}${withTarget ? `, target ≤ ${t.maxAgentShare}: ${mark(x.maxAgentShare <= t.maxAgentShare)}` : ''}); executors ${JSON.stringify(x.executorsPerAgent)}; start p50 ${x.startP50Ms} ms, max ${x.startMaxMs} ms`);
  };
  tp(`${r.builds} builds at once`, r.throughput, true);
  tp('again, warm pool', r.throughputWarmPool, false);
  if (r.profile !== null) {
    const p = r.profile;
    lines.push(
      `  profile (p50, ms)      trigger's git ${p.triggerGitP50Ms} (ls-remote ${p.resolveRefP50Ms} + pipeline file checkout ${p.readPipelineFileP50Ms}); executor checkout ${p.checkoutP50Ms}; ` +
        `\`node bin/slipway.js ci-executor --help\` ${p.executorCommandStartP50Ms}; executor module alone ${p.executorModuleStartP50Ms}`,
    );
  }
  lines.push(`  timing: process steps: ${r.timing.process}; image steps: ${r.timing.docker}`);
  lines.push(`  machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGb} GB, node ${r.machine.node}; load average ${r.machine.loadAverageAtStart.join(' ')} at the start, ${r.machine.loadAverageAtEnd.join(' ')} at the end`);
  return lines.join('\n');
}

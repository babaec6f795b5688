import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { up, type Up } from '../src/server/up.ts';
import { ensureBusyboxImage } from '../src/sim/busybox-image.ts';
import { runAuthorization, runToken } from '../src/sim/bench-token.ts';
import { killProcessesUnder } from '../src/sim/sandbox-processes.ts';
import { DELIVER_BENCH_DEFAULTS, DELIVER_BENCH_TARGETS, type DeliverBenchOptions } from './deliver-options.ts';

/**
 * `slipway bench deliver` (issue 14, section 4): delivery on a real `slipway up` (in this process:
 * the master, its agent with the process and docker containerizers, CI with a process executor
 * on the engine's socket, delivery), the real Docker engine and the registry on 127.0.0.1:5000.
 * Every time is taken from the client (polls every 50 ms) and, where the server records one, from
 * its own records (a build's steps, a promotion's createdAt/startedAt/healthyAt/endedAt): both
 * clocks are this machine's.
 *
 * - tag: a git tag, and the generic webhook (`POST /ci/v1/hooks/shop` with X-Slipway-Token) of a
 *   job whose pipeline writes a Dockerfile FROM the local busybox image (prepare), builds and
 *   pushes it (build-image) and deploys it to dev (deploy), until every instance of /dev/shop
 *   runs the new digest and is healthy. Split by the build's steps, the log's `+ docker push`
 *   line (followed as it is written, `?follow=true`) and the promotion's times.
 * - promote: the same release promoted to demo by `POST .../promotions` (no rebuild).
 * - rollback: a tag whose image never serves its health check, dev's `deadlineSeconds` set short;
 *   from the promotion's deadline (startedAt + deadlineSeconds) to /dev/shop back on the previous
 *   digest with every instance healthy, and to the promotion `failed`.
 * - parallel: `services` delivery services (each /dev/<name>), a release each of the same digest,
 *   every promotion POSTed at once; twice: a first one that creates the apps, then a second
 *   release of each (same digest, another version: a new definition) that upgrades them. Checks
 *   that every POST answers 201, every promotion ends `succeeded`, each has a deployment of its
 *   own, GET /v2/deployments (polled throughout) shows no other deployment of those apps, and
 *   each app ends with one version per round.
 *
 * Everything it starts is removed at the end: the apps, their containers, the images it built in
 * the engine, the server, its processes and the temp dir. The images pushed stay in the registry
 * (Debian's docker-registry deletes nothing without its storage's garbage collection).
 */

export interface DeliverBenchResult {
  machine: { cpus: number; load: number[]; node: string; date: string };
  instances: number;
  targets: typeof DELIVER_BENCH_TARGETS;
  tag: TagFigures | null;
  promote: PromoteFigures | null;
  rollback: RollbackFigures | null;
  parallel: ParallelFigures | null;
  /** Why a part was not run or gave up, by part. */
  notes: Record<string, string>;
}

interface TagFigures {
  /** Webhook POST sent → the client saw every instance on the new digest and healthy. */
  totalSeconds: number;
  /** Each piece in seconds; they add up to about `totalSeconds` (the rest: `otherSeconds`). */
  split: { trigger: number; checkout: number; prepare: number; build: number; push: number; release: number; deploy: number; health: number; other: number };
  /** From the client seeing every instance healthy to the promotion's healthyAt (delivery looks every 500 ms; negative: it saw it first). */
  deliveryNoticedSeconds: number;
  /** Whether an executor was idle when the webhook came (no executor on a fresh `slipway up`). */
  executor: 'cold';
  digest: string;
  promotion: string;
}

interface PromoteFigures {
  /** POST → the client saw every instance of /demo/shop on the digest and healthy. */
  totalSeconds: number;
  /** The promotion's own createdAt → healthyAt. */
  serverSeconds: number;
  /** createdAt → startedAt (preflight, the state stored, the deployment asked). */
  startSeconds: number;
}

interface RollbackFigures {
  deadlineSeconds: number;
  /** From the deadline to the client seeing the app back on the previous digest, every instance healthy. */
  appBackAfterDeadlineSeconds: number;
  /** From the deadline to the promotion's endedAt (`failed`). */
  failedAfterDeadlineSeconds: number;
  /** From the deadline to the client seeing it `failed`. */
  seenFailedAfterDeadlineSeconds: number;
  reason: string;
  /** Instances the app runs after the rollback that were not there before the bad release: the rollback's deployment replaced the healthy ones too. */
  instancesReplaced: number;
}

interface ParallelRound {
  /** All POSTs sent at once → the last promotion seen ended. */
  wallSeconds: number;
  /** The last POST's answer (all sent at once, answered one after the other). */
  postsAnsweredSeconds: number;
  statuses: Record<string, number>;
  succeeded: number;
  failed: string[];
  /** Distinct deployment ids of the promotions (one each: = services). */
  deployments: number;
  /** Deployments GET /v2/deployments showed on these apps that are no promotion's. */
  strayDeployments: string[];
  /** Apps whose versions are not one per round. */
  wrongVersions: string[];
  /** promotion createdAt → healthyAt, p50 and max (seconds). */
  healthyP50Seconds: number;
  healthyMaxSeconds: number;
}

interface ParallelFigures {
  services: number;
  create: ParallelRound;
  upgrade: ParallelRound;
  ok: boolean;
}

const REGISTRY = process.env['SLIPWAY_REGISTRY'] ?? '127.0.0.1:5000';
const POLL_MS = 50;
const SECRET = 'bench-hook-secret';
/**
 * The sample serves its version with busybox httpd, and exits on SIGTERM as a service should: a
 * PID 1 without a handler ignores it (the kernel's rule for a namespace's init), and every kill
 * (each old instance of a deployment, each bad one of a rollback) then waits out the agent's grace
 * period before SIGKILL, which the first runs measured (docs/benchmarks.md).
 */
const serve = (version: string) => `trap 'exit 0' TERM; mkdir -p /tmp/www && ${version} > /tmp/www/index.html && httpd -f -p $PORT0 -h /tmp/www & wait`;
const HEALTH = { protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 2, intervalSeconds: 1, timeoutSeconds: 1, maxConsecutiveFailures: 2 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => Math.round(ms) / 1000;

interface AppAnswer {
  app: {
    container: { docker: { image: string } };
    instances: number;
    tasksHealthy: number;
    tasksRunning: number;
    deployments: { id: string }[];
    tasks: { state: string; version: string }[];
    version: string;
  };
}
interface Promotion {
  id: string;
  state: string;
  release: string;
  reason?: string;
  deploymentId?: string;
  createdAt: string;
  startedAt?: string;
  healthyAt?: string;
  endedAt?: string;
  deadlineSeconds?: number;
}
interface BuildAnswer {
  number: number;
  status: string;
  startedAt?: number | string;
  finishedAt?: number | string;
  steps: { name: string; status: string; startedAt?: number | string; finishedAt?: number | string; error?: string }[];
  outputs?: { kind: string; digest?: string; promotion?: string; name?: string }[];
}

const at = (t: number | string | undefined): number => (typeof t === 'number' ? t : t !== undefined ? Date.parse(t) : NaN);

export async function runDeliverBench(options: Partial<DeliverBenchOptions> = {}, progress: (line: string) => void = () => undefined): Promise<DeliverBenchResult> {
  const o = { ...DELIVER_BENCH_DEFAULTS, ...options };
  runToken();
  const skip = new Set(o.skip);
  const notes: Record<string, string> = {};
  const result: DeliverBenchResult = { machine: machine(), instances: o.instances, targets: DELIVER_BENCH_TARGETS, tag: null, promote: null, rollback: null, parallel: null, notes };
  const docker = new Dockerode();
  await docker.ping().catch((e: unknown) => {
    throw new Error(`bench deliver needs a Docker engine (dockerd) on /var/run/docker.sock: ${(e as Error).message}`);
  });
  const busybox = await ensureBusyboxImage(docker);
  const reg = await fetch(`http://${REGISTRY}/v2/`).catch((e: unknown) => e as Error);
  if (reg instanceof Error || reg.status !== 200) throw new Error(`bench deliver needs the registry on ${REGISTRY} (SLIPWAY_REGISTRY): ${reg instanceof Error ? reg.message : `it answers ${reg.status}`}`);

  const ns = `slipway-bench-${randomBytes(4).toString('hex')}`;
  const label = `slipway.bench=deliver-${ns}`;
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-deliver-'));
  const repo = join(dir, 'repo');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, env: { ...process.env, GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'b@b', GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'b@b' } }).toString().trim();
  mkdirSync(repo);
  git('init', '--quiet', '--initial-branch=main');
  writeFileSync(
    join(repo, '.slipway.yml'),
    [
      'steps:',
      '  - name: prepare',
      '    commands:',
      '      - mkdir -p app',
      '      - echo "$CI_COMMIT_TAG" > app/version',
      '      - case "$CI_COMMIT_TAG" in *bad*) touch app/bad ;; esac',
      `      - printf 'FROM ${busybox}\\nCOPY . /app\\nLABEL ${label}\\n' > app/Dockerfile`,
      '  - name: image',
      '    kind: build-image',
      '    dockerfile: app/Dockerfile',
      '    context: app',
      `    tags: ["${ns}/shop:{{tag}}"]`,
      '    registry: private',
      '  - name: deploy',
      '    kind: deploy',
      '    service: shop',
      '    to: dev',
      '',
    ].join('\n'),
  );
  git('add', '.');
  git('commit', '--quiet', '-m', 'the sample service');

  let server: Up | undefined;
  const appIds: string[] = [];
  try {
    progress(`starting slipway up in ${dir}`);
    server = await up({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'data'), containerizers: ['process', 'docker'], resources: 'cpus:4;mem:8192;disk:20000;ports:[32400-32599]', ciUser: 'root', log: () => undefined });
    const base = server.master.url;
    const api = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: T; text: string }> => {
      const r = await fetch(`${base}${path}`, { method, headers: { authorization: runAuthorization(), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      const text = await r.text();
      let json: T;
      try {
        json = (text === '' ? {} : JSON.parse(text)) as T;
      } catch {
        json = {} as T;
      }
      return { status: r.status, json, text };
    };
    const must = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
      const r = await api<T>(method, path, body, headers);
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
      return r.json;
    };
    /** Waits for `fn` to give a value, polling; fails naming `what` after `ms`. */
    const until = async <T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> => {
      const end = Date.now() + ms;
      for (;;) {
        const v = await fn();
        if (v !== undefined) return v;
        if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
        await sleep(POLL_MS);
      }
    };
    /** Whether every wanted instance of the app runs `image`, healthy, with no deployment left. */
    const settledOn = async (appId: string, image: string): Promise<boolean> => {
      const r = await api<AppAnswer>('GET', `/v2/apps${appId}?embed=apps.tasks`);
      if (r.status !== 200) return false;
      const a = r.json.app;
      return a.container.docker.image === image && a.deployments.length === 0 && a.tasks.length === a.instances && a.tasksHealthy === a.instances && a.tasks.every((t) => t.state === 'TASK_RUNNING' && t.version === a.version);
    };
    const promotionOf = (service: string, id: string) => must<Promotion>('GET', `/deliver/v1/services/${service}/promotions/${id}`);

    await must('PUT', '/deliver/v1/environments/dev', { order: 1, deadlineSeconds: 120 });
    await must('PUT', '/deliver/v1/environments/demo', { order: 2 });
    await must('PUT', '/deliver/v1/services/shop', {
      image: `${ns}/shop`,
      app: {
        // A bad release runs but never answers its health check.
        cmd: `if [ -e /app/bad ]; then trap 'exit 0' TERM; sleep 600 & wait; fi; ${serve('cat /app/version')}`,
        container: { type: 'DOCKER', docker: { network: 'HOST', parameters: [{ key: 'label', value: label }] } },
        cpus: 0.1,
        mem: 32,
        instances: o.instances,
        healthChecks: [HEALTH],
      },
    });
    await must('PUT', '/ci/v1/jobs/shop', { repo, registries: { private: { address: REGISTRY } }, deploys: ['shop'], triggers: { webhook: { secret: SECRET } } });
    appIds.push('/dev/shop', '/demo/shop');

    /** Tags the repo and POSTs the generic webhook; answers when it was sent and the build. */
    const tagAndHook = async (tag: string) => {
      git('tag', tag);
      const sent = Date.now();
      const r = await api<{ builds: { number: number }[] }>('POST', '/ci/v1/hooks/shop', { tag }, { 'x-slipway-token': SECRET });
      if (r.status !== 201 || r.json.builds[0] === undefined) throw new Error(`the webhook for ${tag} answered ${r.status} ${r.text}`);
      return { sent, number: r.json.builds[0].number };
    };
    const buildEnd = (n: number) =>
      until(`build ${n} to end`, 240_000, async () => {
        const b = await must<BuildAnswer>('GET', `/ci/v1/jobs/shop/builds/${n}`);
        return b.status !== 'running' && b.status !== 'queued' ? b : undefined;
      });

    let digest = '';
    let goodImage = '';
    // ---- tag pushed → healthy in dev -------------------------------------------------------------
    // Always run: every other part deploys the image this build pushes (`--skip tag` only leaves out its figures).
    {
      progress(`tag v1.0.0 → webhook → build, push, deploy of ${o.instances} instance(s) to dev`);
      const { sent, number } = await tagAndHook('v1.0.0');
      const log = followLog(`${base}/ci/v1/jobs/shop/builds/${number}/log?follow=true`);
      const seenAt = await until('/dev/shop to run the new image, every instance healthy', 240_000, async () => {
        const b = await must<BuildAnswer>('GET', `/ci/v1/jobs/shop/builds/${number}`);
        if (b.status !== 'running' && b.status !== 'queued') throw new Error(`build ${number} ended ${b.status} before /dev/shop was healthy: ${JSON.stringify(b.steps)}`);
        const d = b.outputs?.find((x) => x.kind === 'image')?.digest;
        if (d === undefined) return undefined;
        const image = `${REGISTRY}/${ns}/shop@${d}`;
        return (await settledOn('/dev/shop', image)) ? { t: Date.now(), digest: d, image } : undefined;
      });
      digest = seenAt.digest;
      goodImage = seenAt.image;
      const b = await buildEnd(number);
      log.stop();
      if (b.status !== 'success') throw new Error(`build ${number} of v1.0.0 ended ${b.status}: ${JSON.stringify(b.steps)}`);
      const step = (name: string) => {
        const s = b.steps.find((x) => x.name === name);
        return { start: at(s?.startedAt), end: at(s?.finishedAt) };
      };
      const promotionId = b.outputs?.find((x) => x.kind === 'release')?.promotion ?? '';
      const p = await promotionOf('shop', promotionId);
      const prepare = step('prepare');
      const image = step('image');
      const deploy = step('deploy');
      const pushLine = log.lines.find((l) => l.text.startsWith('+ docker push'))?.at ?? NaN;
      const split = {
        trigger: secs(at(b.startedAt) - sent),
        checkout: secs(prepare.start - at(b.startedAt)),
        prepare: secs(prepare.end - prepare.start),
        build: secs(pushLine - image.start),
        push: secs(image.end - pushLine),
        release: secs(at(p.createdAt) - deploy.start),
        deploy: secs(at(p.startedAt) - at(p.createdAt)),
        // To the client's sight of every instance healthy: delivery records healthyAt at its next check.
        health: secs(seenAt.t - at(p.startedAt)),
        other: 0,
      };
      const total = secs(seenAt.t - sent);
      const parts = Object.entries(split).filter(([k]) => k !== 'other').reduce((sum, [, v]) => sum + v, 0);
      split.other = Math.round((total - parts) * 1000) / 1000;
      if (!skip.has('tag')) result.tag = { totalSeconds: total, split, deliveryNoticedSeconds: secs(at(p.healthyAt) - seenAt.t), executor: 'cold', digest, promotion: promotionId };
      progress(`  ${total} s (${Object.entries(split).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    }

    // ---- promotion dev → demo ---------------------------------------------------------------------
    if (!skip.has('promote')) {
      progress(`promotion of v1.0.0 to demo (${o.instances} instance(s), no rebuild)`);
      const t0 = Date.now();
      const p = await must<Promotion>('POST', '/deliver/v1/services/shop/promotions', { release: 'v1.0.0', to: 'demo' });
      const seen = await until('/demo/shop to be healthy on the release', 60_000, async () => ((await settledOn('/demo/shop', goodImage)) ? Date.now() : undefined));
      const done = await until('the promotion to end', 60_000, async () => {
        const x = await promotionOf('shop', p.id);
        return x.state === 'succeeded' || x.state === 'failed' ? x : undefined;
      });
      if (done.state !== 'succeeded') throw new Error(`the promotion to demo ended ${done.state}: ${done.reason ?? ''}`);
      result.promote = { totalSeconds: secs(seen - t0), serverSeconds: secs(at(done.healthyAt) - at(done.createdAt)), startSeconds: secs(at(done.startedAt) - at(done.createdAt)) };
      progress(`  ${result.promote.totalSeconds} s`);
    }

    // ---- automatic rollback -------------------------------------------------------------------------
    if (!skip.has('rollback')) {
      progress(`tag v1.1.0-bad (never healthy), dev's deadlineSeconds ${o.rollbackDeadlineSeconds}: the automatic rollback`);
      await must('PUT', '/deliver/v1/environments/dev', { order: 1, deadlineSeconds: o.rollbackDeadlineSeconds });
      const taskIds = async () => new Set((await must<{ app: { tasks: { id: string }[] } }>('GET', '/v2/apps/dev/shop?embed=apps.tasks')).app.tasks.map((t) => t.id));
      const before = await taskIds();
      const { number } = await tagAndHook('v1.1.0-bad');
      const started = await until('the promotion of v1.1.0-bad to start', 240_000, async () => {
        const list = await must<{ promotions: Promotion[] }>('GET', '/deliver/v1/services/shop/promotions?env=dev');
        return list.promotions.find((x) => x.release === 'v1.1.0-bad' && x.startedAt !== undefined);
      });
      let seenFailed: number | undefined;
      let seenBack: number | undefined;
      let ended: Promotion | undefined;
      await until('the rollback to end', (o.rollbackDeadlineSeconds + 120) * 1000, async () => {
        if (seenFailed === undefined) {
          const x = await promotionOf('shop', started.id);
          if (x.state === 'succeeded') throw new Error('the bad release was healthy: the bench cannot time a rollback');
          if (x.state === 'failed') {
            seenFailed = Date.now();
            ended = x;
          }
        }
        // The app is back once a rollback deployment put it as it was: looked at only past the deadline.
        if (seenBack === undefined && Date.now() > at(started.startedAt) + (started.deadlineSeconds ?? o.rollbackDeadlineSeconds) * 1000 && (await settledOn('/dev/shop', goodImage))) seenBack = Date.now();
        return seenFailed !== undefined && seenBack !== undefined ? true : undefined;
      });
      const deadline = at(started.startedAt) + (started.deadlineSeconds ?? o.rollbackDeadlineSeconds) * 1000;
      result.rollback = {
        deadlineSeconds: started.deadlineSeconds ?? o.rollbackDeadlineSeconds,
        appBackAfterDeadlineSeconds: secs(seenBack! - deadline),
        failedAfterDeadlineSeconds: secs(at(ended!.endedAt) - deadline),
        seenFailedAfterDeadlineSeconds: secs(seenFailed! - deadline),
        reason: ended!.reason ?? '',
        instancesReplaced: [...(await taskIds())].filter((id) => !before.has(id)).length,
      };
      await buildEnd(number);
      await must('PUT', '/deliver/v1/environments/dev', { order: 1, deadlineSeconds: 120 });
      progress(`  back ${result.rollback.appBackAfterDeadlineSeconds} s after the deadline, failed after ${result.rollback.failedAfterDeadlineSeconds} s`);
    }

    // ---- many services promoted at once -------------------------------------------------------------
    if (!skip.has('parallel')) {
      const names = Array.from({ length: o.services }, (_, i) => `par-${String(i + 1).padStart(2, '0')}`);
      progress(`${o.services} services, a release each of ${digest.slice(0, 19)}..., promoted to dev at once (twice: create, then upgrade)`);
      for (const name of names) {
        await must('PUT', `/deliver/v1/services/${name}`, {
          image: `${ns}/shop`,
          app: {
            cmd: serve('cat /app/version'),
            container: { type: 'DOCKER', docker: { network: 'HOST', parameters: [{ key: 'label', value: label }] } },
            cpus: 0.01,
            mem: 16,
            instances: 1,
            healthChecks: [HEALTH],
          },
        });
        appIds.push(`/dev/${name}`);
      }
      const parApps = new Set(names.map((n) => `/dev/${n}`));
      const round = async (version: string, roundNo: number): Promise<ParallelRound | string> => {
        for (const name of names) await must('POST', `/deliver/v1/services/${name}/releases`, { version, images: [{ name: `${REGISTRY}/${ns}/shop:v1.0.0`, digest }] });
        const seen = new Map<string, Set<string>>();
        let polling = true;
        const poller = (async () => {
          while (polling) {
            const r = await api<{ id: string; affectedApps: string[] }[]>('GET', '/v2/deployments');
            if (Array.isArray(r.json)) for (const d of r.json) for (const a of d.affectedApps) if (parApps.has(a)) seen.set(a, (seen.get(a) ?? new Set()).add(d.id));
            await sleep(POLL_MS);
          }
        })();
        const t0 = Date.now();
        let lastAnswer = 0;
        const answers = await Promise.all(
          names.map(async (name) => {
            const r = await api<Promotion>('POST', `/deliver/v1/services/${name}/promotions`, { release: version, to: 'dev' });
            lastAnswer = Math.max(lastAnswer, Date.now());
            return { name, ...r };
          }),
        );
        const statuses: Record<string, number> = {};
        for (const a of answers) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
        const unplaced = answers.filter((a) => a.status === 409 && a.text.includes('cannot be placed'));
        if (unplaced.length > 0) {
          polling = false;
          await poller;
          return `${unplaced.length} of ${o.services} promotions could not be placed on the one agent (${unplaced[0]!.text.slice(0, 300)}): give it more resources or ask for fewer services (--services)`;
        }
        const created = answers.filter((a) => a.status === 201);
        const ends = new Map<string, Promotion>();
        let lastEnd = t0;
        await until(`the ${created.length} promotions to end`, 180_000, async () => {
          for (const a of created) {
            if (ends.has(a.name)) continue;
            const x = await promotionOf(a.name, a.json.id);
            if (x.state === 'succeeded' || x.state === 'failed' || x.state === 'rejected') {
              ends.set(a.name, x);
              lastEnd = Date.now();
            }
          }
          return ends.size === created.length ? true : undefined;
        });
        polling = false;
        await poller;
        const promotions = [...ends.values()];
        const ids = new Set(promotions.map((p) => p.deploymentId).filter((d): d is string => d !== undefined));
        const stray: string[] = [];
        for (const [app, ds] of seen) {
          const mine = ends.get(app.slice('/dev/'.length))?.deploymentId;
          for (const d of ds) if (d !== mine) stray.push(`${app}: deployment ${d} is no promotion's`);
        }
        const wrongVersions: string[] = [];
        for (const name of names) {
          const v = await api<{ versions: string[] }>('GET', `/v2/apps/dev/${name}/versions`);
          if (v.status !== 200 || v.json.versions.length !== roundNo) wrongVersions.push(`/dev/${name}: ${v.status === 200 ? v.json.versions.length : v.status} version(s)`);
        }
        const healthy = promotions.filter((p) => p.healthyAt !== undefined).map((p) => at(p.healthyAt) - at(p.createdAt)).sort((a, b) => a - b);
        return {
          wallSeconds: secs(lastEnd - t0),
          postsAnsweredSeconds: secs(lastAnswer - t0),
          statuses,
          succeeded: promotions.filter((p) => p.state === 'succeeded').length,
          failed: [...answers.filter((a) => a.status !== 201).map((a) => `${a.name}: POST ${a.status} ${a.text.slice(0, 200)}`), ...promotions.filter((p) => p.state !== 'succeeded').map((p) => `${p.id}: ${p.state} ${p.reason ?? ''}`)],
          deployments: ids.size,
          strayDeployments: stray,
          wrongVersions,
          healthyP50Seconds: secs(healthy[Math.floor((healthy.length - 1) / 2)] ?? NaN),
          healthyMaxSeconds: secs(healthy.at(-1) ?? NaN),
        };
      };
      const create = await round('v1', 1);
      if (typeof create === 'string') notes['parallel'] = create;
      else {
        progress(`  create: ${create.wallSeconds} s, ${create.succeeded} succeeded`);
        const upgrade = await round('v2', 2);
        if (typeof upgrade === 'string') notes['parallel'] = upgrade;
        else {
          progress(`  upgrade: ${upgrade.wallSeconds} s, ${upgrade.succeeded} succeeded`);
          const good = (r: ParallelRound) => r.succeeded === o.services && r.failed.length === 0 && r.deployments === o.services && r.strayDeployments.length === 0 && r.wrongVersions.length === 0;
          result.parallel = { services: o.services, create, upgrade, ok: good(create) && good(upgrade) };
        }
      }
    }
    return result;
  } finally {
    progress('cleaning up');
    if (server !== undefined) {
      const base = server.master.url;
      await Promise.all(appIds.map((id) => fetch(`${base}/v2/apps${id}?force=true`, { method: 'DELETE', headers: { authorization: runAuthorization() } }).catch(() => undefined)));
      const end = Date.now() + 60_000;
      while (Date.now() < end && (await docker.listContainers({ filters: { label: [label] } }).catch(() => [])).length > 0) await sleep(200);
      await server.close();
    }
    killProcessesUnder(dir);
    for (const c of await docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => [])) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    for (const image of await docker.listImages({ filters: { label: [label] } }).catch(() => [])) {
      for (const tag of image.RepoTags ?? []) if (tag.includes(ns)) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
      await docker.getImage(image.Id).remove({ force: true }).catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The lines of a build's log as they arrive (`?follow=true`), each with when it came. */
function followLog(url: string): { lines: { at: number; text: string }[]; stop: () => void } {
  const lines: { at: number; text: string }[] = [];
  const abort = new AbortController();
  void (async () => {
    const r = await fetch(url, { headers: { authorization: runAuthorization() }, signal: abort.signal });
    if (r.body === null) return;
    const decoder = new TextDecoder();
    let rest = '';
    for await (const chunk of r.body) {
      const now = Date.now();
      rest += decoder.decode(chunk as Uint8Array, { stream: true });
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const text of parts) lines.push({ at: now, text });
    }
  })().catch(() => undefined);
  return { lines, stop: () => abort.abort() };
}

/** Where and when it ran, in the result itself so that --json carries it (the machine is shared: its load matters). */
function machine(): DeliverBenchResult['machine'] {
  return { cpus: availableParallelism(), load: loadavg().map((x) => Math.round(x * 100) / 100), node: process.version, date: new Date().toISOString() };
}

export function formatDeliverBench(r: DeliverBenchResult): string {
  const t = r.targets;
  const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const rows: string[][] = [['figure', 'measured', 'target']];
  if (r.tag !== null) {
    rows.push([`tag pushed (webhook) → ${r.instances} instance(s) healthy in dev`, `${r.tag.totalSeconds} s`, `<= ${t.tagToHealthySeconds} s: ${met(r.tag.totalSeconds <= t.tagToHealthySeconds)}`]);
    const names: Record<keyof TagFigures['split'], string> = {
      trigger: 'trigger (webhook → build running, executor cold)',
      checkout: 'checkout (build running → first step)',
      prepare: 'prepare step (writes the Dockerfile)',
      build: 'build (docker build)',
      push: 'push (to the registry)',
      release: 'release (deploy step → promotion created)',
      deploy: 'deploy (promotion created → deployment started)',
      health: 'health (deployment started → all healthy, as the client polls)',
      other: 'between steps, rounding',
    };
    for (const [k, v] of Object.entries(r.tag.split)) rows.push([`  ${names[k as keyof TagFigures['split']]}`, `${v} s`, '']);
    rows.push(['  (delivery recorded healthyAt after the client saw it)', `${r.tag.deliveryNoticedSeconds} s`, '']);
  }
  if (r.promote !== null) {
    rows.push([`promotion dev → demo, ${r.instances} instance(s), no rebuild`, `${r.promote.totalSeconds} s (server ${r.promote.serverSeconds} s, of which start ${r.promote.startSeconds} s)`, `<= ${t.promoteSeconds} s: ${met(r.promote.totalSeconds <= t.promoteSeconds)}`]);
  }
  if (r.rollback !== null) {
    const b = r.rollback;
    rows.push([`automatic rollback, deadline ${b.deadlineSeconds} s: deadline → app back on the previous release`, `${b.appBackAfterDeadlineSeconds} s`, `<= ${t.rollbackAfterDeadlineSeconds} s: ${met(b.appBackAfterDeadlineSeconds <= t.rollbackAfterDeadlineSeconds)}`]);
    rows.push(['  instances of the previous release replaced by the rollback (of the healthy ones it ran)', `${b.instancesReplaced} of ${r.instances}`, '']);
    rows.push(['  deadline → promotion failed (server / seen)', `${b.failedAfterDeadlineSeconds} / ${b.seenFailedAfterDeadlineSeconds} s`, `<= ${t.rollbackAfterDeadlineSeconds} s: ${met(b.failedAfterDeadlineSeconds <= t.rollbackAfterDeadlineSeconds)}`]);
  }
  if (r.parallel !== null) {
    const p = r.parallel;
    for (const [name, x] of [['create', p.create], ['upgrade', p.upgrade]] as const) {
      rows.push([
        `${p.services} services promoted at once (${name})`,
        `${x.wallSeconds} s; POSTs ${JSON.stringify(x.statuses)} answered in ${x.postsAnsweredSeconds} s; ${x.succeeded} succeeded; ${x.deployments} deployments, ${x.strayDeployments.length} stray; ${x.wrongVersions.length} app(s) with wrong versions; healthy p50 ${x.healthyP50Seconds} s, max ${x.healthyMaxSeconds} s`,
        name === 'upgrade' ? `all succeed, one deployment each: ${met(p.ok)}` : '',
      ]);
      for (const f of [...x.failed, ...x.strayDeployments, ...x.wrongVersions].slice(0, 10)) rows.push(['  ', f, '']);
    }
  }
  for (const [part, why] of Object.entries(r.notes)) rows.push([part, why, '']);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  const head = `bench deliver, ${r.machine.date} (${r.machine.cpus} cpus, load ${r.machine.load.join(' ')}, Node ${r.machine.node})`;
  return [head, ...rows.map((row, i) => {
    const line = row.map((c, j) => c.padEnd(widths[j]!)).join(' | ');
    return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}` : line;
  })].join('\n');
}

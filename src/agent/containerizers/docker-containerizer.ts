import { createHash } from 'node:crypto';
import { isAbsolute, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Dockerode from 'dockerode';
import { dockerMessage, dockerStatusCode } from '../../lib/docker-errors.ts';
import type { CommandInfo, ContainerInfo } from '../../protocol/mesos.ts';
import type { Containerizer, ContainerizerInfo, ContainerExit, ContainerRef, LaunchSpec, Recovered } from '../containerizer.ts';
import { exitFromStatus, unknownExit } from './container-exit.ts';
import { ContainerLaunchFailed } from './container-launch-failed.ts';
import { DockerLogFollower } from './docker-log-follower.ts';
import type { TaskUser } from '../task-user.ts';
import { cpuShares } from './task-cgroups.ts';
import type { CpuLimitMode } from './task-cgroups.ts';

type DockerRef = Extract<ContainerRef, { kind: 'docker' }>;

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** Labels on every container this containerizer makes: orphans() finds them by agent. */
export const LABELS = {
  agentId: 'slipway.agent_id',
  frameworkId: 'slipway.framework_id',
  taskId: 'slipway.task_id',
  /** The task's sandbox on the host, so that an orphan's ref is complete. */
  sandbox: 'slipway.sandbox',
} as const;

/** How long wait() lets the log copy finish once the container stopped, before it catches up without follow. */
const LOG_DRAIN_MS = 3_000;
/** Between two tries of a docker call that failed because the engine did not answer. */
const RETRY_MS = 1_000;
/** How many times wait() asks an engine that does not answer how a stopped container ended. */
const FINISH_ATTEMPTS = 30;

export interface DockerContainerizerOptions {
  /** A client to use; by default one on `socketPath`. */
  docker?: Dockerode;
  /** The engine's unix socket; default /var/run/docker.sock. */
  socketPath?: string;
  /**
   * Also cap cpu with a CFS quota (`NanoCpus`), as Mesos's `--cgroups_enable_cfs`. Default false:
   * `CpuShares` only (a weight under contention), because a small quota throttles the container's
   * own start-up (measured: create+start with NanoCpus=1e7 took 1.6-2.0 s instead of ~0.12 s).
   */
  cfsQuota?: boolean;
}

/**
 * Runs a task as a docker container through the engine's API (dockerode), as Mesos's docker
 * containerizer does: host networking (ports come from the offer, $PORT0...), cpu (shares; a CFS
 * quota too with `cfsQuota`) and memory limits from the task's resources, volumes as bind mounts, labels that say whose container it
 * is. The engine keeps containers and their logs while no agent runs; the agent finds them again
 * by id (recover) or by label (orphans).
 *
 * Lifecycle of one container here:
 *
 *   launch: [pull] ─► create ─► start ─► follow logs ──► (exits | kill: docker stop -t)
 *                                                              │
 *   wait:   container wait ─► logs drained ─► inspect (exit code, OOMKilled) ─► remove
 *
 * The sandbox keeps the container's stdout/stderr after the container is removed.
 */
export class DockerContainerizer implements Containerizer {
  readonly kind = 'docker' as const;
  readonly #docker: Dockerode;
  /** Aborted by release(): ends the engine connections of pending waits. */
  readonly #release = new AbortController();
  /** Containers whose logs this agent process copies, by container id. */
  readonly #followers = new Map<string, DockerLogFollower>();
  /** Containers found ended (by recover or wait), so that a later wait() answers the same. */
  readonly #ended = new Map<string, ContainerExit>();
  readonly #cpu: CpuLimitMode;
  #limits: ContainerizerInfo['limits'] & { cpu?: CpuLimitMode };

  constructor(options: DockerContainerizerOptions = {}) {
    this.#docker = options.docker ?? new Dockerode({ socketPath: options.socketPath ?? DEFAULT_DOCKER_SOCKET });
    this.#cpu = options.cfsQuota === true ? 'cfs-quota' : 'shares';
    this.#limits = { enforced: true, cpu: this.#cpu };
    // The engine says whether its kernel lets it limit memory and cpu; until it answered,
    // info() assumes it does (docker's default on Linux).
    this.#docker.info().then(
      (info: { MemoryLimit?: boolean; CPUShares?: boolean; CpuCfsQuota?: boolean }) => {
        const missing = [
          info.MemoryLimit === false ? 'memory limits' : '',
          info.CPUShares === false ? 'cpu shares' : '',
          this.#cpu === 'cfs-quota' && info.CpuCfsQuota === false ? 'cpu quotas (CFS)' : '',
        ].filter((s) => s !== '');
        if (missing.length > 0) this.#limits = { enforced: false, reason: `the Docker engine reports no support for ${missing.join(' and ')}` };
      },
      () => undefined,
    );
  }

  /** Whether a Docker engine answers a ping within about a second. */
  static async available(docker?: Dockerode): Promise<boolean> {
    const client = docker ?? new Dockerode({ socketPath: DEFAULT_DOCKER_SOCKET });
    try {
      // dockerode's ping takes options (abortSignal) that its type declarations do not list.
      await (client as unknown as { ping(o: { abortSignal: AbortSignal }): Promise<unknown> }).ping({ abortSignal: AbortSignal.timeout(1_000) });
      return true;
    } catch {
      return false;
    }
  }

  /** `limits.cpu`, when limits are enforced: shares only, or shares and a CFS quota. */
  info(): ContainerizerInfo & { limits: { cpu?: CpuLimitMode } } {
    return { kind: 'docker', limits: { ...this.#limits } };
  }

  async launch(spec: LaunchSpec): Promise<ContainerRef> {
    const docker = spec.container?.type === 'DOCKER' ? spec.container.docker : undefined;
    if (docker === undefined || docker.image === '') {
      throw new ContainerLaunchFailed('the docker containerizer needs container.type DOCKER with docker.image');
    }
    const image = docker.image;
    const options = createOptions(spec, image, docker, this.#cpu);
    if (docker.force_pull_image === true || !(await this.#imageExists(image))) await this.#pull(image);

    const container = await this.#create(options);
    try {
      await container.start();
    } catch (e) {
      await container.remove({ force: true }).catch(() => undefined);
      throw new ContainerLaunchFailed(`cannot start a container of image ${image}: ${dockerMessage(e)}`);
    }
    this.#followers.set(container.id, DockerLogFollower.start(container, spec.sandbox, true, spec.metaDir));
    return { kind: 'docker', containerId: container.id, name: options.name, sandbox: spec.sandbox, ...(spec.metaDir !== undefined ? { meta: spec.metaDir } : {}) };
  }

  async wait(ref: ContainerRef): Promise<ContainerExit> {
    const r = dockerRef(ref);
    const known = this.#ended.get(r.containerId);
    if (known !== undefined) return known;
    const container = this.#docker.getContainer(r.containerId);
    // Wait for the container, through engine restarts: only "no such container" ends the wait
    // without an exit status.
    for (;;) {
      if (this.#release.signal.aborted) return new Promise<never>(() => undefined);
      try {
        if (!this.#followers.has(r.containerId)) this.#followers.set(r.containerId, DockerLogFollower.start(container, r.sandbox, true, r.meta));
        await container.wait({ abortSignal: this.#release.signal });
        break;
      } catch (e) {
        if (this.#release.signal.aborted) return new Promise<never>(() => undefined);
        if (dockerStatusCode(e) === 404) break;
        this.#followers.get(r.containerId)?.stop();
        this.#followers.delete(r.containerId);
        await delay(RETRY_MS);
      }
    }
    return this.#finish(r, container);
  }

  release(): void {
    this.#release.abort();
    for (const f of this.#followers.values()) f.stop();
    this.#followers.clear();
  }

  async kill(ref: ContainerRef, gracePeriodMs: number): Promise<void> {
    const r = dockerRef(ref);
    const container = this.#docker.getContainer(r.containerId);
    try {
      // The engine sends the image's stop signal (SIGTERM), then SIGKILL after t seconds.
      await container.stop({ t: Math.max(0, Math.ceil(gracePeriodMs / 1000)) });
    } catch (e) {
      // 304: already stopped; 404: already gone. Both are what kill wants.
      const code = dockerStatusCode(e);
      if (code !== 304 && code !== 404) throw new Error(`cannot stop container ${r.name}: ${dockerMessage(e)}`, { cause: e });
    }
    // A container nobody here waits for (an orphan) is removed now; others are removed by wait().
    if (!this.#followers.has(r.containerId) && !this.#ended.has(r.containerId)) {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }

  async recover(refs: ContainerRef[]): Promise<Recovered[]> {
    const result: Recovered[] = [];
    for (const ref of refs) {
      const r = dockerRef(ref);
      const known = this.#ended.get(r.containerId);
      if (known !== undefined) {
        result.push({ running: false, exit: known });
        continue;
      }
      if (this.#followers.has(r.containerId)) {
        result.push({ running: true });
        continue;
      }
      const container = this.#docker.getContainer(r.containerId);
      let state: ContainerState | undefined;
      try {
        state = (await container.inspect()).State as ContainerState;
      } catch (e) {
        if (dockerStatusCode(e) !== 404) {
          // The engine does not answer: the container may well run; wait() finds out.
          result.push({ running: true });
          continue;
        }
      }
      if (state !== undefined && (state.Running || state.Paused || state.Restarting)) {
        // Copies what it printed while no agent ran, then follows.
        this.#followers.set(r.containerId, DockerLogFollower.start(container, r.sandbox, true, r.meta));
        result.push({ running: true });
      } else {
        result.push({ running: false, exit: await this.#finish(r, container) });
      }
    }
    return result;
  }

  async orphans(agentId: string, known: ContainerRef[]): Promise<ContainerRef[]> {
    const knownIds = new Set(known.flatMap((r) => (r.kind === 'docker' ? [r.containerId] : [])));
    const containers = await this.#docker.listContainers({ all: true, filters: { label: [`${LABELS.agentId}=${agentId}`] } });
    return containers
      .filter((c) => !knownIds.has(c.Id))
      .map((c) => ({ kind: 'docker', containerId: c.Id, name: (c.Names[0] ?? '').replace(/^\//, ''), sandbox: c.Labels[LABELS.sandbox] ?? '' }));
  }

  /** The container stopped (or is gone): copy the rest of its log, read how it ended, remove it. */
  async #finish(ref: DockerRef, container: Dockerode.Container): Promise<ContainerExit> {
    const follower = this.#followers.get(ref.containerId);
    if (follower !== undefined) {
      const drained = await Promise.race([follower.done.then(() => true), delay(LOG_DRAIN_MS, false)]);
      if (!drained) follower.stop();
      await follower.done;
    }
    let exit: ContainerExit | undefined;
    for (let attempt = 1; exit === undefined; attempt++) {
      try {
        const inspected = await container.inspect();
        // Whatever the follower missed (it started late, the engine restarted): positions make this exact.
        await DockerLogFollower.start(container, ref.sandbox, false, ref.meta).done;
        exit = exitOf(inspected.State as ContainerState, inspected.HostConfig.Memory ?? 0);
        await container.remove({ force: true }).catch(() => undefined);
      } catch (e) {
        if (dockerStatusCode(e) === 404) exit = unknownExit();
        else if (attempt >= FINISH_ATTEMPTS) exit = { message: `cannot tell how the container ended: ${dockerMessage(e)}` };
        else await delay(RETRY_MS);
      }
    }
    this.#followers.delete(ref.containerId);
    this.#ended.set(ref.containerId, exit);
    return exit;
  }

  async #imageExists(image: string): Promise<boolean> {
    try {
      await this.#docker.getImage(image).inspect();
      return true;
    } catch (e) {
      if (dockerStatusCode(e) === 404) return false;
      throw new ContainerLaunchFailed(`cannot inspect image ${image}: ${dockerMessage(e)}`);
    }
  }

  /** Pulls from whatever registry the image name names; follows the progress stream to its end. */
  async #pull(image: string): Promise<void> {
    try {
      const stream = await this.#docker.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.#docker.modem.followProgress(stream, (err: Error | null, output: { error?: string; errorDetail?: { message?: string } }[]) => {
          if (err !== null) return reject(err);
          const failed = output.find((o) => o.error !== undefined || o.errorDetail !== undefined);
          if (failed !== undefined) return reject(new Error(failed.errorDetail?.message ?? failed.error ?? 'pull failed'));
          resolve();
        });
      });
    } catch (e) {
      throw new ContainerLaunchFailed(`cannot pull image ${image}: ${dockerMessage(e)}`);
    }
  }

  /** Creates the container; a stopped leftover of an earlier attempt with the same name is replaced. */
  async #create(options: Dockerode.ContainerCreateOptions & { name: string }): Promise<Dockerode.Container> {
    try {
      return await this.#docker.createContainer(options);
    } catch (e) {
      if (dockerStatusCode(e) !== 409) throw new ContainerLaunchFailed(`cannot create a container of image ${options.Image ?? ''}: ${dockerMessage(e)}`);
    }
    const existing = this.#docker.getContainer(options.name);
    const inspected = await existing.inspect().catch(() => undefined);
    if (inspected === undefined || inspected.State.Running) {
      throw new ContainerLaunchFailed(`a container named ${options.name} already exists and runs`);
    }
    await existing.remove({ force: true }).catch(() => undefined);
    try {
      return await this.#docker.createContainer(options);
    } catch (e) {
      throw new ContainerLaunchFailed(`cannot create a container of image ${options.Image ?? ''}: ${dockerMessage(e)}`);
    }
  }
}

/** The parts of an inspected container's State this module reads. */
interface ContainerState {
  Status: string;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  ExitCode: number;
  Error?: string;
}

function exitOf(state: ContainerState, memoryBytes: number): ContainerExit {
  if (state.Status === 'created') return { message: 'the container was created but never started' };
  const exit = exitFromStatus(state.ExitCode, { oomKilled: state.OOMKilled, memMb: Math.round(memoryBytes / (1024 * 1024)) });
  return state.Error !== undefined && state.Error !== '' ? { ...exit, message: `${exit.message} (${state.Error})` } : exit;
}

function createOptions(spec: LaunchSpec, image: string, docker: NonNullable<ContainerInfo['docker']>, cpu: CpuLimitMode): Dockerode.ContainerCreateOptions & { name: string } {
  const network = docker.network ?? 'HOST';
  if (network === 'BRIDGE' || network === 'USER') {
    throw new ContainerLaunchFailed(
      `docker network ${network} is not available on this agent (its engine runs without a bridge: dockerd --bridge=none); use HOST networking with the task's ports ($PORT0...)`,
    );
  }
  if ((docker.port_mappings ?? []).length > 0) {
    throw new ContainerLaunchFailed(`port_mappings need BRIDGE networking; with ${network} networking the task listens on its ports ($PORT0...) directly`);
  }
  const config: Dockerode.ContainerCreateOptions & { name: string } = {
    name: containerName(spec.agentId, spec.taskId),
    Image: image,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: { [LABELS.agentId]: spec.agentId, [LABELS.frameworkId]: spec.frameworkId, [LABELS.taskId]: spec.taskId, [LABELS.sandbox]: spec.sandbox },
    Tty: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    OpenStdin: false,
    HostConfig: {
      NetworkMode: network === 'NONE' ? 'none' : 'host',
      Binds: binds(spec),
      Privileged: docker.privileged === true,
      ...(spec.memMb > 0 ? { Memory: Math.round(spec.memMb * 1024 * 1024), MemorySwap: Math.round(spec.memMb * 1024 * 1024) } : {}),
      // Shares always; the CFS quota (NanoCpus) only when asked for: it throttles start-up too.
      ...(spec.cpus > 0 ? { CpuShares: cpuShares(spec.cpus) } : {}),
      ...(spec.cpus > 0 && cpu === 'cfs-quota' ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
    },
    ...commandOptions(spec.command),
  };
  if (spec.user !== undefined) {
    // The host's uid and gid, not the name: the image's passwd may not know the name, or give it
    // another uid, and the sandbox (mounted at /mnt/mesos/sandbox) is owned by the host's uid.
    config.User = `${spec.user.uid}:${spec.user.gid}`;
    const others = spec.user.groups.filter((g) => g !== spec.user!.gid);
    if (others.length > 0) config.HostConfig = { ...config.HostConfig, GroupAdd: others.map(String) };
  }
  for (const p of docker.parameters ?? []) applyParameter(config, p.key, p.value, spec.user);
  return config;
}

/**
 * Mesos's rule for docker: a shell command (`shell` absent or true) runs as `/bin/sh -c value`,
 * replacing the image's entrypoint; `shell: false` appends `value` (if any) and `arguments` to the
 * image's entrypoint; no command at all runs the image's default.
 */
function commandOptions(command: CommandInfo | undefined): Pick<Dockerode.ContainerCreateOptions, 'Entrypoint' | 'Cmd' | 'User'> {
  const user = command?.user !== undefined ? { User: command.user } : {};
  if (command === undefined) return user;
  if (command.shell !== false) {
    if (command.value === undefined || command.value === '') {
      throw new ContainerLaunchFailed('shell is set (the default) but the command has no value: give command.value, or shell: false to run the image\'s entrypoint');
    }
    return { ...user, Entrypoint: ['/bin/sh'], Cmd: ['-c', command.value] };
  }
  const argv = [...(command.value !== undefined && command.value !== '' ? [command.value] : []), ...(command.arguments ?? [])];
  return argv.length > 0 ? { ...user, Cmd: argv } : user;
}

/** Volumes as bind mounts; a relative host path is relative to the sandbox (as in Mesos). */
function binds(spec: LaunchSpec): string[] {
  return (spec.container?.volumes ?? []).map((v) => {
    if (v.host_path === undefined || v.host_path === '') {
      throw new ContainerLaunchFailed(`volume ${v.container_path} has no host_path; only bind mounts are supported`);
    }
    const host = isAbsolute(v.host_path) ? v.host_path : join(spec.sandbox, v.host_path);
    return `${host}:${v.container_path}:${v.mode === 'RO' ? 'ro' : 'rw'}`;
  });
}

/**
 * docker.parameters are `docker run` flags in Mesos (`--key=value`). Those with a plain API
 * equivalent are applied; any other is refused rather than silently dropped.
 */
function applyParameter(config: Dockerode.ContainerCreateOptions, key: string, value: string, user: TaskUser | undefined): void {
  switch (key) {
    case 'label': {
      const eq = value.indexOf('=');
      config.Labels = { ...config.Labels, [eq < 0 ? value : value.slice(0, eq)]: eq < 0 ? '' : value.slice(eq + 1) };
      return;
    }
    case 'env':
    case 'e':
      config.Env = [...(config.Env ?? []), value];
      return;
    case 'user':
    case 'u':
      // The task's user is the agent's to decide (command.user, or its default user): the
      // parameter may say the same, never another user, or `--user root` would undo it.
      if (user !== undefined && !sameUser(value, user)) {
        throw new ContainerLaunchFailed(`docker parameter --user ${value} differs from the task's user ${user.name} (${user.uid}:${user.gid}); set the task's user (Marathon's app "user") instead`);
      }
      if (user === undefined) config.User = value;
      return;
    case 'workdir':
    case 'w':
      config.WorkingDir = value;
      return;
    case 'hostname':
      config.Hostname = value;
      return;
    default:
      throw new ContainerLaunchFailed(`docker parameter --${key} is not supported (supported: label, env, user, workdir, hostname)`);
  }
}

/** Whether docker's `--user` value (name, uid, name:group, uid:gid) names `user` and its primary group. */
function sameUser(value: string, user: TaskUser): boolean {
  const [who, group] = value.split(':', 2);
  if (who !== user.name && who !== String(user.uid)) return false;
  return group === undefined || group === String(user.gid);
}

/** `slipway-<agentId>-<taskId>` in docker's name alphabet ([a-zA-Z0-9][a-zA-Z0-9_.-]*), unique when shortened. */
export function containerName(agentId: string, taskId: string): string {
  const raw = `slipway-${agentId}-${taskId}`;
  const safe = raw.replace(/[^a-zA-Z0-9_.-]/g, '_');
  if (safe.length <= 200 && safe === raw) return safe;
  // Two ids may sanitize to the same text: a hash of the original keeps them apart.
  return `${safe.slice(0, 190)}-${createHash('sha256').update(raw).digest('hex').slice(0, 8)}`;
}

function dockerRef(ref: ContainerRef): DockerRef {
  if (ref.kind !== 'docker') throw new Error(`the docker containerizer cannot handle a ${ref.kind} container`);
  return ref;
}

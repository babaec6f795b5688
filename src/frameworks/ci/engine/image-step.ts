import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { Writable } from 'node:stream';
import type Dockerode from 'dockerode';
import { dockerMessage, dockerStatusCode } from '../../../lib/docker-errors.ts';
import { sameHostPath, type HostPath } from './host-paths.ts';
import { stepArgv, stepScript } from './step-script.ts';
import type { StepOutcome, StepRunSpec } from './step-outcome.ts';

/** Labels on every container of a CI step, so that leftovers of a build can be found and removed. */
export const CI_CONTAINER_LABELS = {
  /** The build's id (BuildContext.id, default `<job>#<number>`). */
  build: 'slipway.ci.build',
  job: 'slipway.ci.job',
  buildNumber: 'slipway.ci.build_number',
  step: 'slipway.ci.step',
} as const;

/** Where the engine's socket is mounted in a step's container (the docker CLI's default). */
export const CONTAINER_DOCKER_SOCKET = '/var/run/docker.sock';
const DEFAULT_HOST_SOCKET = '/var/run/docker.sock';
/** After the container stopped, how long its log may take to arrive in full. */
const LOG_DRAIN_MS = 3_000;

export interface ImageStepSpec extends StepRunSpec {
  docker: Dockerode;
  /** Container labels: CI_CONTAINER_LABELS with this build's values. */
  labels: Record<string, string>;
  /** Where the workspace and the engine's socket are on the engine's host; default: where this process sees them. */
  hostPath?: HostPath;
}

/**
 * Runs a step in a container of its image, through the Docker engine of the executor's host:
 *
 *   image present? ─no─► pull ─► create ─► start ─► follow log ─► wait ─► log drained ─► remove ─► outcome
 *                                              │
 *                                              └─ signal aborted ─► docker stop -t grace ─► ... ─► remove ─► cancelled
 *
 * - The workspace is bind-mounted at its own path and is the working directory: CI_WORKSPACE is
 *   the same in process and image steps, and a step that runs `docker run -v $CI_WORKSPACE:/src`
 *   through the host's engine (mounted below) names a path that exists on the host. An executor
 *   in a container names the mount's source by its host path (`hostPath`), since the engine
 *   resolves it on its host; there CI_WORKSPACE is the container's path, not the host's.
 * - Host networking (the engines of Slipway run with `--bridge=none`).
 * - The engine's unix socket is mounted at /var/run/docker.sock when it exists on this host:
 *   steps build and run images with the host's engine (Docker-out-of-Docker), as Jenkins agents
 *   on Mesos did.
 * - The commands run as in a process step (`sh -e -c`, stderr into stdout); a step without
 *   commands runs its image's own entrypoint and command (a plugin, in Woodpecker's terms).
 * - The image is pulled only when the engine does not have it.
 * - The container is always removed, whatever happened.
 */
export async function runImageStep(spec: ImageStepSpec): Promise<StepOutcome> {
  const { docker, step, signal } = spec;
  const image = step.image ?? '';
  const missing = await imageMissing(docker, image);
  if (typeof missing === 'string') return { status: 'error', error: missing };
  if (missing) {
    const pulled = await pull(docker, image, signal);
    if (pulled !== undefined) return signal.aborted ? { status: 'cancelled' } : { status: 'error', error: pulled };
  }
  if (signal.aborted) return { status: 'cancelled' };

  const hostPath = spec.hostPath ?? sameHostPath;
  const workspaceOnHost = hostPath(spec.workspace);
  if (workspaceOnHost === undefined) {
    return { status: 'error', error: `the workspace ${spec.workspace} is on no volume of the executor's container: the Docker engine cannot mount it into step ${step.name}` };
  }
  let container: Dockerode.Container;
  try {
    container = await docker.createContainer(createOptions(spec, image, workspaceOnHost, hostPath));
  } catch (e) {
    return { status: 'error', error: `cannot create a container of image ${image}: ${dockerMessage(e)}` };
  }
  let cancelled = false;
  const onAbort = (): void => {
    cancelled = true;
    container.stop({ t: Math.max(0, Math.ceil(spec.killGraceMs / 1000)) }).catch(() => undefined);
  };
  try {
    if (signal.aborted) return { status: 'cancelled' };
    try {
      await container.start();
    } catch (e) {
      return { status: 'error', error: `cannot start a container of image ${image}: ${dockerMessage(e)}` };
    }
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    const log = followLog(container, spec.output);
    let statusCode: number;
    try {
      const waited = (await container.wait()) as { StatusCode: number };
      statusCode = waited.StatusCode;
    } catch (e) {
      return { status: 'error', error: `lost the container of step ${step.name}: ${dockerMessage(e)}` };
    }
    await Promise.race([log, new Promise((resolve) => setTimeout(resolve, LOG_DRAIN_MS).unref())]);
    if (cancelled) return { status: 'cancelled', exitCode: statusCode };
    return statusCode === 0 ? { status: 'success', exitCode: 0 } : { status: 'failure', exitCode: statusCode };
  } finally {
    signal.removeEventListener('abort', onAbort);
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/**
 * Removes every container of a build (by its label), running or not: what an executor does for a
 * build it finds unfinished after a crash. Answers how many it removed.
 */
export async function removeBuildContainers(docker: Dockerode, buildId: string): Promise<number> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${CI_CONTAINER_LABELS.build}=${buildId}`] } });
  await Promise.all(found.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  return found.length;
}

function createOptions(spec: ImageStepSpec, image: string, workspaceOnHost: string, hostPath: HostPath): Dockerode.ContainerCreateOptions {
  const local = hostSocket(spec.docker);
  const socket = local !== undefined ? hostPath(local) : undefined;
  const command = spec.step.commands.length > 0 ? stepArgv(stepScript(spec.step.commands)) : undefined;
  return {
    name: containerName(spec.labels[CI_CONTAINER_LABELS.build] ?? '', spec.step.name),
    Image: image,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: spec.labels,
    WorkingDir: spec.workspace,
    Tty: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    OpenStdin: false,
    // Entrypoint `/bin/sh -c` and the rest as Cmd: a non-empty Cmd keeps the image's CMD out.
    ...(command !== undefined ? { Entrypoint: command.slice(0, 2), Cmd: command.slice(2) } : {}),
    HostConfig: {
      // docker-init as PID 1: it hands `docker stop`'s SIGTERM to the step's shell (a shell as PID
      // 1 would ignore it and only the SIGKILL after the grace would end the step), and reaps.
      Init: true,
      NetworkMode: 'host',
      // Mounts rather than Binds: a path with `:` or `,` in it stays one path.
      Mounts: [
        { Type: 'bind', Source: workspaceOnHost, Target: spec.workspace },
        ...(socket !== undefined ? [{ Type: 'bind' as const, Source: socket, Target: CONTAINER_DOCKER_SOCKET }] : []),
      ],
    },
  };
}

/** The engine's unix socket on this host, if the client talks to one and it exists. */
function hostSocket(docker: Dockerode): string | undefined {
  const configured = (docker.modem as { socketPath?: unknown }).socketPath;
  const path = typeof configured === 'string' && configured !== '' ? configured : DEFAULT_HOST_SOCKET;
  try {
    return statSync(path).isSocket() ? path : undefined;
  } catch {
    return undefined;
  }
}

/** `slipway-ci-<build>-<step>-<random>`, in docker's name alphabet. */
function containerName(build: string, step: string): string {
  const base = `slipway-ci-${build}-${step}`.replace(/[^a-zA-Z0-9_.-]/g, '_').slice(0, 180);
  return `${base}-${randomBytes(4).toString('hex')}`;
}

/** Copies the container's output (one stream: the script sends stderr into stdout) until it ends. */
async function followLog(container: Dockerode.Container, output: (chunk: Buffer) => void): Promise<void> {
  let source: NodeJS.ReadableStream;
  try {
    source = await container.logs({ follow: true, stdout: true, stderr: true });
  } catch {
    return;
  }
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      output(chunk);
      callback();
    },
  });
  container.modem.demuxStream(source, sink, sink);
  await new Promise<void>((resolve) => {
    source.once('end', resolve);
    source.once('close', resolve);
    source.once('error', () => resolve());
  });
}

/** true/false, or a message when the engine could not say. */
async function imageMissing(docker: Dockerode, image: string): Promise<boolean | string> {
  try {
    await docker.getImage(image).inspect();
    return false;
  } catch (e) {
    if (dockerStatusCode(e) === 404) return true;
    return `cannot inspect image ${image}: ${dockerMessage(e)}`;
  }
}

/** Pulls the image; answers undefined, or why it could not. */
async function pull(docker: Dockerode, image: string, signal: AbortSignal): Promise<string | undefined> {
  try {
    // dockerode passes options (abortSignal among them) to docker-modem; its types do not list it.
    const stream = (await docker.pull(image, { abortSignal: signal } as object)) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, output: { error?: string; errorDetail?: { message?: string } }[]) => {
        if (err !== null) return reject(err);
        const failed = output.find((o) => o.error !== undefined || o.errorDetail !== undefined);
        if (failed !== undefined) return reject(new Error(failed.errorDetail?.message ?? failed.error ?? 'pull failed'));
        resolve();
      });
    });
    return undefined;
  } catch (e) {
    return `image ${image} is not on this host and cannot be pulled: ${dockerMessage(e)}`;
  }
}

import { readdir, realpath, stat } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import type Dockerode from 'dockerode';
import { dockerMessage } from '../../../lib/docker-errors.ts';
import { parseImageTag, MAX_IMAGE_NAME_LENGTH } from '../pipeline/image-tag.ts';
import type { BuildImageStep, ImageOutput } from '../pipeline/pipeline.ts';
import { expandTemplate } from '../pipeline/step-template.ts';
import { buildId, type BuildContext } from './build-context.ts';
import { CI_CONTAINER_LABELS } from './image-step.ts';
import type { StepOutcome } from './step-outcome.ts';

/**
 * A registry as a build sees it: its address (`host[:port]`, no scheme: what goes before the
 * repository in an image name) and the credentials it wants, if any (the password read from the
 * secret store when the build started).
 */
export interface RegistryAccess {
  address: string;
  username?: string;
  password?: string;
}

export interface BuildImageStepSpec {
  step: BuildImageStep;
  workspace: string;
  build: BuildContext;
  /** The agent host's engine; without one the step cannot run. */
  docker: Dockerode | undefined;
  registries: Readonly<Record<string, RegistryAccess>>;
  signal: AbortSignal;
  output: (chunk: Buffer) => void;
}

/** The most files a build context may hold (a context of the whole workspace with node_modules is a mistake). */
export const MAX_CONTEXT_FILES = 200_000;

/**
 * Runs a build-image step on the engine the executor already has (the agent host's):
 *
 *   registry not in the job, a template variable without a value, a tag that is no Docker tag,
 *   no engine ─► error (the step cannot run)
 *   context or Dockerfile missing or outside the workspace ─► failure
 *   build (docker build, host network) ─► tag each name ─► push each (auth from the secret) ─► success, outputs
 *        │ the engine's error (a bad Dockerfile, a RUN that exits 1)      │ the engine's error (registry down, refused)
 *        ▼                                                                 ▼
 *      failure: "docker build failed: <the engine's words>"          failure: "docker push of NAME to registry R (ADDRESS) failed: <the engine's words>"
 *   signal aborted ─► cancelled (the engine stops a build whose client went away)
 *
 * - The context is the directory `context` of the workspace, sent as a tar as `docker build`
 *   does (its `.dockerignore` applied, symbolic links sent as links, never followed out of it);
 *   the Dockerfile must be in it. Both are resolved through symbolic links and must stay inside
 *   the workspace.
 * - `RUN` steps use the host's network (`networkmode: host`): Slipway's engines run without a
 *   bridge. Intermediate containers are removed, whatever happens (`forcerm`).
 * - Names: each of `tags` (`REPOSITORY:TAG`, templates expanded) under the registry's address,
 *   `<address>/<repository>:<tag>`. The image is labelled with CI's container labels (job, build)
 *   and `org.opencontainers.image.revision` (the commit), and stays in the engine (its layers are
 *   the next build's cache).
 * - The engine's output (build steps, push statuses) goes to the step's log; the registry's
 *   password is masked there like the job's secrets (run-pipeline.ts).
 * - Each name pushed is an output with the digest the registry answered (the push's `aux.Digest`,
 *   else the engine's RepoDigests): `<address>/<repository>@<digest>` is exactly this image.
 *   Names pushed before a failed push stay recorded: they are in the registry.
 */
export async function runBuildImageStep(spec: BuildImageStepSpec): Promise<StepOutcome> {
  const { step, build, signal } = spec;
  const say = (line: string) => spec.output(Buffer.from(`${line}\n`));
  const stop = (status: 'error' | 'failure', error: string, outputs: ImageOutput[] = []): StepOutcome => {
    say(error);
    return { status, error, ...(outputs.length > 0 ? { outputs } : {}) };
  };
  const cancelled = (outputs: ImageOutput[] = []): StepOutcome => ({ status: 'cancelled', ...(outputs.length > 0 ? { outputs } : {}) });

  const registry = Object.hasOwn(spec.registries, step.registry) ? spec.registries[step.registry] : undefined;
  if (registry === undefined) {
    const known = Object.keys(spec.registries);
    return stop('error', `registry ${step.registry} is not configured in job ${build.jobName} (its registries: ${known.length > 0 ? known.join(', ') : 'none'})`);
  }
  const names: { repository: string; tag: string; name: string }[] = [];
  for (const template of step.tags) {
    const expanded = expandTemplate(template, { tag: build.tag ?? '', commit: build.commitSha ?? '', build: String(build.number) });
    if ('missing' in expanded) {
      const why = expanded.missing === 'tag' ? `build #${build.number} was not started by a tag (event ${build.event})` : `build #${build.number} has no ${expanded.missing}`;
      return stop('error', `tag ${template}: {{${expanded.missing}}} has no value: ${why}`);
    }
    const parsed = parseImageTag(expanded.text);
    if ('problem' in parsed) return stop('error', `tag ${template} is ${expanded.text} in this build: ${parsed.problem}`);
    const name = `${registry.address}/${parsed.repository}:${parsed.tag}`;
    if (name.length - parsed.tag.length - 1 > MAX_IMAGE_NAME_LENGTH) return stop('error', `image name ${name} is longer than Docker's ${MAX_IMAGE_NAME_LENGTH} characters`);
    if (!names.some((n) => n.name === name)) names.push({ ...parsed, name });
  }
  const docker = spec.docker;
  if (docker === undefined) return stop('error', `step ${step.name} builds an image, and this executor has no Docker engine (no /var/run/docker.sock on its host)`);

  const where = await resolveContext(spec.workspace, step.context, step.dockerfile);
  if ('problem' in where) return stop('failure', where.problem);
  if (signal.aborted) return cancelled();

  // What the engine needs for the registry: credentials for a FROM of its images (the build) and for the push.
  const credentials = registry.username !== undefined || registry.password !== undefined ? { username: registry.username ?? '', password: registry.password ?? '' } : undefined;
  const first = names[0]!.name;
  say(`+ docker build --network host -f ${step.dockerfile} -t ${first}${Object.keys(step.buildArgs).map((a) => ` --build-arg ${a}`).join('')} ${step.context} (${where.files.length} files)`);
  let imageId: string | undefined;
  try {
    const stream = (await docker.buildImage(
      { context: where.context, src: where.files },
      {
        t: first,
        dockerfile: where.dockerfile,
        buildargs: { ...step.buildArgs },
        networkmode: 'host',
        rm: true,
        forcerm: true,
        labels: {
          [CI_CONTAINER_LABELS.build]: buildId(build),
          [CI_CONTAINER_LABELS.job]: build.jobName,
          [CI_CONTAINER_LABELS.buildNumber]: String(build.number),
          [CI_CONTAINER_LABELS.step]: step.name,
          ...(build.commitSha !== undefined && build.commitSha !== '' ? { 'org.opencontainers.image.revision': build.commitSha } : {}),
        },
        ...(credentials !== undefined ? { registryconfig: { [registry.address]: credentials } } : {}),
        abortSignal: signal,
      },
    )) as NodeJS.ReadableStream;
    const failed = await readEngineStream(stream, (m) => {
      if (typeof m.stream === 'string') spec.output(Buffer.from(m.stream));
      else if (typeof m.status === 'string') say(m.status); // FROM of an image it pulls
      const id = m.aux?.ID;
      if (typeof id === 'string') imageId = id;
    });
    if (failed !== undefined) return signal.aborted ? cancelled() : stop('failure', `docker build failed: ${failed}`);
  } catch (e) {
    if (signal.aborted) return cancelled();
    return stop('failure', `docker build failed: ${dockerMessage(e)}`);
  }
  if (signal.aborted) return cancelled();
  say(`built ${imageId ?? first}`);

  for (const n of names.slice(1)) {
    try {
      await docker.getImage(first).tag({ repo: `${registry.address}/${n.repository}`, tag: n.tag });
    } catch (e) {
      return stop('error', `cannot tag ${first} as ${n.name}: ${dockerMessage(e)}`);
    }
  }

  const outputs: ImageOutput[] = [];
  const authconfig = { ...(credentials ?? {}), serveraddress: registry.address };
  for (const n of names) {
    if (signal.aborted) return cancelled(outputs);
    say(`+ docker push ${n.name}`);
    let digest: string | undefined;
    const pushFailed = (why: string) => stop('failure', `docker push of ${n.name} to registry ${step.registry} (${registry.address}) failed: ${why}`, outputs);
    try {
      // The engine wants X-Registry-Auth on a push even without credentials (an empty one then).
      const stream = (await docker.getImage(`${registry.address}/${n.repository}`).push({ tag: n.tag, authconfig, abortSignal: signal })) as NodeJS.ReadableStream;
      const failed = await readEngineStream(stream, (m) => {
        const d = m.aux?.Digest;
        if (typeof d === 'string') digest = d;
        // Progress of each layer ("Pushing" with its bar, "Preparing", "Waiting") is left out; the outcomes stay.
        if (typeof m.status === 'string' && !['Pushing', 'Preparing', 'Waiting'].includes(m.status)) say(m.id !== undefined ? `${m.id}: ${m.status}` : m.status);
      });
      if (failed !== undefined) return signal.aborted ? cancelled(outputs) : pushFailed(failed);
    } catch (e) {
      if (signal.aborted) return cancelled(outputs);
      return pushFailed(dockerMessage(e));
    }
    digest ??= await repoDigest(docker, n.name, `${registry.address}/${n.repository}`);
    if (digest === undefined) return pushFailed('the engine reported no digest for it');
    say(`pushed ${n.name}@${digest}`);
    outputs.push({ kind: 'image', step: step.name, registry: step.registry, name: n.name, digest });
  }
  return { status: 'success', outputs };
}

/** One JSON message of the engine's build or push stream. */
interface EngineMessage {
  stream?: string;
  status?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: unknown; Digest?: unknown };
}

/** Reads the engine's stream of JSON messages (one a line) to its end; answers the error it reported, if any. */
async function readEngineStream(stream: NodeJS.ReadableStream, onMessage: (m: EngineMessage) => void): Promise<string | undefined> {
  let rest = '';
  let failed: string | undefined;
  const take = (line: string) => {
    if (line.trim() === '') return;
    let m: EngineMessage;
    try {
      m = JSON.parse(line) as EngineMessage;
    } catch {
      return; // Not a message (a proxy's noise): nothing to act on.
    }
    if (m.error !== undefined || m.errorDetail !== undefined) failed ??= (m.errorDetail?.message ?? m.error ?? 'failed').trim();
    else onMessage(m);
  };
  for await (const chunk of stream) {
    rest += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    const lines = rest.split(/\r?\n/);
    rest = lines.pop() ?? '';
    for (const line of lines) take(line);
  }
  take(rest);
  return failed;
}

/** The digest the engine recorded for `repository` after a push (RepoDigests), if any. */
async function repoDigest(docker: Dockerode, name: string, repository: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(name).inspect();
    const found = (info.RepoDigests ?? []).find((d) => d.startsWith(`${repository}@`));
    return found?.slice(repository.length + 1);
  } catch {
    return undefined;
  }
}

/**
 * The context directory and the Dockerfile, resolved through symbolic links inside the workspace;
 * the Dockerfile's path relative to the context; every file of the context (paths relative to it,
 * `/`-separated; directories behind links are not entered, links are sent as links).
 */
async function resolveContext(workspace: string, context: string, dockerfile: string): Promise<{ context: string; dockerfile: string; files: string[] } | { problem: string }> {
  const root = await realpath(workspace);
  const inside = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
  let contextDir: string;
  try {
    contextDir = await realpath(join(root, context));
  } catch {
    return { problem: `context ${context} is not in the workspace` };
  }
  if (!inside(contextDir, root)) return { problem: `context ${context} leads out of the workspace (to ${contextDir}): a build context comes from the workspace only` };
  if (!(await stat(contextDir)).isDirectory()) return { problem: `context ${context} is not a directory` };
  let file: string;
  try {
    file = await realpath(join(root, dockerfile));
  } catch {
    return { problem: `Dockerfile ${dockerfile} is not in the workspace` };
  }
  if (!inside(file, contextDir)) return { problem: `Dockerfile ${dockerfile} leads out of the context ${context} (to ${file}): the engine reads it from the context` };
  if (!(await stat(file)).isFile()) return { problem: `Dockerfile ${dockerfile} is not a file` };

  const files: string[] = [];
  const walk = async (dir: string, prefix: string): Promise<string | undefined> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory()) {
        const problem = await walk(join(dir, entry.name), path);
        if (problem !== undefined) return problem;
      } else {
        files.push(path);
        if (files.length > MAX_CONTEXT_FILES) return `context ${context} holds more than ${MAX_CONTEXT_FILES} files: give a smaller directory, or a .dockerignore`;
      }
    }
    return undefined;
  };
  const problem = await walk(contextDir, '');
  if (problem !== undefined) return { problem };
  // Directories are sent by their files: an empty one is not sent.
  return { context: contextDir, dockerfile: posix.normalize(relative(contextDir, file).split(sep).join('/')), files };
}

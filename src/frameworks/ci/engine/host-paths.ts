import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type Dockerode from 'dockerode';
import { dockerStatusCode } from '../../../lib/docker-errors.ts';

/**
 * Where a path of the executor's own file system is on the Docker engine's host, or undefined
 * when it is on no path the engine can mount.
 *
 * Why: the engine resolves the bind mounts of a step's container on its host. An executor that
 * runs as a process sees the host's paths, so a path is its own host path. An executor that is
 * itself a container (executor spec `containerizer: docker`) sees its sandbox at
 * /mnt/mesos/sandbox and the engine's socket where its volume put it; for those the engine must
 * be given the host paths behind the container's mounts, or a step would get an empty directory
 * the engine made up (Docker-out-of-Docker's classic trap).
 */
export type HostPath = (path: string) => string | undefined;

/** A process executor: its paths are the host's. */
export const sameHostPath: HostPath = (path) => path;

/** A bind mount of a container, as `docker inspect` lists it (`Mounts[].Source/Destination`). */
export interface ContainerMount {
  source: string;
  destination: string;
}

/**
 * The host path of `path` through a container's mounts: the mount with the longest destination
 * that holds `path` wins (a volume inside another). A path under no mount is in the container's
 * own layers, which the engine cannot mount elsewhere: undefined.
 */
export function hostPathThroughMounts(mounts: readonly ContainerMount[]): HostPath {
  const sorted = [...mounts].map((m) => ({ source: m.source, destination: posix.normalize(m.destination) })).sort((a, b) => b.destination.length - a.destination.length);
  return (path) => {
    const p = posix.normalize(path);
    for (const m of sorted) {
      if (p === m.destination) return m.source;
      const prefix = m.destination.endsWith('/') ? m.destination : `${m.destination}/`;
      if (p.startsWith(prefix)) return posix.join(m.source, p.slice(prefix.length));
    }
    return undefined;
  };
}

/**
 * The id of the Docker container this process runs in, from its mount table: the engine
 * bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from `<data-root>/containers/<id>/`
 * into every container, with any network mode and under cgroup v1 or v2 alike. Undefined when
 * the table names no such file (not in a Docker container).
 */
export function containerIdFromMountinfo(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    // Field 4 is the root of the mount in its file system, field 5 where it is mounted.
    const [root, mountPoint] = [fields[3] ?? '', fields[4] ?? ''];
    if (!['/etc/hostname', '/etc/hosts', '/etc/resolv.conf'].includes(mountPoint)) continue;
    const m = /\/containers\/([0-9a-f]{64})\/(?:hostname|hosts|resolv\.conf)$/.exec(root);
    if (m !== null) return m[1];
  }
  return undefined;
}

/**
 * The HostPath of this process: through its container's mounts when it runs in a container of
 * `docker`'s engine, else its paths as they are: on a host, or in a container of another engine
 * (an agent inside a Docker-in-Docker container, whose inner engine shares its file system).
 * Bind mounts and named volumes both name their host directory as `Source`.
 */
export async function discoverHostPath(docker: Dockerode, mountinfoFile = '/proc/self/mountinfo'): Promise<HostPath> {
  const mountinfo = await readFile(mountinfoFile, 'utf8').catch(() => '');
  const id = containerIdFromMountinfo(mountinfo);
  if (id === undefined) return sameHostPath;
  let info: { Mounts?: { Type?: string; Source?: string; Destination?: string }[] };
  try {
    info = (await docker.getContainer(id).inspect()) as typeof info;
  } catch (e) {
    if (dockerStatusCode(e) === 404) return sameHostPath;
    throw new Error(`cannot read the mounts of this executor's container ${id.slice(0, 12)} from the Docker engine (${(e as Error).message}): its image steps cannot mount the workspace`, { cause: e });
  }
  const mounts = (info.Mounts ?? [])
    .filter((m) => (m.Type === 'bind' || m.Type === 'volume') && typeof m.Source === 'string' && m.Source !== '' && typeof m.Destination === 'string')
    .map((m) => ({ source: m.Source as string, destination: m.Destination as string }));
  return hostPathThroughMounts(mounts);
}

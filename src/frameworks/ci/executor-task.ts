import type { CommandInfo, ContainerInfo } from '../../protocol/mesos.ts';
import type { ExecutorContainerizer, ExecutorSpec, ExecutorVolume } from './job-definition.ts';

/**
 * How an executor task runs the executor program (`slipway ci-executor --server ... --id ...
 * --label ...`, its token in the command's environment, never in its arguments: a command line is
 * visible to every user of the machine), as the server that hosts CI knows it: its command, and for an executor in a
 * container (`containerizer: docker`) what the container must mount for its image's `node` to
 * find the program (the Slipway installation of the agent's host, read-only), as the Jenkins
 * Mesos plugin had its agents' images run the agent.jar that Jenkins handed them.
 */
export interface ExecutorProgram {
  command: CommandInfo;
  mounts?: ExecutorVolume[];
}

export type ExecutorProgramFor = (executor: { id: string; token: string; label: string; containerizer: ExecutorContainerizer }) => ExecutorProgram;

/** The variable of an executor task's environment that holds its launch token. */
export const EXECUTOR_TOKEN_VARIABLE = 'SLIPWAY_EXECUTOR_TOKEN';

/** Where the Docker engine's socket is, on the agent host and in an executor's container. */
export const DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * The container of an executor of `spec` (undefined for a process executor): its image with host
 * networking (it connects back to CI and serves nothing), and these bind mounts, later ones
 * winning for the same container path:
 *   1. the program's mounts;
 *   2. the host's Docker socket, so that image steps run on the agent host's engine (the
 *      article's agents mounting /var/run/docker.sock); a spec volume at that path replaces it;
 *   3. the spec's own volumes.
 */
export function executorContainer(spec: ExecutorSpec, program: ExecutorProgram): ContainerInfo | undefined {
  if (spec.containerizer !== 'docker' || spec.image === undefined) return undefined;
  const byPath = new Map<string, ExecutorVolume>();
  for (const v of [...(program.mounts ?? []), { containerPath: DOCKER_SOCKET, hostPath: DOCKER_SOCKET, mode: 'RW' as const }, ...spec.volumes]) byPath.set(v.containerPath, v);
  return {
    type: 'DOCKER',
    docker: { image: spec.image, network: 'HOST' },
    volumes: [...byPath.values()].map((v) => ({ container_path: v.containerPath, host_path: v.hostPath, mode: v.mode })),
  };
}

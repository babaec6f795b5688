import { constants } from 'node:os';
import type { ContainerExit } from '../containerizer.ts';

/**
 * How a container ended, in the words of the status update (Mesos's wording: "Command exited with
 * status 3", "Command terminated with signal SIGKILL").
 *
 * Shells and docker report a child killed by signal N as exit status 128+N, so `fromExitStatus`
 * reads 129..192 as a signal when N names one. A task that really calls `exit 143` is reported
 * as terminated by SIGTERM: the same ambiguity every shell has.
 */
export function exitFromStatus(status: number, extra: { oomKilled?: boolean; memMb?: number } = {}): ContainerExit {
  if (status > 128 && status <= 128 + 64) {
    const name = signalName(status - 128);
    if (name !== undefined) return exitFromSignal(name, extra);
  }
  return withOom({ exitCode: status, message: `Command exited with status ${status}` }, extra);
}

export function exitFromSignal(signal: string, extra: { oomKilled?: boolean; memMb?: number } = {}): ContainerExit {
  return withOom({ signal, message: `Command terminated with signal ${signal}` }, extra);
}

/** The container ended while no agent watched it and nothing recorded how. */
export function unknownExit(): ContainerExit {
  return { message: 'exited while the agent was down; exit status unknown' };
}

function withOom(exit: ContainerExit, extra: { oomKilled?: boolean; memMb?: number }): ContainerExit {
  if (extra.oomKilled !== true) return exit;
  const limit = extra.memMb !== undefined && extra.memMb > 0 ? ` of ${extra.memMb} MB` : '';
  return { ...exit, oomKilled: true, message: `Memory limit${limit} exceeded: ${exit.message}` };
}

function signalName(n: number): string | undefined {
  for (const [name, number] of Object.entries(constants.signals)) {
    if (number === n) return name;
  }
  return undefined;
}

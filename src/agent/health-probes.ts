import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { CommandInfo } from '../protocol/mesos.ts';
import { findSetpriv, switchUserArgv, type TaskUser } from './task-user.ts';

/**
 * One probe of each kind Mesos's health checks know (COMMAND, HTTP, TCP). A probe runs once and
 * says whether the task looked healthy; scheduling, timeouts, counting and reporting are the
 * HealthChecker's business.
 *
 * Contract shared by every probe:
 * - The returned promise resolves, never rejects: anything that goes wrong is an unhealthy result
 *   whose message says what (for the status update the agent sends).
 * - When `signal` aborts (timeout or stop), the probe releases what it holds at once: the HTTP
 *   request or TCP socket is destroyed, the command's whole process group gets SIGKILL. The
 *   promise then resolves with an unhealthy result that the caller is free to ignore.
 */
export interface ProbeResult {
  healthy: boolean;
  message: string;
}

export interface HttpProbe {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  /** Starts with '/'. */
  path: string;
}

/**
 * GET scheme://host:port/path; healthy on a status in 200..399. Redirects are not followed: a
 * 3xx answer is itself a sign of life. Certificates are not verified over https (as curl -k in
 * Mesos's checker): the task's certificate names a public host, not 127.0.0.1.
 */
export function probeHttp(target: HttpProbe, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const url = `${target.scheme}://${formatHost(target.host)}:${target.port}${target.path}`;
    const options: https.RequestOptions = {
      host: target.host,
      port: target.port,
      path: target.path,
      method: 'GET',
      // A fresh connection per check: a pooled socket could make a dead task look alive.
      agent: false,
      headers: { 'user-agent': 'slipway-health-check', connection: 'close' },
      signal,
    };
    const request =
      target.scheme === 'https' ? https.request({ ...options, rejectUnauthorized: false }) : http.request(options);
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      // Only the status matters; the body may be large or never end.
      request.destroy();
      resolve(
        status >= 200 && status < 400
          ? { healthy: true, message: `HTTP health check passed: GET ${url} answered ${status}` }
          : { healthy: false, message: `HTTP health check failed: GET ${url} answered ${status}` },
      );
    });
    request.on('error', (err) => {
      resolve({ healthy: false, message: `HTTP health check failed: GET ${url}: ${err.message}` });
    });
    request.end();
  });
}

/** Healthy when a TCP connection to host:port is established; it is closed right away. */
export function probeTcp(host: string, port: number, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const where = `${formatHost(host)}:${port}`;
    if (signal.aborted) {
      resolve({ healthy: false, message: `TCP health check aborted: ${where}` });
      return;
    }
    const socket = net.connect({ host, port });
    const onAbort = (): void => {
      socket.destroy();
      resolve({ healthy: false, message: `TCP health check aborted: ${where}` });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ healthy: true, message: `TCP health check passed: connected to ${where}` });
    });
    socket.on('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ healthy: false, message: `TCP health check failed: ${where}: ${err.message}` });
    });
  });
}

export interface CommandProbe {
  command: CommandInfo;
  /** The process's whole environment. */
  env: Record<string, string>;
  cwd: string;
  /** Run as this user (setpriv), not as the agent's. */
  user?: TaskUser;
}

/** How much of the command's stderr ends up in a failure message. */
const STDERR_TAIL_BYTES = 512;

/**
 * Runs the command as Mesos runs a CommandInfo: `sh -c value` when `shell` is true (the
 * default); otherwise `value` is the program and `arguments` its whole argv, argv[0] included
 * (Mesos's execvp convention). Healthy on exit status 0.
 *
 * The command leads a process group of its own (detached), so that an abort kills everything it
 * started, not only the shell.
 */
export function probeCommand(probe: CommandProbe, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const { command } = probe;
    const value = command.value ?? '';
    if (signal.aborted) {
      resolve({ healthy: false, message: 'COMMAND health check aborted' });
      return;
    }
    let file: string;
    let args: string[];
    let argv0: string | undefined;
    if (command.shell ?? true) {
      file = '/bin/sh';
      args = ['-c', value];
    } else {
      file = value;
      const argv = command.arguments ?? [];
      argv0 = argv[0];
      args = argv.slice(1);
    }
    if (probe.user !== undefined && probe.user.uid !== 0) {
      const setpriv = findSetpriv();
      if (setpriv === undefined) {
        resolve({ healthy: false, message: `COMMAND health check failed: cannot run it as user ${probe.user.name}: setpriv (util-linux) is not installed` });
        return;
      }
      // setpriv execs `file` with its own argv: argv[0] is then the program, not `arguments[0]`.
      const [prefix, ...rest] = switchUserArgv(setpriv, probe.user);
      args = [...rest, file, ...args];
      file = prefix!;
      argv0 = undefined;
    }
    const child = spawn(file, args, {
      cwd: probe.cwd,
      env: probe.env,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(argv0 !== undefined ? { argv0 } : {}),
    });

    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
    });

    let done = false;
    const finish = (result: ProbeResult): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      // A grandchild may still hold stderr open; the check is over either way.
      child.stderr?.destroy();
      resolve(result);
    };
    const onAbort = (): void => {
      killGroup(child.pid);
      finish({ healthy: false, message: 'COMMAND health check aborted' });
    };
    signal.addEventListener('abort', onAbort, { once: true });

    child.on('error', (err) => {
      finish({ healthy: false, message: `COMMAND health check failed: cannot run ${file}: ${err.message}` });
    });
    child.on('exit', (code, sig) => {
      const tail = stderr.trim();
      const detail = tail === '' ? '' : `: ${tail}`;
      if (code === 0) finish({ healthy: true, message: 'COMMAND health check passed' });
      else if (code !== null) finish({ healthy: false, message: `COMMAND health check failed: exited with status ${code}${detail}` });
      else finish({ healthy: false, message: `COMMAND health check failed: terminated by ${sig ?? 'a signal'}${detail}` });
    });
  });
}

/** SIGKILL to the process group led by `pid`; a group that is already gone is fine. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: every process of the group has exited already.
  }
}

function formatHost(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}

import type { Clock } from '../../core/clock.ts';
import { tokenMatches } from '../../lib/token-digest.ts';
import type { ExecutorRecord } from './executor-record.ts';
import type { ExecutorToServer, ServerToExecutor } from './executor-protocol.ts';

/** The executor's end of its stream, as the HTTP layer gives it to CI. */
export interface ExecutorConnection {
  send(message: ServerToExecutor): void;
  close(): void;
}

export type ExecutorReport = Exclude<ExecutorToServer, { type: 'HELLO' } | { type: 'HEARTBEAT' }>;

/** Which token an executor proved itself with: the one of its launch, or the session one WELCOME gave it. */
export type ExecutorTokenKind = 'launch' | 'session';

export interface ExecutorHubOptions {
  clock: Clock;
  /** The executor CI launched under this id, if any (to check a HELLO's token). */
  executor(id: string): ExecutorRecord | undefined;
  /**
   * An executor said HELLO and proved its token: CI answers WELCOME in a turn of its own (with a
   * new session token when it proved the launch token).
   */
  onHello(hello: Extract<ExecutorToServer, { type: 'HELLO' }>, via: ExecutorTokenKind): void;
  /** A report of a build (STEP_*, LOG, BUILD_DONE), in the order the stream carried it. */
  onReport(executorId: string, report: ExecutorReport): void;
}

/**
 * The executors' streams, as CI sees them (the edge of the contract in executor-protocol.ts):
 * which executor has a stream now, when each was last heard from (heartbeats included), and
 * since when a stream is lost. It checks a HELLO's token against the executor CI launched
 * (`authenticate`, which the artifact uploads use too), and passes everything else on; what a HELLO or a report means (sequence numbers, what is
 * acknowledged, a build lost) is the planners' to decide.
 *
 * Contract: at most one stream per executor (a new HELLO replaces and closes the old stream);
 * messages of a stream that is not the executor's current one are dropped; `send` to an executor
 * without a stream is dropped (it reconnects and says what it runs).
 */
export class ExecutorHub {
  private readonly streams = new Map<string, ExecutorConnection>();
  private readonly heard = new Map<string, number>();
  private readonly lost = new Map<string, number>();

  constructor(private readonly o: ExecutorHubOptions) {}

  /**
   * The executor `executorId` proves itself with `token`, or not (undefined). The token is bound
   * to that executor and to its life: its record (gone once the executor ended) holds digests
   * only, compared in constant time (lib/token-digest.ts). The launch token proves it until its
   * expiry (`launchTokenExpiresAt`, a TTL after the launch); the session token (WELCOME's) for as
   * long as the executor lives.
   */
  authenticate(executorId: string, token: string): { executor: ExecutorRecord; via: ExecutorTokenKind } | undefined {
    const e = this.o.executor(executorId);
    if (e === undefined || token === '') return undefined;
    // Both compared, whichever matches: the time taken does not say which one nearly did.
    const session = e.sessionTokenDigest !== undefined && tokenMatches(token, e.sessionTokenDigest);
    const launch = tokenMatches(token, e.launchTokenDigest);
    if (session) return { executor: e, via: 'session' };
    if (launch && this.o.clock.now() < e.launchTokenExpiresAt) return { executor: e, via: 'launch' };
    return undefined;
  }

  /** A HELLO on a new stream: true if it was taken; false (ERROR sent, stream closed) for an executor CI did not launch. */
  connected(hello: Extract<ExecutorToServer, { type: 'HELLO' }>, token: string, conn: ExecutorConnection): boolean {
    const proved = this.authenticate(hello.executorId, token);
    if (proved === undefined) {
      conn.send({ type: 'ERROR', message: `unknown executor ${hello.executorId}, or its token is wrong or expired: CI did not launch it, or it ended` });
      conn.close();
      return false;
    }
    const e = proved.executor;
    const before = this.streams.get(e.id);
    if (before !== undefined && before !== conn) before.close();
    this.streams.set(e.id, conn);
    this.lost.delete(e.id);
    this.heard.set(e.id, this.o.clock.now());
    this.o.onHello(hello, proved.via);
    return true;
  }

  /** Any frame from an executor (heartbeats included): it is alive. */
  heardFrom(executorId: string): void {
    this.heard.set(executorId, this.o.clock.now());
  }

  message(executorId: string, conn: ExecutorConnection, m: ExecutorToServer): void {
    if (this.streams.get(executorId) !== conn || m.type === 'HELLO' || m.type === 'HEARTBEAT') return;
    this.o.onReport(executorId, m);
  }

  disconnected(executorId: string, conn: ExecutorConnection): void {
    if (this.streams.get(executorId) !== conn) return;
    this.streams.delete(executorId);
    this.lost.set(executorId, this.o.clock.now());
  }

  send(executorId: string, message: ServerToExecutor): void {
    this.streams.get(executorId)?.send(message);
  }

  /** Takes the stream for lost (a hung or partitioned executor): closed, and lost from now. */
  drop(executorId: string): void {
    const conn = this.streams.get(executorId);
    if (conn === undefined) return;
    this.streams.delete(executorId);
    this.lost.set(executorId, this.o.clock.now());
    conn.close();
  }

  /** The executor is gone: its stream is closed and everything about it forgotten. */
  forget(executorId: string): void {
    this.streams.get(executorId)?.close();
    this.streams.delete(executorId);
    this.heard.delete(executorId);
    this.lost.delete(executorId);
  }

  closeAll(): void {
    for (const c of this.streams.values()) c.close();
    this.streams.clear();
  }

  isConnected(executorId: string): boolean {
    return this.streams.has(executorId);
  }

  lastHeard(executorId: string): number | undefined {
    return this.heard.get(executorId);
  }

  /** Since when the executor's stream is lost (undefined: connected, or never connected). */
  lostSince(executorId: string): number | undefined {
    return this.lost.get(executorId);
  }
}

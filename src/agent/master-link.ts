import WebSocket from 'ws';
import type { Clock, Timer } from '../core/clock.ts';
import type { AgentToMaster, MasterToAgent } from '../protocol/agent.ts';

/**
 * The agent's end of its stream to the master (a WebSocket to `<master>/api/v1/agent`). It
 * registers on every (re)connection, heartbeats at the interval the master asks for, and
 * reconnects with backoff (100 ms doubling to 2 s) whenever the stream drops, for as long as the
 * agent runs: a master restart or a network blip costs one reregistration, nothing else.
 */
export interface MasterLinkOptions {
  masterUrl: string;
  /** The REGISTER message, built fresh for each connection (it lists the tasks of that moment). */
  register: () => Extract<AgentToMaster, { type: 'REGISTER' }>;
  onMessage: (message: MasterToAgent) => void;
  clock: Clock;
  log: (line: string) => void;
  /** The join token (a token that may register agents), sent on the stream's upgrade request. */
  token?: string;
  /** The certificates (PEM) that an HTTPS master's must chain to; default the system's. */
  ca?: Buffer;
}

export class MasterLink {
  private socket: WebSocket | undefined;
  private registered = false;
  /** The status of the last refused upgrade, said once until it changes. */
  private lastRefusal: number | undefined;
  /** The last connection error said, said once until it changes. */
  private lastError: string | undefined;
  private stopped = false;
  private backoffMs = 100;
  private heartbeatTimer: Timer | undefined;
  private reconnectTimer: Timer | undefined;
  private silenceTimer: Timer | undefined;
  private lastHeard = 0;

  constructor(private readonly options: MasterLinkOptions) {}

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.heartbeatTimer?.cancel();
    this.reconnectTimer?.cancel();
    this.silenceTimer?.cancel();
    this.socket?.close();
  }

  isRegistered(): boolean {
    return this.registered;
  }

  /** Sends if registered; answers whether it was sent. */
  send(message: AgentToMaster): boolean {
    if (!this.registered || this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /**
   * Heartbeats every `intervalMs`, and watches the master's: three intervals without a word from
   * it mean a silent partition (TCP may not notice for minutes), so the link is dropped and
   * reconnected.
   */
  startHeartbeats(intervalMs: number): void {
    this.heartbeatTimer?.cancel();
    this.silenceTimer?.cancel();
    const beat = () => {
      this.send({ type: 'HEARTBEAT' });
      this.heartbeatTimer = this.options.clock.setTimer(intervalMs, beat);
    };
    this.heartbeatTimer = this.options.clock.setTimer(intervalMs, beat);
    const watch = () => {
      if (this.options.clock.now() - this.lastHeard > 3 * intervalMs) {
        this.options.log('no word from the master for three heartbeat intervals; reconnecting');
        this.socket?.terminate();
        return;
      }
      this.silenceTimer = this.options.clock.setTimer(intervalMs, watch);
    };
    this.silenceTimer = this.options.clock.setTimer(intervalMs, watch);
  }

  private connect(): void {
    if (this.stopped) return;
    const url = new URL('/api/v1/agent', this.options.masterUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url, {
      ...(this.options.token !== undefined ? { headers: { Authorization: `Bearer ${this.options.token}` } } : {}),
      ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
    });
    this.socket = socket;
    socket.on('open', () => {
      this.backoffMs = 100;
      socket.send(JSON.stringify(this.options.register()));
    });
    socket.on('message', (data) => {
      this.lastHeard = this.options.clock.now();
      let message: MasterToAgent;
      try {
        message = JSON.parse(data.toString()) as MasterToAgent;
      } catch {
        this.options.log('the master sent a message that is not JSON; ignored');
        return;
      }
      if (message.type === 'REGISTERED') {
        this.registered = true;
        this.lastRefusal = undefined;
        this.lastError = undefined;
      }
      this.options.onMessage(message);
    });
    // A refused upgrade (401: no or a bad join token; 403: a token that may not register agents)
    // is said once per status, and tried again with the backoff: a token may be fixed meanwhile.
    socket.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      if (status !== this.lastRefusal) {
        this.lastRefusal = status;
        this.options.log(`the master refused the agent's stream with ${status}${status === 401 || status === 403 ? ': give a join token that may register agents (--join-token FILE, or SLIPWAY_JOIN_TOKEN)' : ''}`);
      }
      res.resume();
      socket.terminate();
    });
    // 'close' follows; the reconnect happens there. A failure that is not a refused connection
    // (a certificate the agent does not trust, say) is said once, until it changes.
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET') return;
      const why = e.code !== undefined ? `${e.code}: ${e.message}` : e.message;
      if (why !== this.lastError) {
        this.lastError = why;
        this.options.log(`cannot connect to the master at ${this.options.masterUrl}: ${why}${/CERT|SELF_SIGNED|certificate/i.test(why) ? ' (give the CA of its certificate with --ca FILE)' : ''}`);
      }
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.registered = false;
      this.heartbeatTimer?.cancel();
      this.silenceTimer?.cancel();
      if (this.stopped) return;
      const delay = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, 2000);
      this.reconnectTimer = this.options.clock.setTimer(delay, () => this.connect());
    });
  }
}

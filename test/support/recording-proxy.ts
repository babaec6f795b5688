import { createServer, request, type IncomingMessage, type Server } from 'node:http';

/** One scheduler call a framework made through the proxy: its `type` and its whole body. */
export interface RecordedCall {
  at: number;
  type: string;
  body: Record<string, unknown>;
}

/**
 * A transparent HTTP proxy in front of a master that records the scheduler calls
 * (`POST /api/v1/scheduler`) going through it: a test points a framework's `--master` at it to
 * see what the framework tells the master (SUPPRESS, REVIVE, DECLINE with their filters), which
 * the master's state does not show. Everything else, the SUBSCRIBE event stream included, passes
 * through untouched; when a client's connection ends, so does the proxied one (the master sees a
 * framework killed with -9 go).
 */
export class RecordingProxy {
  /** Scheduler calls of these types wait here, unforwarded, until `release` (a network that reorders). */
  private readonly holds = new Map<string, (() => void)[]>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    /** Every scheduler call so far, in the order they came. */
    readonly calls: readonly RecordedCall[],
    /** Scheduler calls the master answered, in the order it answered them. */
    readonly forwarded: readonly RecordedCall[],
  ) {}

  /** From now on, scheduler calls of `type` are held (the framework's HTTP request waits) until `release(type)`. */
  hold(type: string): void {
    if (!this.holds.has(type)) this.holds.set(type, []);
  }

  /** Forwards the held calls of `type`, in the order they came, and stops holding them. */
  release(type: string): void {
    const waiting = this.holds.get(type) ?? [];
    this.holds.delete(type);
    for (const go of waiting) go();
  }

  /** Whether a call of `type` is being held. */
  holding(type: string): boolean {
    return (this.holds.get(type)?.length ?? 0) > 0;
  }

  static async start(targetUrl: string): Promise<RecordingProxy> {
    const target = new URL(targetUrl);
    const calls: RecordedCall[] = [];
    const forwarded: RecordedCall[] = [];
    // Set once the proxy exists (the server's handler runs only after start resolved).
    const made: { proxy?: RecordingProxy } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        let call: RecordedCall | undefined;
        if (req.method === 'POST' && req.url === '/api/v1/scheduler') {
          try {
            const json = JSON.parse(body.toString()) as Record<string, unknown>;
            call = { at: Date.now(), type: String(json['type']), body: json };
            calls.push(call);
          } catch {
            // Not JSON: the master will say so.
          }
        }
        const held = call !== undefined ? made.proxy?.holds.get(call.type) : undefined;
        if (held !== undefined) held.push(() => forward(call));
        else forward(call);
      });
      const forward = (call: RecordedCall | undefined) => {
        const body = Buffer.concat(chunks);
        const headers = { ...req.headers, host: target.host };
        const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (up: IncomingMessage) => {
          if (call !== undefined) forwarded.push(call);
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          up.on('error', () => res.destroy());
        });
        upstream.on('error', () => {
          if (!res.headersSent) res.writeHead(502).end();
          else res.destroy();
        });
        // The client went (e.g. killed): end the proxied request too, stream included.
        res.on('close', () => upstream.destroy());
        upstream.end(body);
      };
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    made.proxy = new RecordingProxy(server, `http://127.0.0.1:${port}`, calls, forwarded);
    return made.proxy;
  }

  /** Calls of these types, in order. */
  callsOf(...types: string[]): RecordedCall[] {
    return this.calls.filter((c) => types.includes(c.type));
  }

  async close(): Promise<void> {
    for (const type of [...this.holds.keys()]) this.release(type);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * What the hostile-input suite and the monitor it preloads into a Slipway process
 * (loop-monitor-preload.ts) say to each other over Node's IPC channel. Each request carries an
 * id that its reply repeats.
 */

export type MonitorRequest = { type: 'state'; id: number } | { type: 'reset'; id: number };

/** The event loop's delay since the last reset, in ms. */
export interface LoopReport {
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  samples: number;
}

/** One Fastify server of the process: the port it listens on and every route it registered. */
export interface ServedRoutes {
  port: number;
  routes: { method: string; url: string }[];
}

export type MonitorReply =
  | { type: 'state'; id: number; loop: LoopReport; servers: ServedRoutes[]; rssBytes: number }
  | { type: 'reset'; id: number };

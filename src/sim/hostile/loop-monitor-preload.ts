import { subscribe } from 'node:diagnostics_channel';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import type { LoopReport, MonitorReply, MonitorRequest, ServedRoutes } from './monitor-messages.ts';

/**
 * Loaded with `node --import` into a Slipway process started by the hostile-input suite (see
 * hostile-target.ts), before the program itself. It watches the process from the inside, without
 * the program knowing:
 * - the event loop's delay (perf_hooks.monitorEventLoopDelay, 10 ms resolution): its maximum is
 *   the longest time the process could not answer anything, which the suite bounds;
 * - every Fastify server the process creates (Fastify publishes each new instance on the
 *   `fastify.initialization` diagnostics channel before any route is added), with every route
 *   it registers and the port it listens on, so that the suite attacks every route that exists,
 *   not a list someone has to keep.
 * It answers the parent over the IPC channel (MonitorRequest / MonitorReply) and never keeps the
 * process alive on its own.
 */

const histogram = monitorEventLoopDelay({ resolution: 10 });
histogram.enable();

const servers: { fastify: FastifyInstance; port: number | undefined; routes: { method: string; url: string }[] }[] = [];

// subscribe(name, fn), not channel(name).subscribe(fn): the latter's channel object may be
// garbage-collected on Node 20, and the subscription with it.
subscribe('fastify.initialization', (message) => {
  const { fastify } = message as { fastify: FastifyInstance };
  const entry: (typeof servers)[number] = { fastify, port: undefined, routes: [] };
  servers.push(entry);
  fastify.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) entry.routes.push({ method: String(method), url: route.url ?? route.path });
  });
  fastify.addHook('onListen', function (done) {
    const address = this.server.address();
    if (typeof address === 'object' && address !== null) entry.port = address.port;
    done();
  });
});

function loop(): LoopReport {
  // The histogram holds nanoseconds; a delay below the resolution reads as about 10 ms.
  return {
    maxMs: histogram.max / 1e6,
    p99Ms: histogram.percentile(99) / 1e6,
    meanMs: Number.isNaN(histogram.mean) ? 0 : histogram.mean / 1e6,
    samples: histogram.count,
  };
}

if (process.send !== undefined) {
  process.on('message', (raw) => {
    const request = raw as MonitorRequest;
    let reply: MonitorReply;
    if (request.type === 'reset') {
      histogram.reset();
      reply = { type: 'reset', id: request.id };
    } else {
      const served: ServedRoutes[] = servers.filter((s) => s.port !== undefined).map((s) => ({ port: s.port!, routes: s.routes }));
      reply = { type: 'state', id: request.id, loop: loop(), servers: served, rssBytes: process.memoryUsage.rss() };
    }
    process.send!(reply);
  });
  // The channel must not keep a program alive that has finished (it ends as it would alone).
  process.channel?.unref();
}

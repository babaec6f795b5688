import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { fastifyServerOptions, httpServerLimits, openFileLimit } from './http-server-limits.ts';

describe('httpServerLimits', () => {
  it('keeps the connection limit below the file descriptors, the head timeout within the request timeout', () => {
    const fds = openFileLimit();
    assert.ok(fds > 0);
    const l = httpServerLimits();
    assert.ok(l.maxConnections >= 32 && (fds < 400 || l.maxConnections < fds), `${l.maxConnections} of ${fds}`);
    assert.ok(httpServerLimits({}, 0.2).maxConnections <= l.maxConnections);
    assert.equal(httpServerLimits({ requestTimeoutMs: 500, headersTimeoutMs: 2000 }).headersTimeoutMs, 500);
    assert.ok(l.maxRequestMs >= l.requestTimeoutMs);
  });

  it('gives Fastify a server with the limits set', async () => {
    const limits = httpServerLimits({ requestTimeoutMs: 5000, headersTimeoutMs: 3000, idleTimeoutMs: 2000, keepAliveTimeoutMs: 1000, maxRequestsPerSocket: 7, maxConnections: 9 });
    const app = Fastify(fastifyServerOptions({ limits }));
    await app.ready();
    try {
      assert.equal(app.server.headersTimeout, 3000);
      assert.equal(app.server.requestTimeout, limits.maxRequestMs);
      assert.equal(app.server.timeout, 2000);
      assert.equal(app.server.keepAliveTimeout, 1000);
      assert.equal(app.server.maxRequestsPerSocket, 7);
      assert.equal(app.server.maxConnections, 9);
    } finally {
      await app.close();
    }
  });
});

/**
 * An `onRequest` hook for the routes that are WebSocket streams only (the agent's and the CI
 * executors' streams): a plain GET or HEAD, which @fastify/websocket would answer with an empty
 * 404, gets 426 Upgrade Required with a message saying what the route takes. Upgrades go on.
 * Typed structurally so that core stays free of the HTTP framework.
 */
export function websocketOnly(what: string) {
  return (
    request: { headers: Record<string, string | string[] | undefined> },
    reply: { code(status: number): { header(name: string, value: string): { send(body: unknown): unknown } } },
    done: () => void,
  ): void => {
    const upgrade = request.headers['upgrade'];
    if (typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket') {
      done();
      return;
    }
    reply.code(426).header('upgrade', 'websocket').send({ message: `${what} is a WebSocket stream: connect with Upgrade: websocket` });
  };
}

import { randomUUID } from 'node:crypto';
import type { FastifyError, FastifyInstance } from 'fastify';
import { parseCall } from '../../protocol/parse-call.ts';
import { schedulerErrorReply } from '../../protocol/scheduler-error-reply.ts';
import { readAccept } from '../../protocol/read-accept.ts';
import type { AcceptCall, Event } from '../../protocol/scheduler.ts';
import { secretUses } from '../../protocol/task-secrets.ts';
import { FrameworkNotSubscribed, MissingStreamId, StreamIdMismatch } from '../errors.ts';
import type { FrameworkConnection, Master } from '../master.ts';
import { recordio } from '../../protocol/recordio.ts';
import { Forbidden, identityOf } from '../../auth/http-gate.ts';
import { decide } from '../../auth/policy.ts';
import type { Identity } from '../../auth/tokens.ts';

/**
 * `POST /api/v1/scheduler`: Mesos's v1 scheduler HTTP API, JSON flavour (docs/scheduler-http-api.md).
 *
 * - SUBSCRIBE answers 200 with a chunked RecordIO stream of events and a `Mesos-Stream-Id`
 *   header; the stream stays open until the master ends it (ERROR, failover, teardown) or the
 *   client goes away, which disconnects the framework.
 * - Every other call must name a subscribed framework (else 403) and carry that framework's
 *   current `Mesos-Stream-Id` (missing: 400, another one: 403); it answers 202 with no body.
 * - Malformed JSON or an invalid call: 400 with a message that says what is wrong.
 *
 * Errors answer schedulerErrorReply (their status, the message as plain text), in a scope of
 * their own: the same reply that the in-process transport turns into its refusals.
 */
export function schedulerRoutes(app: FastifyInstance, master: Master): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const { status, message, internal } = schedulerErrorReply(error);
      if (internal) request.log.error(error);
      return reply.code(status).type('text/plain').send(message);
    });
    routes(scope, master);
  });
}

function isAdmin(who: Identity): boolean {
  return decide(who.policies, 'admin', { kind: 'frameworks', name: '*' }).allowed;
}

/**
 * Calls for a framework (SUBSCRIBE with its id, ACCEPT, KILL, TEARDOWN, ...) come only from the
 * principal that registered it, or from an admin of frameworks: 403 otherwise, naming both.
 */
function checkOwner(master: Master, who: Identity, frameworkId: string): void {
  const info = master.frameworkInfo(frameworkId);
  if (info === undefined || info.principal === who.name || isAdmin(who)) return;
  // A framework registered without a principal (before authentication) is an admin's to claim.
  throw new Forbidden(`framework ${frameworkId} belongs to principal '${info.principal ?? '(none)'}', not to '${who.name}'`);
}

/** Whether an ACCEPT's raw task infos mention secrets (cheap: most calls do not, and skip the reading below). */
function mentionsSecrets(accept: AcceptCall['accept']): boolean {
  // parseCall checked only the offers: anything may be here (the master answers what it cannot read).
  const operations: unknown = accept.operations;
  if (!Array.isArray(operations)) return false;
  for (const op of operations as unknown[]) {
    const infos = (op as { launch?: { task_infos?: unknown } } | null)?.launch?.task_infos;
    if (!Array.isArray(infos)) continue;
    for (const info of infos as { command?: { environment?: { variables?: unknown } }; container?: { volumes?: unknown } }[]) {
      const variables = info?.command?.environment?.variables;
      if (Array.isArray(variables) && variables.some((v: { type?: unknown; secret?: unknown } | null) => v?.type === 'SECRET' || v?.secret !== undefined)) return true;
      const volumes = info?.container?.volumes;
      if (Array.isArray(volumes) && volumes.some((v: { source?: unknown } | null) => v?.source !== undefined)) return true;
    }
  }
  return false;
}

/**
 * A framework that launches a task referencing a secret gets its value into the task: its
 * principal needs `use` on the secret (403 naming it). The built-in frameworks check the callers
 * of their own APIs instead (an app's `secrets`).
 */
function checkSecretUse(who: Identity, call: AcceptCall): void {
  if (!mentionsSecrets(call.accept)) return;
  for (const t of readAccept(call.accept).tasks) {
    if (t.problem !== undefined) continue; // Answered TASK_ERROR by the master.
    const uses = secretUses(t.info);
    if ('problem' in uses) continue; // Likewise.
    for (const u of uses) {
      const d = decide(who.policies, 'use', { kind: 'secrets', name: u.name });
      if (!d.allowed) throw new Forbidden(`task ${t.info.task_id.value}: ${d.reason}`);
    }
  }
}

function routes(app: FastifyInstance, master: Master): void {
  /** framework id -> its current stream id. */
  const streams = new Map<string, string>();
  /** Open event streams, ended when the server closes (else close() would wait on them forever). */
  const open = new Set<{ end(): void }>();
  app.addHook('onClose', async () => {
    for (const raw of open) raw.end();
  });

  app.post('/api/v1/scheduler', async (request, reply) => {
    const call = parseCall(request.body);
    const who = identityOf(request);
    if (who === undefined) throw new Forbidden('the scheduler API needs an authenticated caller');
    if (call.type !== 'SUBSCRIBE') {
      const frameworkId = call.framework_id.value;
      checkOwner(master, who, frameworkId);
      const current = streams.get(frameworkId);
      if (current === undefined) throw new FrameworkNotSubscribed(`framework ${frameworkId} is not subscribed`);
      const streamId = request.headers['mesos-stream-id'];
      if (streamId === undefined || streamId === '') throw new MissingStreamId("all non-SUBSCRIBE calls must carry the 'Mesos-Stream-Id' header of the framework's subscription");
      if (streamId !== current) throw new StreamIdMismatch(`'Mesos-Stream-Id' ${String(streamId)} is not the current stream of framework ${frameworkId}`);
      if (call.type === 'ACCEPT') checkSecretUse(who, call);
      master.call(call);
      return reply.code(202).send();
    }

    // The framework's principal is its caller's token name (Mesos's FrameworkInfo.principal, which
    // Mesos checks against the authenticated principal); a framework id already taken is only
    // for the principal that registered it.
    const info = call.subscribe.framework_info;
    if (info.principal !== undefined && info.principal !== who.name && !isAdmin(who)) {
      throw new Forbidden(`framework_info.principal '${info.principal}' is not the caller's principal '${who.name}'`);
    }
    info.principal ??= who.name;
    const requested = call.framework_id?.value ?? info.id?.value;
    if (requested !== undefined) checkOwner(master, who, requested);

    const streamId = randomUUID();
    const raw = reply.raw;
    let isOpen = true;
    const conn: FrameworkConnection = {
      send(event: Event) {
        if (isOpen) raw.write(recordio(event));
      },
      close() {
        if (!isOpen) return;
        isOpen = false;
        raw.end();
      },
    };
    // Subscribe first: a refused subscription (removed framework, bad roles) is an ordinary
    // error reply, not a stream. The master sends SUBSCRIBED on `conn` before returning, so the
    // first chunk must wait until the headers are out: buffer it.
    const buffered: Event[] = [];
    const sendLater = conn.send;
    conn.send = (e) => void buffered.push(e);
    const frameworkId = master.subscribe(call, conn);
    streams.set(frameworkId, streamId);
    reply.hijack();
    raw.writeHead(200, { 'Content-Type': 'application/json', 'Mesos-Stream-Id': streamId, 'Cache-Control': 'no-cache' });
    conn.send = sendLater;
    for (const e of buffered) conn.send(e);
    open.add(raw);
    raw.on('close', () => {
      open.delete(raw);
      isOpen = false;
      if (streams.get(frameworkId) === streamId) streams.delete(frameworkId);
      master.disconnect(frameworkId, conn);
    });
    return reply;
  });
}

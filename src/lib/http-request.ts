import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * One HTTP(S) request with Node's own clients, for the calls between Slipway's processes that
 * must trust a private CA given on the command line (`--ca`, `--agent-ca`): the global `fetch`
 * trusts only the system's CAs and NODE_EXTRA_CA_CERTS, read once at start. Resolves with the
 * response once its head is in (the body is the returned stream, to read or pipe); rejects on a
 * connection or TLS error, a timeout (no head within `timeoutMs`), or `signal`.
 */
export function requestUrl(
  url: URL,
  o: { method?: string; headers?: Record<string, string>; body?: string; ca?: Buffer | undefined; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, {
      method: o.method ?? 'GET',
      headers: { ...o.headers, ...(o.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(o.body)) } : {}) },
      ...(o.ca !== undefined && url.protocol === 'https:' ? { ca: o.ca } : {}),
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
    });
    const timer = o.timeoutMs !== undefined ? setTimeout(() => req.destroy(new Error(`no answer from ${url.origin} within ${o.timeoutMs} ms`)), o.timeoutMs) : undefined;
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(o.body);
  });
}

/** The whole body of a response as text (for small answers: whoami, errors). */
export async function responseText(res: IncomingMessage, maxBytes = 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > maxBytes) {
      res.destroy();
      throw new Error(`answer larger than ${maxBytes} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

import type { ReadinessCheck } from './app-definition.ts';

/** One readiness check result, in the shape of Marathon's `readinessCheckResults`. */
export interface ReadinessResult {
  ready: boolean;
  lastResponse?: { status: number; contentType: string; body: string };
  /** Why no response came (connection refused, timeout...). */
  error?: string;
}

/** At most this much of a response body is kept (Marathon keeps it only with preserveLastResponse). */
const MAX_BODY = 4096;

/**
 * Runs one readiness check of an instance, from the framework as Marathon does: an HTTP(S) GET
 * of `path` on the instance's host and the port named by `portName`; ready when the status is one
 * of `httpStatusCodesForReady`. Never throws: a failure is a not-ready result.
 */
export async function probeReadiness(check: ReadinessCheck, host: string, port: number): Promise<ReadinessResult> {
  const scheme = check.protocol === 'HTTPS' ? 'https' : 'http';
  try {
    const response = await fetch(`${scheme}://${host}:${port}${check.path}`, { signal: AbortSignal.timeout(check.timeoutSeconds * 1000), redirect: 'manual' });
    const body = (await response.text()).slice(0, MAX_BODY);
    const ready = check.httpStatusCodesForReady.includes(response.status);
    return {
      ready,
      ...(check.preserveLastResponse ? { lastResponse: { status: response.status, contentType: response.headers.get('content-type') ?? '', body } } : {}),
    };
  } catch (e) {
    return { ready: false, error: e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e) };
  }
}

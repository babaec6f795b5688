/**
 * What a Docker engine call failed with, as dockerode (docker-modem) reports it. Shared by the
 * agent's docker containerizer and CI's image steps, which talk to the same engine API.
 */

/** The HTTP status the engine answered (404 no such container or image, 409 conflict, ...), if any. */
export function dockerStatusCode(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && 'statusCode' in e && typeof e.statusCode === 'number' ? e.statusCode : undefined;
}

/** The engine's own message when it sent one ("No such image: ..."), else the error's. */
export function dockerMessage(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'json' in e) {
    const json = (e as { json?: unknown }).json;
    if (typeof json === 'object' && json !== null && 'message' in json && typeof json.message === 'string') return json.message;
  }
  const text = e instanceof Error ? e.message : String(e);
  // docker-modem's wrapping, "(HTTP code 500) server error - <the engine's words>", minus the wrapping.
  return /^\(HTTP code \d+\) [^-]*- ([\s\S]*)$/.exec(text)?.[1]?.trim() ?? text.trim();
}

import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { SlipwayError } from '../core/errors.ts';
import { CALL_PAYLOADS, CALL_TYPES, type Call, type CallType } from './scheduler.ts';

/** A scheduler call that is not valid JSON of the v1 API; the HTTP layer answers 400 with the message. */
export class InvalidCall extends SlipwayError {
  readonly code = 'INVALID_CALL';
  readonly status = 400;
}

const checks = new Map<CallType, TypeCheck<TSchema>>();

function checkFor(type: CallType): TypeCheck<TSchema> | undefined {
  const schema = CALL_PAYLOADS[type];
  if (schema === undefined) return undefined;
  let check = checks.get(type);
  if (check === undefined) {
    check = TypeCompiler.Compile(schema);
    checks.set(type, check);
  }
  return check;
}

/**
 * Checks that `json` is a well-formed scheduler Call and returns it typed. Throws InvalidCall with
 * the JSON path and what was expected, e.g. `accept.offer_ids: Expected array`. Semantic checks
 * (is the offer known? do the resources fit?) are the master's, not this function's.
 */
export function parseCall(json: unknown): Call {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InvalidCall('a call must be a JSON object');
  const body = json as Record<string, unknown>;
  const type = body['type'];
  if (typeof type !== 'string' || !(CALL_TYPES as string[]).includes(type)) {
    throw new InvalidCall(`'type' must be one of ${CALL_TYPES.join(', ')}; got ${JSON.stringify(type)}`);
  }
  const callType = type as CallType;
  const frameworkId = body['framework_id'];
  if (frameworkId !== undefined && !(typeof frameworkId === 'object' && frameworkId !== null && typeof (frameworkId as { value?: unknown }).value === 'string')) {
    throw new InvalidCall(`'framework_id' must be an object {"value": "..."}`);
  }
  if (callType !== 'SUBSCRIBE' && frameworkId === undefined) throw new InvalidCall(`a ${callType} call needs 'framework_id'`);
  const field = callType.toLowerCase();
  const check = checkFor(callType);
  const payload = body[field];
  if (check !== undefined) {
    const optional = callType === 'REVIVE' || callType === 'SUPPRESS';
    if (payload === undefined && !optional) throw new InvalidCall(`a ${callType} call needs the '${field}' object`);
    if (payload !== undefined && !check.Check(payload)) {
      const first = check.Errors(payload).First();
      const path = first === undefined ? '' : first.path.replace(/^\//, '').replaceAll('/', '.');
      throw new InvalidCall(`${field}${path === '' ? '' : '.' + path}: ${first?.message ?? 'invalid'}`);
    }
  }
  if (callType === 'SUBSCRIBE') {
    const info = (payload as { framework_info: { id?: { value: string } } }).framework_info;
    if (frameworkId !== undefined && info.id?.value !== (frameworkId as { value: string }).value) {
      throw new InvalidCall(`'framework_id' must equal 'subscribe.framework_info.id' on a resubscription`);
    }
  }
  return body as unknown as Call;
}

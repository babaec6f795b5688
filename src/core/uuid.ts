import { randomFillSync } from 'node:crypto';

/**
 * Random 16-byte UUIDs, base64-encoded as Mesos's JSON carries `bytes` fields (status update
 * uuids). Random bytes are drawn in blocks, as Node's own randomUUID does, because one syscall
 * per update is the bottleneck when agents send hundreds of thousands of them.
 */
const BLOCK = 16 * 4096;
let pool = Buffer.alloc(0);
let offset = BLOCK;

export function newUuidBase64(): string {
  if (offset >= pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(BLOCK));
    offset = 0;
  }
  const s = pool.toString('base64', offset, offset + 16);
  offset += 16;
  return s;
}

/**
 * RecordIO framing of Mesos's streaming APIs (docs/recordio.md): each record is its length in
 * bytes, in decimal, a newline, then the record itself.
 */
export function recordio(message: unknown): string {
  const json = JSON.stringify(message);
  return `${Buffer.byteLength(json)}\n${json}`;
}

/**
 * Incremental decoder for clients (SDK, tests, agents of other kinds): feed chunks as they come,
 * get whole records back. Lengths count bytes, so chunks are handled as bytes, not strings.
 */
export class RecordIODecoder {
  private buffer = Buffer.alloc(0);

  push(chunk: Buffer | string): unknown[] {
    this.buffer = Buffer.concat([this.buffer, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    const out: unknown[] = [];
    for (;;) {
      const nl = this.buffer.indexOf(0x0a);
      if (nl < 0) break;
      const length = Number(this.buffer.subarray(0, nl).toString('ascii'));
      if (!Number.isInteger(length) || length < 0) throw new Error(`RecordIO: bad length prefix '${this.buffer.subarray(0, nl).toString('ascii')}'`);
      if (this.buffer.length < nl + 1 + length) break;
      out.push(JSON.parse(this.buffer.subarray(nl + 1, nl + 1 + length).toString('utf8')));
      this.buffer = this.buffer.subarray(nl + 1 + length);
    }
    return out;
  }
}

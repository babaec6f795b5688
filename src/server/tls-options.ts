import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SlipwayError } from '../core/errors.ts';
import type { TlsFiles } from '../lib/http-server-limits.ts';

/** The certificate and key a server serves HTTPS with (`--tls-cert FILE --tls-key FILE`, PEM). */
export interface TlsOptions {
  certFile: string;
  keyFile: string;
}

export class InvalidTlsFiles extends SlipwayError {
  readonly code = 'INVALID_TLS_FILES';
  readonly status = 400;
}

/** Reads the PEM files, with a message naming the one that cannot be read or is not PEM. */
export function readTls(o: TlsOptions): TlsFiles {
  const read = (file: string, what: string, marker: RegExp): Buffer => {
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch (e) {
      throw new InvalidTlsFiles(`cannot read the TLS ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!marker.test(data.toString('latin1'))) throw new InvalidTlsFiles(`${file} is not a PEM ${what} (no "-----BEGIN" line)`);
    return data;
  };
  return { cert: read(o.certFile, 'certificate', /-----BEGIN CERTIFICATE-----/), key: read(o.keyFile, 'key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/) };
}

/** `--tls-cert` and `--tls-key` go together; either alone is a usage error. */
export function tlsFromFlags(o: { tlsCert?: string; tlsKey?: string }): TlsOptions | undefined {
  if (o.tlsCert === undefined && o.tlsKey === undefined) return undefined;
  if (o.tlsCert === undefined || o.tlsKey === undefined) throw new InvalidTlsFiles('--tls-cert and --tls-key go together: give both');
  // Absolute: CI's executors are given the CA's path, and run in their sandboxes.
  return { certFile: resolve(o.tlsCert), keyFile: resolve(o.tlsKey) };
}

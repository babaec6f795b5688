import { closeSync, constants, existsSync, fchmodSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { TokenRegistry } from './tokens.ts';

/**
 * The first token of a cluster (issue 12: secure by default, easy to start). On a start with no
 * live token, an admin token is created and written to `file` (mode 0600, whatever the umask),
 * and its path is said in the log; the CLI finds it there for a local `slipway up`. The text is
 * the operator's when they gave one (`SLIPWAY_BOOTSTRAP_TOKEN`), random otherwise. Answers the
 * token when one was created now.
 */
export async function bootstrapAdminToken(tokens: TokenRegistry, file: string, o: { given?: string; log?: (line: string) => void } = {}): Promise<string | undefined> {
  if (tokens.hasLiveTokens) return undefined;
  const spec = { name: 'admin', policies: ['admin'] };
  const { token } = o.given !== undefined && o.given !== '' ? await tokens.adopt(o.given, spec) : await tokens.create(spec);
  writeSecretFile(file, `${token}\n`);
  o.log?.(`created the first admin token: ${file} (mode 0600; export SLIPWAY_TOKEN=$(cat ${file}), or curl -u :$(cat ${file}) ...)`);
  return token;
}

/**
 * A token kept in `file` for a part of this process or machine (the join token of `slipway up`'s
 * own agent): the one in the file when it is still live, else a new one written there (0600).
 */
export async function localToken(tokens: TokenRegistry, file: string, spec: { name: string; policies: string[] }): Promise<string> {
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8').trim();
    if (tokens.resolve(text) !== undefined) return text;
  }
  const { token } = await tokens.create(spec);
  writeSecretFile(file, `${token}\n`);
  return token;
}

/** Writes `text` to `file` readable by its owner only (created 0600; an existing file is truncated and set to 0600 first). */
export function writeSecretFile(file: string, text: string): void {
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

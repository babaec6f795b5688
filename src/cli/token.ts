import { existsSync, readFileSync } from 'node:fs';

/** Where `slipway up` (default data dir) writes the admin token on its first start. */
export const LOCAL_ADMIN_TOKEN = './.slipway/admin.token';

/**
 * The token the CLI's clients send (the SDK reads SLIPWAY_TOKEN): `--token` when given, else
 * SLIPWAY_TOKEN, else the admin token of a local `slipway up` (./.slipway/admin.token), so that
 * `slipway up` then `slipway ci build` works on one machine with nothing to type.
 */
export function useToken(flag: string | undefined): void {
  if (flag !== undefined && flag !== '') {
    process.env['SLIPWAY_TOKEN'] = flag;
    return;
  }
  if (process.env['SLIPWAY_TOKEN'] !== undefined && process.env['SLIPWAY_TOKEN'] !== '') return;
  if (existsSync(LOCAL_ADMIN_TOKEN)) {
    try {
      process.env['SLIPWAY_TOKEN'] = readFileSync(LOCAL_ADMIN_TOKEN, 'utf8').trim();
    } catch {
      // Unreadable (another user's): the call goes without, and the server says 401 and why.
    }
  }
}

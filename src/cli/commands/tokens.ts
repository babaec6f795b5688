import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { AuthClient, AuthRequestFailed } from '../../sdk/auth-client.ts';
import { positiveInt } from '../options.ts';

/**
 * `slipway token create|list|revoke` and `slipway whoami`: tokens of a master (`/auth/v1`). The
 * caller's own token comes from --token, SLIPWAY_TOKEN or ./.slipway/admin.token (src/cli/main.ts).
 *
 *   slipway token create <name> --policy developer [--policy ...] [--ttl <seconds>]
 *                                         prints the new token (shown this once) on stdout
 *   slipway token list                    id, name, policies, created, revoked
 *   slipway token revoke <id>
 *   slipway secret put <name> [--from-file F]   the value from stdin (or F), never from argv
 *   slipway secret list | delete <name>
 */
/** Columns padded to their widest cell, two spaces apart. */
function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  process.stdout.write(line(head) + rows.map(line).join(''));
}

/** All of stdin, as UTF-8 (a value piped in: `printf %s "$PW" | slipway secret put db/password`). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerTokens(program: Command): void {
  const token = program.command('token').description('create, list and revoke tokens (a token names policies: viewer, developer, deployer, operator, admin, agent, framework)');
  const MASTER = ['--master <url>', 'the master', 'http://127.0.0.1:5050'] as const;

  token
    .command('create <name>')
    .description('create a token; prints it on stdout, shown this once')
    .option(...MASTER)
    .option('--policy <name>', 'a policy the token holds (repeat for more)', (v: string, all: string[] = []) => [...all, v])
    .option('--ttl <seconds>', 'expires after this many seconds', positiveInt('--ttl'))
    .action(async (name: string, o: { master: string; policy?: string[]; ttl?: number }) => {
      await run(async () => {
        const t = await new AuthClient(o.master).createToken({ name, policies: o.policy ?? ['viewer'], ...(o.ttl !== undefined ? { ttlSeconds: o.ttl } : {}) });
        process.stderr.write(`token ${t.id} '${t.name}' (${t.policies.join(', ')})${t.expiresAt !== undefined ? `, expires ${t.expiresAt}` : ''}: keep it secret, it is not shown again\n`);
        process.stdout.write(`${t.token}\n`);
      });
    });

  token
    .command('list')
    .description('list the tokens (without their secrets)')
    .option(...MASTER)
    .action(async (o: { master: string }) => {
      await run(async () => {
        const list = await new AuthClient(o.master).tokens();
        printTable(['ID', 'NAME', 'POLICIES', 'CREATED', 'STATE'], list.map((t) => [t.id, t.name, t.policies.join(','), t.createdAt, t.revoked ? 'revoked' : t.expiresAt !== undefined ? `expires ${t.expiresAt}` : '']));
      });
    });

  token
    .command('revoke <id>')
    .description('revoke a token for good')
    .option(...MASTER)
    .action(async (id: string, o: { master: string }) => {
      await run(async () => {
        const t = await new AuthClient(o.master).revokeToken(id);
        process.stdout.write(`token ${t.id} '${t.name}' is revoked\n`);
      });
    });

  const policy = program.command('policy').description('write, list and delete policies (the rules a token holds: capabilities on apps, CI jobs, frameworks, ...; docs/security.md)');
  policy
    .command('put <name> <file>')
    .description('create or replace a policy from a JSON file: {"description": "...", "rules": [{"kind": "apps", "match": "/team-a/*", "capabilities": ["read", "deploy"]}]}')
    .option(...MASTER)
    .action(async (name: string, file: string, o: { master: string }) => {
      await run(async () => {
        const doc: unknown = JSON.parse(readFileSync(file, 'utf8'));
        const p = await new AuthClient(o.master).putPolicy(name, doc);
        process.stdout.write(`policy ${p.name}: ${p.rules.length} rule(s)\n`);
      });
    });
  policy
    .command('list')
    .description('list the policies, the built-in ones first')
    .option(...MASTER)
    .action(async (o: { master: string }) => {
      await run(async () => {
        for (const p of await new AuthClient(o.master).policies()) process.stdout.write(`${p.name.padEnd(16)} ${p.builtIn ? 'built-in ' : ''}${p.description}\n`);
      });
    });
  policy
    .command('delete <name>')
    .description('delete a policy (tokens that name it lose what it granted)')
    .option(...MASTER)
    .action(async (name: string, o: { master: string }) => {
      await run(async () => {
        await new AuthClient(o.master).deletePolicy(name);
        process.stdout.write(`policy ${name} is deleted\n`);
      });
    });

  const secret = program.command('secret').description('write, list and delete secrets of the secret store (write-only: no command shows a value; apps, CI jobs and tasks reference them by name)');
  secret
    .command('put <name>')
    .description('create or replace a secret; its value is read from stdin (or --from-file), never from the command line (ps would show it)')
    .option(...MASTER)
    .option('--from-file <path>', 'read the value from this file instead of stdin')
    .action(async (name: string, o: { master: string; fromFile?: string }) => {
      await run(async () => {
        if (o.fromFile === undefined && process.stdin.isTTY) process.stderr.write(`value of secret ${name} (end with Ctrl-D):\n`);
        const value = o.fromFile !== undefined ? readFileSync(o.fromFile, 'utf8') : await readStdin();
        const s = await new AuthClient(o.master).putSecret(name, value);
        process.stdout.write(`secret ${s.name}: version ${s.version}\n`);
      });
    });
  secret
    .command('list')
    .description('list the secrets the token may read (names and versions, never values)')
    .option(...MASTER)
    .action(async (o: { master: string }) => {
      await run(async () => {
        const list = await new AuthClient(o.master).secrets();
        printTable(['NAME', 'VERSION', 'UPDATED', 'BY'], list.map((s) => [s.name, String(s.version), s.updatedAt, s.updatedBy]));
      });
    });
  secret
    .command('delete <name>')
    .description('delete a secret (tasks already given it keep their copy; new launches that reference it fail)')
    .option(...MASTER)
    .action(async (name: string, o: { master: string }) => {
      await run(async () => {
        await new AuthClient(o.master).deleteSecret(name);
        process.stdout.write(`secret ${name} is deleted\n`);
      });
    });

  program
    .command('whoami')
    .description('who the token is: its name, policies and capabilities')
    .option(...MASTER)
    .action(async (o: { master: string }) => {
      await run(async () => {
        const me = await new AuthClient(o.master).whoami();
        process.stdout.write(`${me.name}${me.tokenId !== null ? ` (token ${me.tokenId})` : ''}: ${me.policies.join(', ') || 'no policies'}\n`);
        for (const [kind, caps] of Object.entries(me.capabilities)) if (caps.length > 0) process.stdout.write(`  ${kind.padEnd(10)} ${caps.join(', ')}\n`);
      });
    });
}

async function run(f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (e) {
    process.stderr.write(`slipway: ${e instanceof AuthRequestFailed || e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}

import { authHeaders, defaultToken } from './credentials.ts';

/** A token as `/auth/v1/tokens` shows it (never its secret, but once, when it is created). */
export interface TokenInfo {
  id: string;
  name: string;
  policies: string[];
  createdAt: string;
  expiresAt?: string;
  revoked: boolean;
  /** Only in the answer that created it. */
  token?: string;
}

export class AuthRequestFailed extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A secret of the secret store as `/auth/v1/secrets` shows it: never its value. */
export interface SecretInfo {
  name: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

/** `/auth/v1/secrets/<name>`, each segment of the name encoded (a name may hold `/`). */
function secretPath(name: string): string {
  return `/auth/v1/secrets/${name.replace(/^\//, '').split('/').map(encodeURIComponent).join('/')}`;
}

/** A client of `/auth/v1` (tokens, policies, secrets, whoami, audit), for the CLI and tools. */
export class AuthClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined = defaultToken(),
  ) {}

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    let r: Response;
    try {
      r = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: { ...authHeaders(this.token), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (e) {
      throw new AuthRequestFailed(0, `cannot reach ${this.baseUrl}: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`);
    }
    const text = await r.text();
    if (!r.ok) throw new AuthRequestFailed(r.status, `${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text) as T;
  }

  whoami(): Promise<{ name: string; tokenId: string | null; policies: string[]; capabilities: Record<string, string[]> }> {
    return this.json('GET', '/auth/v1/whoami');
  }

  async tokens(): Promise<TokenInfo[]> {
    return (await this.json<{ tokens: TokenInfo[] }>('GET', '/auth/v1/tokens')).tokens;
  }

  createToken(o: { name: string; policies: string[]; ttlSeconds?: number }): Promise<TokenInfo & { token: string }> {
    return this.json('POST', '/auth/v1/tokens', o);
  }

  revokeToken(id: string): Promise<TokenInfo> {
    return this.json('DELETE', `/auth/v1/tokens/${encodeURIComponent(id)}`);
  }

  async policies(): Promise<{ name: string; description: string; builtIn: boolean; rules: unknown[] }[]> {
    return (await this.json<{ policies: { name: string; description: string; builtIn: boolean; rules: unknown[] }[] }>('GET', '/auth/v1/policies')).policies;
  }

  putPolicy(name: string, doc: unknown): Promise<{ name: string; rules: unknown[] }> {
    return this.json('PUT', `/auth/v1/policies/${encodeURIComponent(name)}`, doc);
  }

  deletePolicy(name: string): Promise<void> {
    return this.delete(`/auth/v1/policies/${encodeURIComponent(name)}`, `policy ${name}`);
  }

  async secrets(): Promise<SecretInfo[]> {
    return (await this.json<{ secrets: SecretInfo[] }>('GET', '/auth/v1/secrets')).secrets;
  }

  /** Creates or replaces a secret; answers it without its value. */
  putSecret(name: string, value: string): Promise<SecretInfo> {
    return this.json('PUT', secretPath(name), { value });
  }

  deleteSecret(name: string): Promise<void> {
    return this.delete(secretPath(name), `secret ${name}`);
  }

  /** A DELETE answered 204 (no body). */
  private async delete(path: string, what: string): Promise<void> {
    let r: Response;
    try {
      r = await fetch(new URL(path, this.baseUrl), { method: 'DELETE', headers: authHeaders(this.token) });
    } catch (e) {
      throw new AuthRequestFailed(0, `cannot reach ${this.baseUrl}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!r.ok) throw new AuthRequestFailed(r.status, `DELETE ${what}: ${r.status} ${await r.text()}`);
  }
}

import { SecretMask } from '../../lib/secret-mask.ts';
import { InvalidJob, type FieldProblem } from './ci-errors.ts';
import { REDACTED, setOwnValue, type JobDefinition, type SealedSecret, type SecretInput, type StoredJobDocument, type StoredSecret } from './job-definition.ts';

/**
 * A job's secrets (`secrets` and `triggers.webhook.secret`) in each of their forms:
 *
 *   PUT body ──parseJobDefinition──► JobDefinition<SecretInput>   (a value, "***", or {encrypted})
 *        ──resolveJobSecrets (in the turn, against the stored job)──► JobDefinition   (in memory)
 *        ──sealJob──► JobDefinition<SealedSecret>   (the store's document, the git mirror's file)
 *        ──redactJob──► JobDefinition<"***">          (every API answer)
 *   store document ──readJobDocument──► StoredJobDocument ──openJob──► JobDefinition
 *
 * Sealing goes through SecretSealer, an interface CI owns; the server gives it lib's SecretBox.
 * Each value is sealed for its place (secretContext, webhookSecretContext): a sealed value opens
 * only as the same secret of the same job, so a value copied from one job (or field) to another,
 * in the store or in a PUT, is refused rather than decrypted there.
 */

/** Seals and opens secrets (lib's SecretBox, AES-256-GCM); `open` throws for a value it cannot open. */
export interface SecretSealer {
  seal(plaintext: string, context: string): string;
  open(sealed: string, context: string): string;
}

export function secretContext(job: string, name: string): string {
  return `ci job ${job} secret ${name}`;
}

export function webhookSecretContext(job: string): string {
  return `ci job ${job} webhook secret`;
}

/** The job with every secret value replaced: what every answer of the API shows. */
export function redactJob(job: JobDefinition<unknown>): JobDefinition<typeof REDACTED> {
  return mapSecrets(job, () => REDACTED);
}

/**
 * The secrets of a PUT read against the job stored under its name: "***" keeps the stored
 * value, `{encrypted}` is opened (it must have been sealed by this server for this job and
 * name: what the git mirror holds), and a string is the value. Throws InvalidJob naming every
 * secret that cannot be read.
 */
export function resolveJobSecrets(input: JobDefinition<SecretInput>, stored: JobDefinition | undefined, sealer: Pick<SecretSealer, 'open'>): JobDefinition {
  const problems: FieldProblem[] = [];
  const resolve = (value: SecretInput, field: string, kept: string | undefined, context: string): string => {
    if (value === REDACTED) {
      if (kept !== undefined) return kept;
      problems.push({ field, message: `is "${REDACTED}", which keeps the stored value, but job ${input.name} has none stored: give the value` });
      return '';
    }
    if (typeof value === 'string') return value;
    try {
      return sealer.open(value.encrypted, context);
    } catch {
      problems.push({ field, message: `does not open with this server's key (sealed by a server with another key, for another job or secret, or altered): give the value, or start this server with the key it was sealed with (--secret-key-file)` });
      return '';
    }
  };
  const job = mapSecrets(input, (value, where) =>
    where.kind === 'secret'
      ? resolve(value, `secrets.${where.name}`, own(stored?.secrets, where.name), secretContext(input.name, where.name))
      : resolve(value, 'triggers.webhook.secret', stored?.triggers.webhook?.secret, webhookSecretContext(input.name)),
  );
  if (problems.length > 0) throw new InvalidJob(problems);
  return job;
}

/**
 * The job with every secret sealed (the store's document, less its `docVersion`, and the git
 * mirror's file). A value equal to the one `previous` held is given its sealed form again rather
 * than sealed anew (each sealing differs: the mirror would change on every write otherwise).
 */
export function sealJob(job: JobDefinition, sealer: Pick<SecretSealer, 'seal'>, previous?: { job: JobDefinition; sealed: JobDefinition<SealedSecret> }): JobDefinition<SealedSecret> {
  const reuse = (value: string, before: string | undefined, sealedBefore: SealedSecret | undefined, context: string): SealedSecret =>
    before === value && sealedBefore !== undefined ? sealedBefore : { encrypted: sealer.seal(value, context) };
  const same = previous !== undefined && previous.job.name === job.name ? previous : undefined;
  return mapSecrets(job, (value, where) =>
    where.kind === 'secret'
      ? reuse(value, own(same?.job.secrets, where.name), own(same?.sealed.secrets, where.name), secretContext(job.name, where.name))
      : reuse(value, same?.job.triggers.webhook?.secret, same?.sealed.triggers.webhook?.secret, webhookSecretContext(job.name)),
  );
}

/**
 * A stored job with its secrets opened; `inClear` when some were stored in clear (by a version
 * before secrets were sealed: CI seals them again). Throws what the sealer throws for a value it
 * cannot open (another key, or altered).
 */
export function openJob(doc: StoredJobDocument, sealer: Pick<SecretSealer, 'open'>): { job: JobDefinition; sealed: JobDefinition<SealedSecret> | undefined; inClear: boolean } {
  let inClear = false;
  const { docVersion: _version, ...rest } = doc as StoredJobDocument & { docVersion?: unknown };
  const stored = { ...rest, secrets: doc.secrets ?? {} } as JobDefinition<StoredSecret>;
  const job = mapSecrets(stored, (value, where) => {
    if (typeof value === 'string') {
      inClear = true;
      return value;
    }
    return sealer.open(value.encrypted, where.kind === 'secret' ? secretContext(doc.name, where.name) : webhookSecretContext(doc.name));
  });
  return { job, sealed: inClear ? undefined : (stored as JobDefinition<SealedSecret>), inClear };
}

/** Every secret value of the job given to its steps (what their logs mask). */
export function stepSecretValues(job: JobDefinition): string[] {
  return Object.values(job.secrets).filter((v) => v !== '');
}

const NO_MASK = new SecretMask([]);
/**
 * Jobs are values, replaced on change: one mask per job value, made on first use, and made
 * again when the values of its credentials (secrets of the store, which change on their own) do.
 */
const masks = new WeakMap<JobDefinition, { credentials: string; mask: SecretMask }>();

/** The mask of the job's step secrets, its credentials' current values included (none for an unknown job). */
export function jobSecretMask(job: JobDefinition | undefined, credential?: (name: string) => string | undefined): SecretMask {
  if (job === undefined) return NO_MASK;
  const names = [...Object.values(job.credentials ?? {}), ...[...Object.values(job.artifactStores ?? {}), ...Object.values(job.registries ?? {})].flatMap((s) => (s.passwordSecret !== undefined ? [s.passwordSecret] : []))];
  const values = names.flatMap((name) => {
    const v = credential?.(name);
    return v !== undefined && v !== '' ? [v] : [];
  });
  const key = values.join('\u0000');
  let cached = masks.get(job);
  if (cached === undefined || cached.credentials !== key) {
    cached = { credentials: key, mask: new SecretMask([...stepSecretValues(job), ...values]) };
    masks.set(job, cached);
  }
  return cached.mask;
}

type SecretPlace = { kind: 'secret'; name: string } | { kind: 'webhook' };

/** The job with each secret value mapped by `f`, every other field as it is. */
function mapSecrets<A, B>(job: JobDefinition<A>, f: (value: A, where: SecretPlace) => B): JobDefinition<B> {
  const secrets: Record<string, B> = {};
  for (const [name, value] of Object.entries(job.secrets)) setOwnValue(secrets, name, f(value, { kind: 'secret', name }));
  const { webhook, ...otherTriggers } = job.triggers;
  const triggers: JobDefinition<B>['triggers'] = otherTriggers;
  if (webhook !== undefined) {
    const { secret, ...hook } = webhook;
    // Field order as parseJobDefinition makes it: the secret first.
    triggers.webhook = secret === undefined ? hook : { secret: f(secret, { kind: 'webhook' }), ...hook };
  }
  return { ...job, triggers, secrets };
}

function own<V>(record: Record<string, V> | undefined, name: string): V | undefined {
  return record !== undefined && Object.prototype.hasOwnProperty.call(record, name) ? record[name] : undefined;
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SecretBox } from '../../lib/secret-box.ts';
import { InvalidJob } from './ci-errors.ts';
import { parseJobDefinition, readJobDocument, REDACTED, type JobDefinition } from './job-definition.ts';
import { jobSecretMask, openJob, redactJob, resolveJobSecrets, sealJob } from './job-secrets.ts';

const box = SecretBox.random();
const body = {
  repo: '/srv/git/app.git',
  env: { STAGE: 'prod' },
  secrets: { DEPLOY_TOKEN: 'tok-3f9a71c2', DB_PASSWORD: 'hunter2' },
  triggers: { webhook: { secret: 'hook-s3cret' } },
};

function stored(): JobDefinition {
  return resolveJobSecrets(parseJobDefinition('app', body), undefined, box);
}

function problemsOf(f: () => unknown): { field: string; message: string }[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof InvalidJob, String(e));
    return e.details;
  }
  assert.fail('not refused');
}

describe('a job\'s secrets through the API', () => {
  it('reads `secrets` like `env`, refusing names in both, CI_ names, non-strings and NUL', () => {
    assert.deepEqual(stored().secrets, { DEPLOY_TOKEN: 'tok-3f9a71c2', DB_PASSWORD: 'hunter2' });
    const problems = problemsOf(() => parseJobDefinition('app', { repo: '/r', env: { A: '1' }, secrets: { A: 'x', CI_X: 'y', '1B': 'z', C: 5, D: 'a\u0000b', E: { encrypted: 1 } } }));
    assert.deepEqual(
      problems.map((p) => p.field),
      ['secrets.A', 'secrets.CI_X', 'secrets.1B', 'secrets.C', 'secrets.D', 'secrets.E'],
    );
    assert.match(problems[0]!.message, /either in `env` or in `secrets`/);
    assert.match(problems[3]!.message, /a string, "\*\*\*" \(keep the stored value\) or \{"encrypted"/);
  });

  it('shows every secret as "***", the webhook\'s too, and nothing else changed', () => {
    const shown = redactJob(stored());
    assert.deepEqual(shown.secrets, { DEPLOY_TOKEN: REDACTED, DB_PASSWORD: REDACTED });
    assert.deepEqual(shown.triggers.webhook, { secret: REDACTED, tags: true, branch: true });
    assert.deepEqual(shown.env, { STAGE: 'prod' });
    assert.doesNotMatch(JSON.stringify(shown), /tok-3f9a71c2|hunter2|hook-s3cret/);
    assert.deepEqual(redactJob(resolveJobSecrets(parseJobDefinition('plain', { repo: '/r', triggers: { webhook: true } }), undefined, box)).triggers.webhook, { tags: true, branch: true });
  });

  it('keeps the stored value of a secret sent back as "***", and takes a new value or a removal', () => {
    const before = stored();
    const edited = JSON.parse(JSON.stringify(redactJob(before))) as Record<string, unknown> & { secrets: Record<string, string> };
    edited.secrets['DB_PASSWORD'] = 'new-pass';
    delete edited.secrets['DEPLOY_TOKEN'];
    edited.secrets['NEW_ONE'] = 'fresh';
    const after = resolveJobSecrets(parseJobDefinition('app', edited), before, box);
    assert.deepEqual(after.secrets, { DB_PASSWORD: 'new-pass', NEW_ONE: 'fresh' });
    assert.equal(after.triggers.webhook?.secret, 'hook-s3cret');
    // A GET, PUT round trip changes nothing.
    assert.deepEqual(resolveJobSecrets(parseJobDefinition('app', JSON.parse(JSON.stringify(redactJob(before)))), before, box), before);
  });

  it('refuses "***" for a secret that has no stored value', () => {
    const problems = problemsOf(() => resolveJobSecrets(parseJobDefinition('app', { repo: '/r', secrets: { X: REDACTED }, triggers: { webhook: { secret: REDACTED } } }), undefined, box));
    assert.deepEqual(problems.map((p) => p.field), ['secrets.X', 'triggers.webhook.secret']);
    assert.match(problems[0]!.message, /keeps the stored value, but job app has none stored/);
  });

  it('opens a value this server sealed for the same job and name, and refuses one of another job, name or key', () => {
    const sealed = sealJob(stored(), box);
    const again = resolveJobSecrets(parseJobDefinition('app', JSON.parse(JSON.stringify(sealed))), undefined, box);
    assert.deepEqual(again, stored());
    const moved = { repo: '/r', secrets: { DB_PASSWORD: sealed.secrets['DEPLOY_TOKEN'] } };
    assert.deepEqual(problemsOf(() => resolveJobSecrets(parseJobDefinition('app', moved), undefined, box)).map((p) => p.field), ['secrets.DB_PASSWORD']);
    assert.match(problemsOf(() => resolveJobSecrets(parseJobDefinition('other', { repo: '/r', secrets: sealed.secrets }), undefined, box))[0]!.message, /does not open with this server's key/);
    assert.equal(problemsOf(() => resolveJobSecrets(parseJobDefinition('app', JSON.parse(JSON.stringify(sealed))), undefined, SecretBox.random())).length, 3);
  });
});

describe('a job\'s secrets at rest', () => {
  it('seals every secret for the store and the mirror: no value in clear, and it opens back whole', () => {
    const job = stored();
    const sealed = sealJob(job, box);
    const text = JSON.stringify(sealed);
    assert.doesNotMatch(text, /tok-3f9a71c2|hunter2|hook-s3cret/);
    assert.match(sealed.secrets['DB_PASSWORD']!.encrypted, /^v1:/);
    const doc = readJobDocument(JSON.parse(JSON.stringify({ ...sealed, docVersion: 2 })));
    const opened = openJob(doc, box);
    assert.deepEqual(opened.job, job);
    assert.equal(opened.inClear, false);
    assert.deepEqual(opened.sealed, sealed);
    assert.throws(() => openJob(doc, SecretBox.random()), /does not open/);
  });

  it('seals an unchanged value to the same text again (the mirror does not change for nothing), a changed one anew', () => {
    const job = stored();
    const first = sealJob(job, box);
    assert.notEqual(sealJob(job, box).secrets['DB_PASSWORD']!.encrypted, first.secrets['DB_PASSWORD']!.encrypted);
    const changed: JobDefinition = { ...job, secrets: { ...job.secrets, DB_PASSWORD: 'other' } };
    const second = sealJob(changed, box, { job, sealed: first });
    assert.equal(second.secrets['DEPLOY_TOKEN']!.encrypted, first.secrets['DEPLOY_TOKEN']!.encrypted);
    assert.equal(second.triggers.webhook?.secret?.encrypted, first.triggers.webhook?.secret?.encrypted);
    assert.notEqual(second.secrets['DB_PASSWORD']!.encrypted, first.secrets['DB_PASSWORD']!.encrypted);
    assert.equal(box.open(second.secrets['DB_PASSWORD']!.encrypted, 'ci job app secret DB_PASSWORD'), 'other');
  });

  it('reads a job stored before secrets were sealed (webhook secret in clear, no `secrets`), and says it was in clear', () => {
    const old = { name: 'old', repo: '/r', pipelineFile: '.slipway.yml', triggers: { webhook: { secret: 'plain', tags: true, branch: true } }, concurrency: 1, env: {} };
    const opened = openJob(readJobDocument(old), box);
    assert.equal(opened.inClear, true);
    assert.deepEqual(opened.job.secrets, {});
    assert.equal(opened.job.triggers.webhook?.secret, 'plain');
    assert.ok(!('docVersion' in opened.job));
  });
});

describe('jobSecretMask', () => {
  it('masks the job\'s step secrets and their encoded forms, not its webhook secret or env', () => {
    const mask = jobSecretMask(stored());
    assert.equal(mask.mask(`hunter2 ${Buffer.from('tok-3f9a71c2').toString('base64')} prod`), '**** **** prod');
    assert.equal(jobSecretMask(undefined).mask('hunter2'), 'hunter2');
  });
});

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { InvalidWebhookPayload, checkWebhookSecret, readWebhook, webhookSource, type Headers } from './webhook-request.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const ZERO = '0'.repeat(40);
const body = (v: unknown) => Buffer.from(JSON.stringify(v));
const read = (headers: Headers, v: unknown) => readWebhook(webhookSource(headers), headers, Buffer.isBuffer(v) ? v : body(v));

describe('webhook calls: who sent them, whether they prove the secret, what was pushed', () => {
  it('tells the sender by its event header (Gitea first: it sends GitHub\'s headers too)', () => {
    assert.equal(webhookSource({ 'x-github-event': 'push' }), 'github');
    assert.equal(webhookSource({ 'x-github-event': 'push', 'x-gitea-event': 'push' }), 'gitea');
    assert.equal(webhookSource({ 'x-gitlab-event': 'Push Hook' }), 'gitlab');
    assert.equal(webhookSource({}), 'generic');
  });

  it('checks GitHub\'s and Gitea\'s HMAC-SHA256 of the exact body, GitLab\'s token and the generic token', () => {
    const raw = body({ ref: 'refs/heads/main' });
    const hex = createHmac('sha256', 's3cret').update(raw).digest('hex');
    assert.equal(checkWebhookSecret('github', 's3cret', { 'x-hub-signature-256': `sha256=${hex}` }, raw), undefined);
    assert.match(checkWebhookSecret('github', 's3cret', { 'x-hub-signature-256': `sha256=${hex}` }, Buffer.concat([raw, Buffer.from(' ')])) ?? '', /does not match/);
    assert.match(checkWebhookSecret('github', 's3cret', {}, raw) ?? '', /must be signed/);
    assert.equal(checkWebhookSecret('gitea', 's3cret', { 'x-gitea-signature': hex }, raw), undefined);
    assert.match(checkWebhookSecret('gitea', 'other', { 'x-gitea-signature': hex }, raw) ?? '', /does not match/);
    assert.equal(checkWebhookSecret('gitlab', 's3cret', { 'x-gitlab-token': 's3cret' }, raw), undefined);
    assert.match(checkWebhookSecret('gitlab', 's3cret', { 'x-gitlab-token': 's3cre' }, raw) ?? '', /not the job's secret/);
    assert.equal(checkWebhookSecret('generic', 's3cret', { 'x-slipway-token': 's3cret' }, raw), undefined);
    assert.match(checkWebhookSecret('generic', 's3cret', { 'x-gitlab-token': 's3cret' }, raw) ?? '', /X-Slipway-Token/);
  });

  it('reads GitHub pushes: the head commit of a tag (not the annotated tag object), deletions, pings, form-encoded bodies', () => {
    const gh = { 'x-github-event': 'push' };
    assert.deepEqual(read(gh, { ref: 'refs/tags/v1.2.3', after: B, deleted: false, head_commit: { id: A } }), { type: 'push', source: 'github', ref: { kind: 'tag', name: 'v1.2.3' }, commit: A, deleted: false });
    assert.deepEqual(read(gh, { ref: 'refs/heads/main', after: A.toUpperCase(), head_commit: null }), { type: 'push', source: 'github', ref: { kind: 'branch', name: 'main' }, commit: A, deleted: false });
    assert.deepEqual(read(gh, { ref: 'refs/tags/v1', after: ZERO, deleted: true, head_commit: null }), { type: 'push', source: 'github', ref: { kind: 'tag', name: 'v1' }, deleted: true });
    assert.equal(read({ 'x-github-event': 'ping' }, { zen: 'hi' }).type, 'ignored');
    assert.equal(read({ 'x-github-event': 'issues' }, {}).type, 'ignored');
    const form = Buffer.from(`payload=${encodeURIComponent(JSON.stringify({ ref: 'refs/heads/main', after: A }))}`);
    assert.deepEqual(read({ ...gh, 'content-type': 'application/x-www-form-urlencoded' }, form), { type: 'push', source: 'github', ref: { kind: 'branch', name: 'main' }, commit: A, deleted: false });
    assert.equal(read(gh, { ref: 'refs/notes/x', after: A }).type, 'ignored');
  });

  it('reads Gitea pushes and delete events, and GitLab push and tag push hooks by checkout_sha', () => {
    assert.deepEqual(read({ 'x-gitea-event': 'push' }, { ref: 'refs/heads/dev', after: A, head_commit: { id: A } }), { type: 'push', source: 'gitea', ref: { kind: 'branch', name: 'dev' }, commit: A, deleted: false });
    assert.deepEqual(read({ 'x-gitea-event': 'delete' }, { ref: 'v1', ref_type: 'tag' }), { type: 'push', source: 'gitea', ref: { kind: 'tag', name: 'v1' }, deleted: true });
    assert.equal(read({ 'x-gitea-event': 'create' }, { ref: 'v1', ref_type: 'tag' }).type, 'ignored');
    assert.deepEqual(read({ 'x-gitlab-event': 'Tag Push Hook' }, { object_kind: 'tag_push', ref: 'refs/tags/v2', after: B, checkout_sha: A }), { type: 'push', source: 'gitlab', ref: { kind: 'tag', name: 'v2' }, commit: A, deleted: false });
    assert.deepEqual(read({ 'x-gitlab-event': 'Tag Push Hook' }, { ref: 'refs/tags/v2', after: ZERO, checkout_sha: null }), { type: 'push', source: 'gitlab', ref: { kind: 'tag', name: 'v2' }, deleted: true });
    assert.equal(read({ 'x-gitlab-event': 'Merge Request Hook' }, {}).type, 'ignored');
  });

  it('reads the generic payload: a ref, a tag or a branch (or none: the job\'s branch), and a full commit id', () => {
    assert.deepEqual(read({}, Buffer.alloc(0)), { type: 'push', source: 'generic', ref: { kind: 'branch' }, deleted: false });
    assert.deepEqual(read({}, { tag: 'v1', commit: A }), { type: 'push', source: 'generic', ref: { kind: 'tag', name: 'v1' }, commit: A, deleted: false });
    assert.deepEqual(read({}, { ref: 'refs/heads/main' }), { type: 'push', source: 'generic', ref: { kind: 'branch', name: 'main' }, deleted: false });
    assert.deepEqual(read({}, { branch: 'main' }), { type: 'push', source: 'generic', ref: { kind: 'branch', name: 'main' }, deleted: false });
  });

  it('refuses payloads it cannot read, saying why', () => {
    const bad = (headers: Headers, v: unknown, why: RegExp) => assert.throws(() => read(headers, v), (e: unknown) => e instanceof InvalidWebhookPayload && why.test(e.message));
    bad({}, { tg: 'v1' }, /unknown field "tg"/);
    bad({}, { tag: 'v1', branch: 'main' }, /one of/);
    bad({}, { commit: 'abc123' }, /full commit id/);
    bad({}, { ref: 'v1' }, /refs\/tags/);
    bad({}, { tag: 'a..b' }, /\.\./);
    bad({}, Buffer.from('{not json'), /not JSON/);
    bad({}, [1], /JSON object/);
    bad({ 'x-github-event': 'push' }, { after: A }, /`ref`/);
    bad({ 'x-github-event': 'push' }, { ref: 'refs/heads/main' }, /`after`/);
    bad({ 'x-gitlab-event': 'Push Hook' }, { ref: 'refs/heads/main', after: 'zz', checkout_sha: null }, /full commit id/);
    bad({ 'x-github-event': 'push', 'content-type': 'application/x-www-form-urlencoded' }, Buffer.from('a=b'), /payload/);
  });
});

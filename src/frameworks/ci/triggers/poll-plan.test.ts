import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RemoteRefs } from '../git/git-source.ts';
import { planPoll } from './poll-plan.ts';
import { emptyTriggerState, markSeen, triggerStateFromDoc, triggerStateToDoc, type TriggerState } from './trigger-state.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const REPO = '/srv/git/app.git';

function refs(tags: Record<string, string>, branches: Record<string, string> = {}, head = 'main'): RemoteRefs {
  return { tags: new Map(Object.entries(tags)), branches: new Map(Object.entries(branches)), head };
}

const tagsOnly = { repo: REPO, poll: { intervalSeconds: 60, tags: true, branch: false } };
const both = { repo: REPO, poll: { intervalSeconds: 60, tags: true, branch: true } };

/** Applies a plan as the runner does: the base, then each build's mark. */
function after(state: TriggerState, r: RemoteRefs, job: Parameters<typeof planPoll>[2]) {
  const plan = planPoll(state, r, job);
  let s = plan.base;
  for (const b of plan.builds) s = markSeen(s, b.ref);
  return { plan, state: s, built: plan.builds.map((b) => `${b.event} ${b.ref.kind === 'tag' ? b.ref.name : b.ref.branch}@${b.ref.commit[0]}: ${b.cause.description}`) };
}

describe('git polling: what one look at the remote builds', () => {
  it('records what exists at the first look and builds nothing', () => {
    const r = after(emptyTriggerState(), refs({ 'v1.0': A, 'v1.1': B }, { main: C }), both);
    assert.deepEqual(r.built, []);
    assert.deepEqual(Object.fromEntries(r.state.tags), { 'v1.0': A, 'v1.1': B });
    assert.equal(r.state.heads.get('main'), C);
    assert.equal(r.state.tagsLooked, true);
    assert.equal(r.state.branchLooked, 'main');
  });

  it('builds each new tag once, in version order, and a new head of the branch once', () => {
    let s = after(emptyTriggerState(), refs({ 'v1.0': A }, { main: A }), both).state;
    const r = after(s, refs({ 'v1.0': A, 'v1.10': C, 'v1.9': B }, { main: C }), both);
    assert.deepEqual(r.built, ['tag v1.9@b: tag v1.9', 'tag v1.10@c: tag v1.10', 'push main@c: commit ccccccc on main']);
    s = r.state;
    assert.deepEqual(after(s, refs({ 'v1.0': A, 'v1.10': C, 'v1.9': B }, { main: C }), both).built, []);
  });

  it('builds a moved tag again, and forgets a deleted one (pushed again, it is built again)', () => {
    let s = after(emptyTriggerState(), refs({ v1: A, v2: B }), tagsOnly).state;
    const moved = after(s, refs({ v1: C, v2: B }), tagsOnly);
    assert.deepEqual(moved.built, ['tag v1@c: tag v1 (moved from aaaaaaa to ccccccc)']);
    s = after(moved.state, refs({ v1: C }), tagsOnly).state;
    assert.equal(s.tags.has('v2'), false);
    assert.deepEqual(after(s, refs({ v1: C, v2: B }), tagsOnly).built, ['tag v2@b: tag v2']);
  });

  it('does not build tags with tags: false, and looks afresh when they are turned on again', () => {
    const s = after(emptyTriggerState(), refs({ v1: A }, { main: A }), both).state;
    const off = after(s, refs({ v1: A, v2: B }, { main: A }), { ...both, poll: { ...both.poll, tags: false } });
    assert.deepEqual(off.built, []);
    const on = after(off.state, refs({ v1: A, v2: B, v3: C }, { main: A }), both);
    assert.deepEqual(on.built, [], 'the first look after turning tags on records only');
  });

  it('watches the job branch, else the default branch; a branch that appears after the first look is new', () => {
    const job = { ...both, branch: 'release' };
    let s = after(emptyTriggerState(), refs({}, { main: A }), job).state;
    assert.equal(s.branchLooked, 'release');
    assert.equal(s.heads.has('release'), false);
    const r = after(s, refs({}, { main: B, release: B }), job);
    assert.deepEqual(r.built, ['push release@b: commit bbbbbbb on release']);
    s = r.state;
    // The job's branch changes: a first look at the new one.
    assert.deepEqual(after(s, refs({}, { main: C, release: B }), { ...both }).built, []);
    const noHead = planPoll(emptyTriggerState(), { tags: new Map(), branches: new Map([['main', A]]) }, both);
    assert.match(noHead.notes.join(), /does not say which is its default/);
  });

  it('starts afresh when the job now points at another repository', () => {
    const s = after(emptyTriggerState(), refs({ v1: A }), tagsOnly).state;
    const r = after(s, refs({ v1: B, v2: C }), { ...tagsOnly, repo: '/srv/git/other.git' });
    assert.deepEqual(r.built, []);
    assert.equal(r.state.repo, '/srv/git/other.git');
  });

  it('keeps its state through the stored document, odd tag names included', () => {
    const s = after(emptyTriggerState(), refs({ __proto__: A, 'v1.0': B } as Record<string, string>, { main: C }), both).state;
    const back = triggerStateFromDoc(JSON.parse(JSON.stringify(triggerStateToDoc({ ...s, cron: { expression: '* * * * *', since: 5, lastRun: 60_000 } }))));
    assert.deepEqual([...back.tags].sort(), [...s.tags].sort());
    assert.deepEqual(back.cron, { expression: '* * * * *', since: 5, lastRun: 60_000 });
    assert.deepEqual(after(back, refs({ __proto__: A, 'v1.0': B } as Record<string, string>, { main: C }), both).built, []);
  });
});

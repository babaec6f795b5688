import { isTerminal } from '../../../core/task-state.ts';
import type { TaskStatus } from '../../../protocol/mesos.ts';
import { buildKey, isFinished, type Build } from '../build.ts';
import type { CiView, LaunchFailure } from '../ci-state.ts';
import type { ExecutorReport } from '../executor-hub.ts';
import type { ExecutorRecord } from '../executor-record.ts';
import { EXECUTOR_HEARTBEAT_SECONDS, type ExecutorToServer } from '../executor-protocol.ts';
import { tokenDigest } from '../../../lib/token-digest.ts';
import { jobSecretMask } from '../job-secrets.ts';
import { buildOf, CiPlanBuilder, finishedBuild, type CiPlan } from './ci-plan.ts';
import type { StreamView } from './plan-pass.ts';

/** Executors of a label failing to start this many times in a row end its waiting builds. */
export const MAX_LAUNCH_FAILURES = 5;

/**
 * An executor said HELLO (ExecutorHub checked its token): WELCOME once its record is stored as
 * idle (or busy with the build it says it still runs). One that proved its launch token is given
 * a session token (`sessionToken`, a new random one): its digest is stored, the token itself goes
 * only in WELCOME. One that comes back without the build CI
 * thought it ran (it restarted) loses that build, which ends in `error`. An executor being
 * stopped is told again to SHUTDOWN. Its label's launch backoff is over: executors start there.
 */
export function planHello(view: CiView, hello: Extract<ExecutorToServer, { type: 'HELLO' }>, now: number, sessionToken?: string): CiPlan {
  const b = new CiPlanBuilder();
  const e = view.executors.get(hello.executorId);
  if (e === undefined) return b.plan;
  if (view.launchFailures.get(e.label) !== undefined) b.change({ type: 'LAUNCH_FAILURE', label: e.label });
  b.send(e.id, { type: 'WELCOME', heartbeatIntervalSeconds: EXECUTOR_HEARTBEAT_SECONDS, ...(sessionToken !== undefined ? { token: sessionToken } : {}) });
  const running = hello.running !== undefined ? buildKey(hello.running.job, hello.running.number) : undefined;
  const next: ExecutorRecord = { ...e, ...(sessionToken !== undefined ? { sessionTokenDigest: tokenDigest(sessionToken) } : {}) };
  if (e.build !== undefined && running !== e.build) {
    const build = view.builds.get(e.build);
    if (build !== undefined && !isFinished(build)) b.finishBuild(build, 'error', now, `executor ${e.id} came back without it (restarted?)`, `executor lost: executor ${e.id} came back without the build (restarted?)`);
    delete next.build;
  }
  if (next.state !== 'stopping') next.state = next.build !== undefined ? 'busy' : 'idle';
  if (next.state === 'idle') next.idleSince = now;
  if (next.state === 'stopping') b.send(e.id, { type: 'SHUTDOWN' });
  b.saveExecutor(next);
  return b.pass().plan;
}

/**
 * Reports of builds from executors (STEP_STARTED, LOG, STEP_FINISHED, BUILD_DONE), in the order
 * they came. A report is applied once (sequence numbers per build: one CI has seen is answered
 * with the highest number stored, not applied again); its log piece is appended to the log
 * files before the plan's store batch, and its ACK goes out after it: a crash in between makes
 * the executor send it again, so no log line is lost (a line may be written twice if the crash
 * falls between the file and the store; the log store cuts the files back to the stored sizes
 * on its first append after a restart, so it is not). A report of a build CI does not keep (its
 * job was deleted meanwhile) stores nothing, but frees the executor once the build is done.
 */
export function planReports(view: CiView, reports: readonly { executorId: string; report: ExecutorReport }[], now: number, credential?: (name: string) => string | undefined): CiPlan {
  const b = new CiPlanBuilder();
  const builds = new Map<string, Build>();
  const executors = new Map<string, ExecutorRecord>();
  const acks = new Map<string, { executorId: string; job: string; number: number; seq: number }>();
  const ack = (executorId: string, job: string, number: number, seq: number) => {
    const k = `${executorId}\u0000${buildKey(job, number)}`;
    const prev = acks.get(k);
    if (prev === undefined || prev.seq < seq) acks.set(k, { executorId, job, number, seq });
  };
  for (const { executorId, report: m } of reports) {
    const e = executors.get(executorId) ?? view.executors.get(executorId);
    if (e === undefined) continue;
    const key = buildKey(m.job, m.number);
    const build = builds.get(key) ?? view.builds.get(key);
    if (build === undefined || e.build !== key) {
      if (m.type === 'BUILD_DONE' && e.build === key) {
        executors.set(e.id, freed(e, now));
        b.pass();
      }
      ack(executorId, m.job, m.number, m.seq);
      continue;
    }
    if (m.seq <= build.seq) {
      // Seen already: acknowledge what is stored (this plan's batch included, since the ACK goes out after it).
      ack(executorId, m.job, m.number, build.seq);
      continue;
    }
    let next: Build = { ...build, seq: m.seq };
    // The executor masks the job's secrets in what it reports (a value split across pieces
    // included); what a piece still holds whole is masked here too, before it is stored.
    const mask = jobSecretMask(view.jobs.get(m.job), credential);
    switch (m.type) {
      case 'STEP_STARTED':
        next.steps = build.steps.map((s) => (s.name === m.step ? { ...s, status: 'running', startedAt: m.at } : s));
        break;
      case 'LOG': {
        const sizes = build.logBytes ?? { whole: 0, steps: {} };
        const text = mask.mask(m.text);
        const n = Buffer.byteLength(text);
        b.plan.logs.push({ job: m.job, number: m.number, step: m.step, text, stored: view.builds.get(key)?.logBytes ?? { whole: 0, steps: {} } });
        next.logBytes = { whole: sizes.whole + n, steps: { ...sizes.steps, [m.step]: (sizes.steps[m.step] ?? 0) + n } };
        break;
      }
      case 'STEP_FINISHED':
        next.steps = build.steps.map((s) =>
          s.name === m.step
            ? {
                ...s,
                status: m.status,
                finishedAt: m.at,
                ...(m.exitCode !== undefined ? { exitCode: m.exitCode } : {}),
                ...(m.error !== undefined ? { error: mask.mask(m.error) } : {}),
                ...(s.startedAt !== undefined ? { durationMs: m.at - s.startedAt } : {}),
              }
            : s,
        );
        if (m.outputs !== undefined && m.outputs.length > 0) next.outputs = [...(build.outputs ?? []), ...m.outputs];
        break;
      case 'BUILD_DONE': {
        next = finishedBuild({ ...next, artifacts: m.artifacts }, m.status, now, m.error !== undefined ? mask.mask(m.error) : undefined);
        executors.set(e.id, freed(e, now));
        b.pass();
        break;
      }
    }
    builds.set(key, next);
    ack(executorId, m.job, m.number, m.seq);
  }
  for (const [key, next] of builds) {
    b.saveBuild(next);
    const before = view.builds.get(key);
    if (before !== undefined && !isFinished(before) && isFinished(next)) b.plan.ended.push(next);
  }
  for (const e of executors.values()) b.saveExecutor(e);
  for (const a of acks.values()) b.send(a.executorId, { type: 'ACK', job: a.job, number: a.number, seq: a.seq });
  return b.plan;
}

/**
 * Status updates of executors' tasks. A task that ended (or whose agent is lost) ends its
 * executor, and the build it ran. An executor that ended before it ever connected (it cannot
 * start there: too little memory, a broken command...) is the Jenkins plugin's "agent that never
 * comes online": its label's launches back off (1 s doubling to 60 s, planned by the pool), and
 * after MAX_LAUNCH_FAILURES in a row the builds waiting for the label end in `error` with the
 * reason instead of waiting for ever. Tasks CI does not know are killed. Every update is
 * acknowledged after the plan's batch.
 */
export function planTaskUpdates(view: CiView, streams: StreamView, statuses: readonly TaskStatus[], now: number): CiPlan {
  const b = new CiPlanBuilder();
  const gone = new Set<string>();
  const failures = new Map<string, LaunchFailure>();
  const ended = new Set<string>();
  for (const status of statuses) {
    const ack = () => {
      if (status.uuid !== undefined && status.agent_id !== undefined) b.call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: status.agent_id, task_id: status.task_id, uuid: status.uuid } });
    };
    const found = view.executorOfTask(status.task_id.value);
    const e = found !== undefined && !gone.has(found.id) ? found : undefined;
    const over = isTerminal(status.state) || status.state === 'TASK_UNREACHABLE';
    if (e === undefined) {
      if (!over && found === undefined) {
        b.log(`ci framework: killing unknown task ${status.task_id.value}`);
        b.call({ type: 'KILL', kill: { task_id: status.task_id, ...(status.agent_id !== undefined ? { agent_id: status.agent_id } : {}) } });
      }
      ack();
      continue;
    }
    if (!over) {
      ack();
      continue;
    }
    const detail = `${status.state}${status.message !== undefined ? ` (${status.message})` : ''}`;
    if (e.state === 'launching' && !streams.isConnected(e.id)) {
      const prev = failures.get(e.label) ?? view.launchFailures.get(e.label);
      const count = (prev?.count ?? 0) + 1;
      const message = `${status.state}${status.message !== undefined ? `: ${status.message}` : ''}`;
      const failure = { count, until: now + Math.min(60_000, 1000 * 2 ** (count - 1)), message };
      failures.set(e.label, failure);
      b.change({ type: 'LAUNCH_FAILURE', label: e.label, failure });
      b.log(`ci framework: an executor of label ${e.label} ended before connecting (${count} in a row): ${message}`);
      if (count >= MAX_LAUNCH_FAILURES) {
        for (const q of view.builds.values()) {
          const key = buildKey(q.job, q.number);
          if (q.status !== 'queued' || q.label !== e.label || ended.has(key)) continue;
          b.finishBuild(q, 'error', now, `no executor of label ${e.label} could start: ${count} failed in a row, the last with ${message}`);
          ended.add(key);
        }
      }
    }
    const build = buildOf(e, view);
    b.removeExecutor(e, build !== undefined && !ended.has(buildKey(build.job, build.number)) ? build : undefined, `its executor ${e.id} on ${e.hostname} ended: ${detail}`, now);
    if (build !== undefined) ended.add(buildKey(build.job, build.number));
    gone.add(e.id);
    if (status.state === 'TASK_UNREACHABLE') b.killExecutor(e);
    ack();
  }
  return b.plan;
}

/** An executor whose build is done: idle from now (one being stopped stays so). */
function freed(e: ExecutorRecord, now: number): ExecutorRecord {
  const next: ExecutorRecord = { ...e, state: e.state === 'stopping' ? 'stopping' : 'idle', idleSince: now };
  delete next.build;
  return next;
}

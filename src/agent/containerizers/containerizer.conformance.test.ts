import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Dockerode from 'dockerode';
import type { CommandInfo } from '../../protocol/mesos.ts';
import type { Containerizer, ContainerRef, LaunchSpec } from '../containerizer.ts';
import { DEFAULT_DOCKER_SOCKET, DockerContainerizer, LABELS } from './docker-containerizer.ts';
import { ProcessContainerizer } from './process-containerizer.ts';
import { TaskCgroups } from './task-cgroups.ts';
import type { TaskCgroupSet } from './task-cgroups.ts';
import { ensureBusyboxImage } from '../../sim/busybox-image.ts';

/**
 * One suite that every containerizer must pass (like Kysely's `for (const dialect of DIALECTS)`).
 * A dialect says how to build its containerizer and a launch spec for a shell command; the cases
 * below are the contract of src/agent/containerizer.ts, with real processes and a real engine.
 */

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..', '..');
const MiB = 1024 * 1024;

/** In the agent's environment only: a task must not see it (its environment is spec.env). */
process.env['SLIPWAY_AGENT_ONLY'] = 'leaked';

interface Dialect {
  name: 'process' | 'docker';
  /** Why this dialect cannot run here; undefined when it can. */
  unavailable: string | undefined;
  setUp(): Promise<void>;
  cleanUp(): Promise<void>;
  make(): Containerizer;
  /** The module and class an "agent" in another process builds. */
  childAgent: { module: string; className: string };
  /** A launch spec running `command`, with the sandbox where the task finds it as $MESOS_SANDBOX. */
  spec(sandbox: string, command: CommandInfo | undefined, more?: Partial<LaunchSpec>): LaunchSpec;
  /** An argv command (shell: false) in the shape Marathon gives this containerizer. */
  argv(words: string[]): CommandInfo;
  /** A task this containerizer must refuse to launch, and what the refusal must say. */
  unrunnable(sandbox: string): { spec: LaunchSpec; message: RegExp };
  /** Whether the container still runs, asked of the OS or the engine directly. */
  isRunning(ref: ContainerRef): Promise<boolean>;
}

const asRoot = process.getuid?.() === 0;
/** The host's nobody, as the agent resolves a task user (src/agent/task-user.ts). */
const NOBODY = (() => {
  const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim()));
  return { name: 'nobody', uid: uid!, gid: gid!, groups: [gid!], home: '/nonexistent' };
})();

const agentId = `conformance-${randomBytes(4).toString('hex')}`;
let taskCounter = 0;

function baseSpec(sandbox: string, command: CommandInfo | undefined, env: Record<string, string>, more: Partial<LaunchSpec>): LaunchSpec {
  const taskId = more.taskId ?? `task-${++taskCounter}-${randomBytes(3).toString('hex')}`;
  return {
    frameworkId: 'conformance-framework',
    taskId,
    agentId,
    sandbox,
    command,
    container: undefined,
    env: { PORT0: '31000', PORTS: '31000', MESOS_TASK_ID: taskId, ...env },
    cpus: 0.5,
    memMb: 64,
    ports: [31000],
    ...more,
  };
}

const processDialect: Dialect = {
  name: 'process',
  unavailable: process.platform === 'linux' ? undefined : 'the process containerizer reads /proc (Linux only)',
  async setUp() {},
  async cleanUp() {},
  make: () => new ProcessContainerizer({ pollIntervalMs: 50 }),
  childAgent: { module: join(here, 'process-containerizer.ts'), className: 'ProcessContainerizer' },
  spec: (sandbox, command, more = {}) => baseSpec(sandbox, command, { MESOS_SANDBOX: sandbox }, more),
  argv: (words) => ({ shell: false, value: words[0], arguments: words }),
  unrunnable: (sandbox) => ({
    spec: processDialect.spec(sandbox, { value: 'true' }, { container: { type: 'DOCKER', docker: { image: 'slipway-test/busybox:latest' } } }),
    message: /docker/,
  }),
  async isRunning(ref) {
    assert.equal(ref.kind, 'process');
    if (ref.kind !== 'process') return false;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${ref.pid}/stat`, 'utf8');
    } catch {
      return false;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] === ref.startTime && fields[0] !== 'Z';
  },
};

const docker = new Dockerode({ socketPath: DEFAULT_DOCKER_SOCKET });
const dockerUp = await DockerContainerizer.available(docker);
let image = 'slipway-test/busybox:latest';

const dockerDialect: Dialect = {
  name: 'docker',
  unavailable: dockerUp ? undefined : `no Docker engine at ${DEFAULT_DOCKER_SOCKET}`,
  async setUp() {
    image = await ensureBusyboxImage(docker);
  },
  async cleanUp() {
    // Whatever a test left behind: every container of this suite carries its agent id.
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABELS.agentId}=${agentId}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  },
  make: () => new DockerContainerizer({ docker }),
  childAgent: { module: join(here, 'docker-containerizer.ts'), className: 'DockerContainerizer' },
  spec: (sandbox, command, more = {}) =>
    baseSpec(sandbox, command, { MESOS_SANDBOX: '/mnt/mesos/sandbox' }, {
      // The agent mounts the sandbox where Mesos does; the test does the same.
      container: { type: 'DOCKER', docker: { image, network: 'HOST' }, volumes: [{ host_path: sandbox, container_path: '/mnt/mesos/sandbox', mode: 'RW' }] },
      ...more,
    }),
  argv: (words) => ({ shell: false, arguments: words }),
  unrunnable: (sandbox) => ({
    // Port 9 (discard) has no registry: the pull fails at once, without any network.
    spec: dockerDialect.spec(sandbox, { value: 'true' }, {
      container: { type: 'DOCKER', docker: { image: '127.0.0.1:9/slipway-test/no-such-image:latest' } },
    }),
    message: /127\.0\.0\.1:9\/slipway-test\/no-such-image/,
  }),
  async isRunning(ref) {
    assert.equal(ref.kind, 'docker');
    if (ref.kind !== 'docker') return false;
    try {
      return (await docker.getContainer(ref.containerId).inspect()).State.Running;
    } catch {
      return false;
    }
  },
};

const DIALECTS: Dialect[] = [processDialect, dockerDialect];

// ---------------------------------------------------------------------------------------------
// Helpers: deadlines instead of sleeps, sandboxes, an agent in another process.

/** Polls `probe` until it returns something other than undefined/false, or fails after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** `promise`, or a failure naming `what` when it takes longer than `timeoutMs`. */
async function within<T>(what: string, promise: Promise<T>, timeoutMs = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sandboxes: string[] = [];
async function newSandbox(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-sandbox-'));
  sandboxes.push(dir);
  return dir;
}

async function output(sandbox: string, stream: 'stdout' | 'stderr'): Promise<string> {
  try {
    return await readFile(join(sandbox, stream), 'utf8');
  } catch {
    return '';
  }
}

/** Resolves once `<sandbox>/<stream>` contains `text`. */
function outputContains(sandbox: string, stream: 'stdout' | 'stderr', text: string, timeoutMs?: number): Promise<true> {
  return waitFor(`"${text}" in ${stream}`, async () => (await output(sandbox, stream)).includes(text), timeoutMs);
}

/**
 * Launches a task from an agent in another node process, as `slipway agent` would, and hands back
 * its ref and a way to kill that agent with SIGKILL (an agent crash).
 */
async function launchInChildAgent(dialect: Dialect, spec: LaunchSpec): Promise<{ ref: ContainerRef; crash(): Promise<void> }> {
  const { module, className } = dialect.childAgent;
  const code = [
    `const { ${className} } = await import(${JSON.stringify(pathToFileURL(module).href)});`,
    `const containerizer = new ${className}();`,
    'const ref = await containerizer.launch(JSON.parse(process.argv[1]));',
    "process.stdout.write(JSON.stringify(ref) + '\\n');",
    'setInterval(() => {}, 60_000);',
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, JSON.stringify(spec)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = once(child, 'exit');
  const line = await within(
    'the child agent to launch the task',
    Promise.race([
      waitFor('a ref from the child agent', () => (out.includes('\n') ? out.slice(0, out.indexOf('\n')) : undefined), 20_000),
      exited.then(() => assert.fail(`the child agent exited before launching: ${err}`)),
    ]),
    25_000,
  );
  return {
    ref: JSON.parse(line) as ContainerRef,
    async crash() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------

for (const dialect of DIALECTS) {
  if (dialect.unavailable !== undefined && process.env['CI'] !== undefined) {
    describe(`${dialect.name} containerizer`, () => {
      it('has what it needs to run in CI', () => {
        assert.fail(`${dialect.unavailable}: CI must provide it (start dockerd --bridge=none --iptables=false)`);
      });
    });
    continue;
  }

  describe(`${dialect.name} containerizer`, { skip: dialect.unavailable ?? false }, () => {
    let containerizer: Containerizer;

    before(async () => {
      await dialect.setUp();
      containerizer = dialect.make();
    });
    afterEach(async () => {
      await dialect.cleanUp();
    });
    after(async () => {
      await dialect.cleanUp();
      await Promise.all(sandboxes.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
    });

    it('runs a command and reports exit code 0, with its stdout and stderr in the sandbox', async () => {
      const sandbox = await newSandbox();
      const ref = await containerizer.launch(dialect.spec(sandbox, { value: 'echo out-line; echo err-line >&2' }));
      assert.equal(ref.kind, dialect.name);
      assert.equal(ref.sandbox, sandbox);
      const exit = await within('wait()', containerizer.wait(ref));
      assert.deepEqual(exit, { exitCode: 0, message: 'Command exited with status 0' });
      assert.equal(await output(sandbox, 'stdout'), 'out-line\n');
      assert.equal(await output(sandbox, 'stderr'), 'err-line\n');
    });

    it('appends to the output files rather than replacing them', async () => {
      const sandbox = await newSandbox();
      await writeFile(join(sandbox, 'stdout'), 'earlier\n');
      const ref = await containerizer.launch(dialect.spec(sandbox, { value: 'echo later' }));
      await within('wait()', containerizer.wait(ref));
      assert.equal(await output(sandbox, 'stdout'), 'earlier\nlater\n');
    });

    it('reports a non-zero exit code, in the exit and in its message', async () => {
      const sandbox = await newSandbox();
      const ref = await containerizer.launch(dialect.spec(sandbox, { value: 'exit 3' }));
      const exit = await within('wait()', containerizer.wait(ref));
      assert.equal(exit.exitCode, 3);
      assert.equal(exit.message, 'Command exited with status 3');
    });

    it('gives the task exactly the environment of the spec', async () => {
      const sandbox = await newSandbox();
      const spec = dialect.spec(sandbox, { value: 'echo "$PORT0|$MESOS_TASK_ID|$GREETING|${SLIPWAY_AGENT_ONLY-unset}"' });
      spec.env['GREETING'] = 'hello world';
      const ref = await containerizer.launch(spec);
      await within('wait()', containerizer.wait(ref));
      assert.equal(await output(sandbox, 'stdout'), `31000|${spec.taskId}|hello world|unset\n`);
    });

    it('runs an argv command (shell: false) without a shell', async () => {
      const sandbox = await newSandbox();
      const ref = await containerizer.launch(dialect.spec(sandbox, dialect.argv(['/bin/echo', 'a  b', '$PORT0'])));
      const exit = await within('wait()', containerizer.wait(ref));
      assert.equal(exit.exitCode, 0);
      assert.equal(await output(sandbox, 'stdout'), 'a  b $PORT0\n');
    });

    it('sends SIGTERM on kill, and a task that handles it exits on its own terms', async () => {
      const sandbox = await newSandbox();
      const ref = await containerizer.launch(dialect.spec(sandbox, { value: "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done" }));
      await outputContains(sandbox, 'stdout', 'ready');
      const started = Date.now();
      await within('kill()', containerizer.kill(ref, 20_000));
      const exit = await within('wait()', containerizer.wait(ref));
      assert.ok(Date.now() - started < 10_000, 'the task ended on SIGTERM, long before the grace period');
      assert.equal(exit.exitCode, 7);
      assert.match(await output(sandbox, 'stdout'), /got-term/);
    });

    it('escalates to SIGKILL after the grace period when the task survives SIGTERM', async () => {
      const sandbox = await newSandbox();
      const ref = await containerizer.launch(dialect.spec(sandbox, { value: "trap 'echo term-ignored' TERM; echo ready; while true; do sleep 0.1; done" }));
      await outputContains(sandbox, 'stdout', 'ready');
      const started = Date.now();
      await within('kill()', containerizer.kill(ref, 1_000));
      const exit = await within('wait()', containerizer.wait(ref));
      assert.ok(Date.now() - started >= 900, `SIGKILL came after the grace period (${Date.now() - started} ms)`);
      assert.equal(exit.signal, 'SIGKILL');
      assert.equal(exit.exitCode, undefined);
      assert.equal(exit.message, 'Command terminated with signal SIGKILL');
      await outputContains(sandbox, 'stdout', 'term-ignored');
    });

    it('reports a command that does not exist as exit status 127, or refuses to launch it', async () => {
      const sandbox = await newSandbox();
      let ref: ContainerRef;
      try {
        ref = await containerizer.launch(dialect.spec(sandbox, { value: 'slipway-no-such-command-xyz' }));
      } catch (e) {
        assert.match((e as Error).message, /slipway-no-such-command-xyz/);
        return;
      }
      const exit = await within('wait()', containerizer.wait(ref));
      assert.equal(exit.exitCode, 127);
      assert.match(await output(sandbox, 'stderr'), /slipway-no-such-command-xyz.*not found/);
    });

    it('refuses a launch it cannot carry out, with a message that says why', async () => {
      const sandbox = await newSandbox();
      const { spec, message } = dialect.unrunnable(sandbox);
      await assert.rejects(within('launch()', containerizer.launch(spec)), (e: Error) => {
        assert.equal((e as { code?: string }).code, 'CONTAINER_LAUNCH_FAILED');
        assert.match(e.message, message);
        return true;
      });
    });

    it('recovers a task still running after its agent was killed (kill -9), and wait() gets its real exit code', async () => {
      const sandbox = await newSandbox();
      const command = [
        'echo before; echo before-err >&2',
        'until [ -e "$MESOS_SANDBOX/go1" ]; do sleep 0.05; done',
        'echo during',
        'touch "$MESOS_SANDBOX/printed-during"',
        'until [ -e "$MESOS_SANDBOX/go2" ]; do sleep 0.05; done',
        'echo after; echo after-err >&2',
        'exit 7',
      ].join('; ');
      const agent = await launchInChildAgent(dialect, dialect.spec(sandbox, { value: command }));
      await outputContains(sandbox, 'stdout', 'before');
      await outputContains(sandbox, 'stderr', 'before-err');
      await agent.crash();
      // The task prints while no agent runs.
      await writeFile(join(sandbox, 'go1'), '');
      await waitFor('the task to print while no agent runs', () => existsSync(join(sandbox, 'printed-during')));
      assert.equal(await dialect.isRunning(agent.ref), true);

      const restarted = dialect.make();
      const recovered = await restarted.recover([agent.ref]);
      assert.deepEqual(recovered, [{ running: true }]);
      const waiting = restarted.wait(agent.ref);
      await writeFile(join(sandbox, 'go2'), '');
      const exit = await within('wait() after recovery', waiting);
      assert.equal(exit.exitCode, 7);
      assert.equal(exit.message, 'Command exited with status 7');
      // Every line once: none lost while no agent ran, none repeated by the new agent.
      assert.equal(await output(sandbox, 'stdout'), 'before\nduring\nafter\n');
      assert.equal(await output(sandbox, 'stderr'), 'before-err\nafter-err\n');
    });

    it('recovers a task that ended while its agent was down as ended, with its exit code', async () => {
      const sandbox = await newSandbox();
      const command = 'until [ -e "$MESOS_SANDBOX/go" ]; do sleep 0.05; done; echo bye; exit 5';
      const agent = await launchInChildAgent(dialect, dialect.spec(sandbox, { value: command }));
      await agent.crash();
      await writeFile(join(sandbox, 'go'), '');
      await waitFor('the task to end', async () => !(await dialect.isRunning(agent.ref)));

      const restarted = dialect.make();
      const [recovered] = await restarted.recover([agent.ref]);
      assert.deepEqual(recovered, { running: false, exit: { exitCode: 5, message: 'Command exited with status 5' } });
      assert.deepEqual(await within('wait() of an ended task', restarted.wait(agent.ref)), { exitCode: 5, message: 'Command exited with status 5' });
      assert.equal(await output(sandbox, 'stdout'), 'bye\n');
    });

    it('says how a task ended is unknown when nothing recorded it', async () => {
      const sandbox = await newSandbox();
      // A ref to a container that no longer exists, as after a reboot.
      const spec = dialect.spec(sandbox, { value: 'true' });
      const ref = await containerizer.launch(spec);
      await within('wait()', containerizer.wait(ref));
      await rm(join(sandbox, '.slipway'), { recursive: true, force: true });
      const [recovered] = await dialect.make().recover([ref]);
      assert.deepEqual(recovered, { running: false, exit: { message: 'exited while the agent was down; exit status unknown' } });
    });

    it('reports a task killed by the OOM killer as oomKilled, when it enforces limits', async (t) => {
      const limits = containerizer.info().limits;
      if (!limits.enforced) {
        t.skip(`limits are not enforced here: ${limits.reason ?? 'no reason given'}`);
        return;
      }
      const sandbox = await newSandbox();
      // tail keeps a line until its end: 200 MB without a newline, far over 32 MB.
      const ref = await containerizer.launch(dialect.spec(sandbox, { value: 'head -c 200000000 /dev/zero | tail' }, { memMb: 32 }));
      const exit = await within('wait()', containerizer.wait(ref), 30_000);
      assert.equal(exit.oomKilled, true);
      assert.equal(exit.signal, 'SIGKILL');
      assert.match(exit.message, /^Memory limit of 32 MB exceeded: /);
    });

    it('runs the command as spec.user (uid, gid), keeps its files in spec.metaDir, and still kills it', { skip: asRoot ? false : 'runs tasks as another user only as root' }, async () => {
      const sandbox = await newSandbox();
      const meta = await newSandbox();
      // What the agent does before a launch: the sandbox is the task user's, 0700.
      await chown(sandbox, NOBODY.uid, NOBODY.gid);
      await chmod(sandbox, 0o700);
      const ref = await containerizer.launch(dialect.spec(sandbox, { value: 'id -u; id -g; echo mine > "$MESOS_SANDBOX/own"; echo ready; while true; do sleep 0.1; done' }, { user: NOBODY, metaDir: meta }));
      assert.equal(ref.meta, meta);
      await outputContains(sandbox, 'stdout', 'ready');
      assert.equal(await output(sandbox, 'stdout'), `${NOBODY.uid}\n${NOBODY.gid}\nready\n`);
      assert.equal(statSync(join(sandbox, 'own')).uid, NOBODY.uid);
      await within('kill()', containerizer.kill(ref, 1_000));
      const exit = await within('wait()', containerizer.wait(ref));
      // Ended by the kill (SIGTERM, or SIGKILL for docker's sh as pid 1, which ignores SIGTERM).
      assert.ok(exit.signal !== undefined || exit.exitCode === 143, JSON.stringify(exit));
      // Nothing of the containerizer's own in the sandbox, where the task could replace it by a link.
      assert.equal(existsSync(join(sandbox, '.slipway')), false);
      assert.notDeepEqual(readdirSync(meta), []);
    });

    if (dialect.name === 'process') processOnlyCases(() => containerizer);
    if (dialect.name === 'docker') dockerOnlyCases(() => containerizer);
  });
}

function processOnlyCases(get: () => Containerizer): void {
  it('runs tasks unlimited, and says why, when cgroups cannot be used', async () => {
    const containerizer = new ProcessContainerizer({ cgroups: TaskCgroups.disabled('cgroup v2: not mounted') });
    assert.deepEqual(containerizer.info(), { kind: 'process', limits: { enforced: false, reason: 'cgroup v2: not mounted' } });
    const sandbox = await newSandbox();
    const ref = await containerizer.launch(processDialect.spec(sandbox, { value: 'echo unlimited' }));
    assert.deepEqual(await within('wait()', containerizer.wait(ref)), { exitCode: 0, message: 'Command exited with status 0' });
    assert.equal(await output(sandbox, 'stdout'), 'unlimited\n');
    assert.equal(await readFile(join(sandbox, '.slipway', 'cgroups.json'), 'utf8'), 'null');
  });

  it('puts the task in its own cgroups with its limits, and removes them once it ended', async (t) => {
    const containerizer = get();
    if (!containerizer.info().limits.enforced) {
      t.skip(`limits are not enforced here: ${containerizer.info().limits.reason ?? ''}`);
      return;
    }
    const sandbox = await newSandbox();
    const ref = await containerizer.launch(processDialect.spec(sandbox, { value: 'echo ready; until [ -e go ]; do sleep 0.05; done' }, { cpus: 0.25, memMb: 48 }));
    await outputContains(sandbox, 'stdout', 'ready');
    const set = JSON.parse(await readFile(join(sandbox, '.slipway', 'cgroups.json'), 'utf8')) as TaskCgroupSet;
    assert.ok(set.dirs.length > 0);
    assert.equal(ref.kind, 'process');
    if (ref.kind !== 'process') return;
    for (const dir of set.dirs) {
      assert.ok((await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n').includes(String(ref.pid)), `the task is in ${dir}`);
    }
    const memory = set.version === 2 ? await readFile(join(set.memoryDir, 'memory.max'), 'utf8') : await readFile(join(set.memoryDir, 'memory.limit_in_bytes'), 'utf8');
    assert.equal(Number(memory), 48 * MiB);
    // cpu: shares by default (Mesos's default), no CFS quota: 0.25 cpus → 256 shares, or weight 11 on v2.
    assert.equal((containerizer.info().limits as { cpu?: string }).cpu, 'shares');
    assert.deepEqual(await cpuLimits(set), { weight: set.version === 2 ? 11 : 256, quota: 'none' });
    await writeFile(join(sandbox, 'go'), '');
    await within('wait()', containerizer.wait(ref));
    for (const dir of set.dirs) assert.equal(existsSync(dir), false, `${dir} is removed`);
  });

  it('also caps cpu with a CFS quota with cfsQuota: true', async (t) => {
    const containerizer = new ProcessContainerizer({ pollIntervalMs: 50, cfsQuota: true });
    const limits = containerizer.info().limits as { enforced: boolean; reason?: string; cpu?: string };
    if (!limits.enforced) {
      t.skip(`limits are not enforced here: ${limits.reason ?? ''}`);
      return;
    }
    assert.equal(limits.cpu, 'cfs-quota');
    const sandbox = await newSandbox();
    const ref = await containerizer.launch(processDialect.spec(sandbox, { value: 'echo ready; until [ -e go ]; do sleep 0.05; done' }, { cpus: 0.25, memMb: 48 }));
    await outputContains(sandbox, 'stdout', 'ready');
    const set = JSON.parse(await readFile(join(sandbox, '.slipway', 'cgroups.json'), 'utf8')) as TaskCgroupSet;
    assert.deepEqual(await cpuLimits(set), { weight: set.version === 2 ? 11 : 256, quota: '25000 100000' });
    await writeFile(join(sandbox, 'go'), '');
    await within('wait()', containerizer.wait(ref));
  });

  it('kills what the task left running in its process group when it ends', async () => {
    const containerizer = get();
    const sandbox = await newSandbox();
    const ref = await containerizer.launch(processDialect.spec(sandbox, { value: 'sleep 30 & echo $! > straggler.pid' }));
    await within('wait()', containerizer.wait(ref));
    const pid = Number(await readFile(join(sandbox, 'straggler.pid'), 'utf8'));
    await waitFor('the straggler to be gone', () => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
      } catch {
        return true;
      }
    });
  });
}

/** The task's cpu shares (v1) or weight (v2), and its CFS quota as "<quota> <period>" or 'none'. */
async function cpuLimits(set: TaskCgroupSet): Promise<{ weight: number; quota: string }> {
  const cpuDir = set.dirs[set.dirs.length - 1]!;
  const read = async (file: string) => (await readFile(join(cpuDir, file), 'utf8')).trim();
  if (set.version === 2) {
    const max = await read('cpu.max');
    return { weight: Number(await read('cpu.weight')), quota: max.startsWith('max ') ? 'none' : max };
  }
  const quota = await read('cpu.cfs_quota_us');
  return { weight: Number(await read('cpu.shares')), quota: quota === '-1' ? 'none' : `${quota} ${await read('cpu.cfs_period_us')}` };
}

function dockerOnlyCases(get: () => Containerizer): void {
  it('labels its containers, and orphans() finds a container of this agent that no checkpoint knows', async () => {
    const containerizer = get();
    const sandbox = await newSandbox();
    const spec = dockerDialect.spec(sandbox, { value: 'echo ready; sleep 30' });
    const ref = await containerizer.launch(spec);
    assert.equal(ref.kind, 'docker');
    if (ref.kind !== 'docker') return;
    const inspected = await docker.getContainer(ref.containerId).inspect();
    assert.equal(inspected.Name, `/slipway-${agentId}-${spec.taskId}`);
    assert.equal(ref.name, `slipway-${agentId}-${spec.taskId}`);
    assert.deepEqual(
      { agent: inspected.Config.Labels[LABELS.agentId], framework: inspected.Config.Labels[LABELS.frameworkId], task: inspected.Config.Labels[LABELS.taskId] },
      { agent: agentId, framework: 'conformance-framework', task: spec.taskId },
    );

    // A container of this agent that the checkpoints do not know (the agent died while launching it).
    const stray = await docker.createContainer({ Image: image, Cmd: ['sleep', '30'], Labels: { [LABELS.agentId]: agentId, [LABELS.sandbox]: sandbox }, HostConfig: { NetworkMode: 'host' } });
    await stray.start();
    assert.ok(containerizer.orphans, 'the docker containerizer finds orphans');
    const found = await containerizer.orphans(agentId, [ref]);
    assert.deepEqual(found.map((o) => (o.kind === 'docker' ? o.containerId : '')), [stray.id]);
    assert.equal(found[0]!.sandbox, sandbox);
    assert.deepEqual(await containerizer.orphans(`other-${agentId}`, []), []);

    // Killing an orphan also removes it: nobody will wait() for it.
    await containerizer.kill(found[0]!, 0);
    await assert.rejects(stray.inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
    await containerizer.kill(ref, 0);
    await within('wait()', containerizer.wait(ref));
    await assert.rejects(docker.getContainer(ref.containerId).inspect(), (e: { statusCode?: number }) => e.statusCode === 404, 'the container is removed after it ended');
  });

  it('binds volumes, read-only or read-write', async () => {
    const containerizer = get();
    const sandbox = await newSandbox();
    const ro = join(sandbox, 'ro-volume');
    const rw = join(sandbox, 'rw-volume');
    await mkdir(ro);
    await mkdir(rw);
    await writeFile(join(ro, 'hello.txt'), 'from-host\n');
    const spec = dockerDialect.spec(sandbox, { value: 'cat /ro/hello.txt; echo x > /ro/y 2>/dev/null || echo ro-refused; echo written > /rw/out.txt' });
    spec.container!.volumes!.push({ host_path: ro, container_path: '/ro', mode: 'RO' }, { host_path: 'rw-volume', container_path: '/rw', mode: 'RW' });
    const ref = await containerizer.launch(spec);
    const exit = await within('wait()', containerizer.wait(ref));
    assert.equal(exit.exitCode, 0);
    assert.equal(await output(sandbox, 'stdout'), 'from-host\nro-refused\n');
    assert.equal(await readFile(join(rw, 'out.txt'), 'utf8'), 'written\n', 'a relative host_path is relative to the sandbox');
  });

  it('applies the memory limit, cpu shares (no CFS quota) and host networking to the container', async () => {
    const containerizer = get();
    assert.equal((containerizer.info().limits as { cpu?: string }).cpu, 'shares');
    const sandbox = await newSandbox();
    const ref = await containerizer.launch(dockerDialect.spec(sandbox, { value: 'sleep 30' }, { memMb: 96, cpus: 0.25 }));
    assert.equal(ref.kind, 'docker');
    if (ref.kind !== 'docker') return;
    const { HostConfig } = await docker.getContainer(ref.containerId).inspect();
    assert.deepEqual(
      { memory: HostConfig.Memory, cpuShares: HostConfig.CpuShares, nanoCpus: HostConfig.NanoCpus ?? 0, network: HostConfig.NetworkMode },
      { memory: 96 * MiB, cpuShares: 256, nanoCpus: 0, network: 'host' },
    );
    await containerizer.kill(ref, 0);
    await within('wait()', containerizer.wait(ref));
  });

  it('also caps cpu with a CFS quota (NanoCpus) with cfsQuota: true', async () => {
    const containerizer = new DockerContainerizer({ docker, cfsQuota: true });
    assert.equal((containerizer.info().limits as { cpu?: string }).cpu, 'cfs-quota');
    const sandbox = await newSandbox();
    const ref = await containerizer.launch(dockerDialect.spec(sandbox, { value: 'sleep 30' }, { memMb: 96, cpus: 0.25 }));
    assert.equal(ref.kind, 'docker');
    if (ref.kind !== 'docker') return;
    const { HostConfig } = await docker.getContainer(ref.containerId).inspect();
    assert.deepEqual({ cpuShares: HostConfig.CpuShares, nanoCpus: HostConfig.NanoCpus }, { cpuShares: 256, nanoCpus: 250_000_000 });
    await containerizer.kill(ref, 0);
    await within('wait()', containerizer.wait(ref));
  });

  it('refuses BRIDGE networking, which this engine does not have, with a clear message', async () => {
    const containerizer = get();
    const sandbox = await newSandbox();
    const spec = dockerDialect.spec(sandbox, { value: 'true' });
    spec.container!.docker!.network = 'BRIDGE';
    await assert.rejects(containerizer.launch(spec), /network BRIDGE is not available.*HOST networking/);
  });

  it('pulls an image that is not on the engine from a private registry', async (t) => {
    const registry = process.env['SLIPWAY_REGISTRY'] ?? ((await registryAnswers('127.0.0.1:5000')) ? '127.0.0.1:5000' : undefined);
    if (registry === undefined) {
      t.skip('no registry: set SLIPWAY_REGISTRY=host:port, or run one at 127.0.0.1:5000');
      return;
    }
    const containerizer = get();
    // A tag of this run's own, so that concurrent runs do not remove each other's.
    const remote = `${registry}/slipway-test/busybox`;
    const tag = agentId;
    await docker.getImage(image).tag({ repo: remote, tag });
    const pushed = await docker.getImage(remote).push({ tag, authconfig: {} } as object);
    await new Promise<void>((resolve, reject) =>
      docker.modem.followProgress(pushed, (err: Error | null, out: { error?: string }[]) => {
        const failed = out?.find((o) => o.error !== undefined);
        if (err !== null || failed !== undefined) reject(err ?? new Error(failed?.error));
        else resolve();
      }),
    );
    // Only the tag goes: the layers stay, shared with the local test image.
    await docker.getImage(`${remote}:${tag}`).remove();
    await assert.rejects(docker.getImage(`${remote}:${tag}`).inspect());

    const sandbox = await newSandbox();
    const spec = dockerDialect.spec(sandbox, { value: 'echo pulled' });
    spec.container!.docker!.image = `${remote}:${tag}`;
    try {
      const ref = await within('launch() with a pull', containerizer.launch(spec), 30_000);
      const exit = await within('wait()', containerizer.wait(ref));
      assert.equal(exit.exitCode, 0);
      assert.equal(await output(sandbox, 'stdout'), 'pulled\n');
      await docker.getImage(`${remote}:${tag}`).inspect();
    } finally {
      await docker.getImage(`${remote}:${tag}`).remove().catch(() => undefined);
    }
  });
}

async function registryAnswers(hostPort: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${hostPort}/v2/`, { signal: AbortSignal.timeout(1_000) });
    return res.ok;
  } catch {
    return false;
  }
}

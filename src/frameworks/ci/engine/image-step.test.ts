import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Dockerode from 'dockerode';
import { ensureBusyboxImage } from '../../../sim/busybox-image.ts';
import type { BuildContext } from './build-context.ts';
import { CI_CONTAINER_LABELS, removeBuildContainers } from './image-step.ts';
import { BUILD, removeWorkspaces, run, sequential, step, workspace } from './engine-test-support.ts';

// Image steps against a real Docker engine (the host's, at /var/run/docker.sock) with the
// busybox image the tests build locally. Without an engine they are skipped, except under CI.

const SOCKET = '/var/run/docker.sock';
const docker = new Dockerode({ socketPath: SOCKET });

async function engineProblem(): Promise<string | undefined> {
  try {
    // dockerode passes abortSignal through to docker-modem; its type declarations do not list it.
    await (docker as unknown as { ping(o: { abortSignal: AbortSignal }): Promise<unknown> }).ping({ abortSignal: AbortSignal.timeout(2_000) });
    return undefined;
  } catch (e) {
    return `no Docker engine answers at ${SOCKET} (${(e as Error).message}); start one with dockerd --bridge=none --iptables=false`;
  }
}

const unavailable = await engineProblem();
/** One job name per run of this file, so that its containers are told apart from anyone else's. */
const JOB = `engine-test-${randomBytes(4).toString('hex')}`;
let image = '';
let number = 0;

function build(): BuildContext {
  return { ...BUILD, jobName: JOB, number: ++number };
}

async function containersOfThisFile(): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${CI_CONTAINER_LABELS.job}=${JOB}`] } });
}

if (unavailable !== undefined && process.env['CI'] !== undefined) {
  describe('runPipeline with image steps', () => {
    it('has a Docker engine to run in CI', () => {
      assert.fail(`${unavailable}: CI must provide one`);
    });
  });
} else {
  describe('runPipeline with image steps', { skip: unavailable ?? false }, () => {
    before(async () => {
      image = await ensureBusyboxImage(docker);
    });
    afterEach(async () => {
      const left = await containersOfThisFile();
      await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      assert.deepEqual(left.map((c) => c.Names), [], 'no container of a step is left behind');
    });
    after(removeWorkspaces);

    it('runs the commands in the image, in the workspace mounted at its own path, on the host network, with the Docker socket', async () => {
      const ws = await workspace();
      const pipeline = sequential(
        step('checkout', ['echo from-host > code.txt']),
        step('in-image', ['pwd > pwd.txt', 'cat code.txt > container-saw.txt', 'test -S /var/run/docker.sock && echo socket > socket.txt', 'hostname > hostname.txt', 'echo "$CI_WORKSPACE $CI_STEP_NAME $GREETING $PATH" > env.txt'], {
          image,
          environment: { GREETING: 'hello' },
        }),
        step('back-on-host', ['cat container-saw.txt']),
      );
      const r = await run(pipeline, { workspace: ws, docker, build: build() });
      assert.equal(r.result.status, 'success', JSON.stringify(r.result));
      assert.equal(r.step('in-image').exitCode, 0);
      const read = (f: string) => readFile(join(ws, f), 'utf8');
      assert.equal(await read('pwd.txt'), `${ws}\n`);
      assert.equal(await read('container-saw.txt'), 'from-host\n');
      assert.equal(await read('socket.txt'), 'socket\n', 'the engine socket is mounted at /var/run/docker.sock');
      assert.equal(await read('hostname.txt'), `${hostname()}\n`, 'host networking');
      assert.equal(await read('env.txt'), `${ws} in-image hello /usr/sbin:/usr/bin:/sbin:/bin\n`, "CI_WORKSPACE is the mount; PATH is the image's");
      assert.match(r.log('in-image'), /^\+ pwd > pwd.txt\n\+ cat code.txt > container-saw.txt\n/);
      assert.equal(r.log('back-on-host'), '+ cat container-saw.txt\nfrom-host\n');
    });

    it('reports the exit status of a failing command, with stdout and stderr in order in the log', async () => {
      const ws = await workspace();
      const r = await run(sequential(step('fails', ['echo out; echo err >&2; echo out-again', 'exit 4', 'echo never'], { image }), step('next', ['true'])), {
        workspace: ws,
        docker,
        build: build(),
      });
      assert.equal(r.result.status, 'failure');
      assert.equal(r.step('fails').status, 'failure');
      assert.equal(r.step('fails').exitCode, 4);
      assert.equal(r.log('fails'), '+ echo out; echo err >&2; echo out-again\nout\nerr\nout-again\n+ exit 4\n');
      assert.equal(r.step('next').status, 'skipped');
    });

    it('labels the container of a running step, and stops and removes it when the build is cancelled', async () => {
      const ws = await workspace();
      const controller = new AbortController();
      const b = build();
      const pending = run(sequential(step('long', ['sleep 30'], { image }), step('later', ['true'])), { workspace: ws, docker, build: b, signal: controller.signal, killGraceMs: 10_000 });
      let running: Dockerode.ContainerInfo | undefined;
      for (const deadline = Date.now() + 15_000; running === undefined; await delay(50)) {
        if (Date.now() > deadline) assert.fail('the step container never ran');
        running = (await containersOfThisFile()).find((c) => c.State === 'running');
      }
      assert.deepEqual(
        Object.fromEntries(Object.entries(running.Labels).filter(([k]) => k.startsWith('slipway.ci.'))),
        { 'slipway.ci.build': `${JOB}#${b.number}`, 'slipway.ci.job': JOB, 'slipway.ci.build_number': String(b.number), 'slipway.ci.step': 'long' },
      );
      const cancelledAt = Date.now();
      controller.abort();
      const r = await pending;
      assert.ok(Date.now() - cancelledAt < 5_000, `docker stop's SIGTERM ended the step (docker-init passes it on), well before the 10 s grace (${Date.now() - cancelledAt} ms)`);
      assert.equal(r.result.status, 'cancelled');
      assert.equal(r.step('long').status, 'cancelled');
      assert.equal(r.step('later').status, 'skipped');
      assert.deepEqual(await containersOfThisFile(), []);
    });

    it('ends a step in error when its image is not on the host and cannot be pulled', async () => {
      const ws = await workspace();
      const r = await run(sequential(step('nowhere', ['true'], { image: '127.0.0.1:9/slipway-test/no-such-image:latest' })), { workspace: ws, docker, build: build() });
      assert.equal(r.result.status, 'error');
      assert.equal(r.step('nowhere').status, 'error');
      assert.match(r.step('nowhere').error ?? '', /^image 127\.0\.0\.1:9\/slipway-test\/no-such-image:latest is not on this host and cannot be pulled: /);
    });

    it("runs the image's own entrypoint when the step has no commands", async () => {
      const ws = await workspace();
      // The busybox image's CMD is `sh`, which reads an empty stdin and exits 0.
      const r = await run(sequential(step('plugin', [], { image })), { workspace: ws, docker, build: build() });
      assert.equal(r.result.status, 'success');
      assert.equal(r.log('plugin'), '');
    });

    it('removes the containers a build left behind, found by label', async () => {
      const b = build();
      const id = `${JOB}#${b.number}`;
      await docker.createContainer({ Image: image, Cmd: ['true'], Labels: { [CI_CONTAINER_LABELS.build]: id, [CI_CONTAINER_LABELS.job]: JOB } });
      assert.equal(await removeBuildContainers(docker, id), 1);
      assert.equal(await removeBuildContainers(docker, id), 0);
    });
  });
}

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SlipwayError } from '../src/core/errors.ts';

// Every error Slipway raises on purpose declares its HTTP status and a stable code (see
// src/core/errors.ts). This test finds them all by walking src/, importing every module and
// keeping the exported classes that extend SlipwayError, so that a new error class is checked
// without anyone having to list it here.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');

/** Entry points: importing them runs a program. They must declare no error class (checked below). */
const ENTRY_POINTS = new Set(['src/cli/main.ts']);

/**
 * Plausible constructor arguments for the classes whose constructor is not `(message)`. A class
 * missing here is built with a message; if that throws, the test says to add it.
 */
const ARGUMENTS: Record<string, unknown[]> = {
  SchedulerCallRefused: [403, 'framework f1 is not subscribed'],
  FetchFailed: ['http://127.0.0.1:1/app.tgz', 'connection refused'],
  StoreMigrationFailed: ['database migration 0003 failed, the database is left as it was: disk I/O error', new Error('SQLITE_IOERR')],
  StoreWriteFailed: ['ci store: change 1 of 1 failed; nothing of the batch was written: database or disk is full', new Error('SQLITE_FULL')],
  AppNotFound: ['/web'],
  AppAlreadyExists: ['/web'],
  GroupNotFound: ['/prod'],
  TaskNotFoundInApp: ['web.1'],
  DeploymentNotFound: ['d1'],
  AppVersionNotFound: ['/web', '2024-01-01T00:00:00.000Z'],
  AppLocked: [['d1']],
  ServicePortsExhausted: [10000, 10100],
  DeploymentCycle: [['/a', '/b', '/a']],
  MarathonValidationError: [[{ path: '/cpus', errors: ['must be >= 0'] }]],
  InvalidPipeline: [[{ path: 'steps[0].image', message: 'must be a string', line: 3, column: 12 }]],
  InvalidJob: [[{ field: 'repo', message: 'a local path must be absolute' }]],
  InvalidExecutorSpec: [[{ field: 'cpus', message: 'must be a number' }]],
  InvalidConfig: [[{ field: 'files[0].template', message: 'must be a path in the repository' }]],
  InvalidDelivery: [[{ field: 'gate.healthyMinutes', message: 'must be a whole number of minutes' }]],
  RenderFailed: [[{ field: 'files.app.yaml', message: 'undefined variable: db_host, line:3, col:9' }]],
  InvalidArtifactPattern: ['/etc/passwd', 'is absolute'],
  JobNotFound: ['hello'],
  BuildNotFound: ['hello', 3],
  CiStopping: [],
  RefNotFound: ['/srv/repo', { tag: 'v1.0' }],
  PipelineFileNotFound: ['/srv/repo', '0123456789abcdef0123', '.slipway.yml'],
};

/** Codes whose status is not the class's but carried by each error (the master's answer, relayed). */
const CARRIED_STATUS = new Set(['SCHEDULER_CALL_REFUSED']);

type ErrorClass = (abstract new (...args: never[]) => SlipwayError) & { name: string };

interface Found {
  file: string;
  exportName: string;
  cls: ErrorClass;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : [join(dir, e.name)]))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .map((f) => relative(ROOT, f))
    .sort();
}

function extendsSlipwayError(value: unknown): value is ErrorClass {
  return typeof value === 'function' && value !== SlipwayError && value.prototype instanceof SlipwayError;
}

async function exportedErrorClasses(): Promise<Found[]> {
  const found: Found[] = [];
  for (const file of sources(SRC)) {
    if (ENTRY_POINTS.has(file)) continue;
    const module = (await import(pathToFileURL(join(ROOT, file)).href)) as Record<string, unknown>;
    for (const [exportName, value] of Object.entries(module)) if (extendsSlipwayError(value)) found.push({ file, exportName, cls: value });
  }
  return found;
}

function construct({ cls, exportName, file }: Found): SlipwayError {
  // The abstract type only stops TypeScript from building a class it cannot see is concrete;
  // an abstract one is refused by the status check (it has no status of its own to declare).
  const Concrete = cls as unknown as new (...args: unknown[]) => SlipwayError;
  const args = ARGUMENTS[exportName] ?? ['something went wrong'];
  try {
    return new Concrete(...args);
  } catch (e) {
    assert.fail(`${exportName} (${file}) cannot be built from ${JSON.stringify(args)}: add plausible arguments for it to ARGUMENTS (${(e as Error).message})`);
  }
}

const found = await exportedErrorClasses();

describe('every exported SlipwayError declares its HTTP status and a stable code', () => {
  it('finds the error classes of every layer (the walk itself works)', () => {
    const names = new Set(found.map((f) => f.exportName));
    for (const expected of ['InvalidResources', 'InvalidCall', 'AgentNotFound', 'FileNotFound', 'StoreWriteFailed', 'AppNotFound', 'MarathonValidationError', 'InvalidJob', 'GitFailed']) {
      assert.ok(names.has(expected), `${expected} was not found by the walk of src/`);
    }
    assert.ok(found.length >= 50, `only ${found.length} error classes found`);
  });

  it('finds every class that extends SlipwayError in the sources (none hidden from this test)', () => {
    const exported = new Set(found.map((f) => `${f.file}:${f.cls.name}`));
    for (const file of sources(SRC)) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const m of text.matchAll(/\bclass\s+(\w+)\s+extends\s+SlipwayError\b/g)) {
        assert.ok(!ENTRY_POINTS.has(file), `${file} is an entry point and declares ${m[1]}: move the class into a module`);
        assert.ok(exported.has(`${file}:${m[1]}`), `${m[1]} (${file}) extends SlipwayError but is not exported: export it, so that its status is checked`);
      }
    }
  });

  for (const f of found) {
    it(`${f.exportName} (${f.file})`, () => {
      const error = construct(f);
      assert.ok(error instanceof SlipwayError);
      assert.equal(typeof error.code, 'string', `${f.exportName} has no code`);
      assert.match(error.code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/, `${f.exportName}'s code ${error.code} is not UPPER_SNAKE_CASE`);
      assert.equal(typeof error.status, 'number', `${f.exportName} declares no HTTP status`);
      assert.ok(Number.isInteger(error.status) && error.status >= 400 && error.status <= 599, `${f.exportName}'s status ${error.status} is not in 400-599`);
      assert.notEqual(error.status, 500, `${f.exportName} answers 500, which means a bug: give it the status of what went wrong`);
      // The code is the class's, not the arguments': built again with other arguments, it stays.
      assert.equal(construct(f).code, error.code);
      assert.equal(error.name, f.cls.name, 'the name says which class it is, in logs');
      assert.ok(error.message !== '', `${f.exportName} has an empty message`);
      if (error.body !== undefined) {
        assert.equal(typeof error.body, 'object', `${f.exportName}'s body is not a JSON object`);
        assert.deepEqual(JSON.parse(JSON.stringify(error.body)), error.body, `${f.exportName}'s body does not survive JSON`);
      }
    });
  }

  it('gives one status to each code (classes that share a code answer alike)', () => {
    const statusByCode = new Map<string, { status: number; by: string }>();
    for (const f of found) {
      const { code, status } = construct(f);
      if (CARRIED_STATUS.has(code)) continue;
      const seen = statusByCode.get(code);
      if (seen === undefined) statusByCode.set(code, { status, by: f.exportName });
      else assert.equal(status, seen.status, `${f.exportName} answers ${code} with ${status}, ${seen.by} with ${seen.status}`);
    }
  });

  it('answers the six codes that used to fall through to 500 with their own status', () => {
    const statusOf = (code: string) => {
      const f = found.find((x) => construct(x).code === code);
      assert.ok(f !== undefined, `no class has code ${code}`);
      return construct(f).status;
    };
    assert.equal(statusOf('STORE_WRITE_FAILED'), 503);
    assert.equal(statusOf('STORE_CLOSED'), 503);
    assert.equal(statusOf('STORE_MIGRATION_FAILED'), 503);
    assert.equal(statusOf('FETCH_FAILED'), 502);
    assert.equal(statusOf('CONTAINER_LAUNCH_FAILED'), 422);
    assert.equal(statusOf('SCHEDULER_CALL_REFUSED'), 403, 'a refusal carries the status the master answered');
  });

  it('keeps other layers\' codes out of src/core (each layer declares its own)', () => {
    const foreign = new Set(found.filter((f) => !f.file.startsWith('src/core/')).map((f) => construct(f).code));
    const coreOwn = new Set(found.filter((f) => f.file.startsWith('src/core/')).map((f) => construct(f).code));
    for (const file of sources(join(SRC, 'core'))) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const code of foreign) {
        if (coreOwn.has(code)) continue;
        assert.ok(!new RegExp(`\\b${code}\\b`).test(text), `${file} names ${code}, a code of another layer`);
      }
    }
  });
});

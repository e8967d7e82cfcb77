import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as errors from './errors.js';
import { ChangeLensError, EXIT, exitCodeFor, type ChangeLensErrorClass } from './errors.js';

/** Every exported CL_ERR_* class, by export name. */
const ERROR_CLASSES = Object.entries(errors).filter(([name]) => name.startsWith('CL_ERR_')) as [string, ChangeLensErrorClass<unknown[]>][];
const CODES = ERROR_CLASSES.map(([name]) => name);

/** Realistic constructor arguments per code (one per placeholder) and the message they must give. */
const SAMPLES: Record<string, { args: string[]; message: string }> = {
  CL_ERR_DEPLOYMENT_RUNNING: { args: ['d-1', 'v2', 'shifting'], message: 'deployment d-1 of release v2 is still shifting; one deployment runs at a time' },
  CL_ERR_NO_DEPLOYMENT: { args: ['promote'], message: 'no deployment is running to promote' },
  CL_ERR_NOT_CONTROLLER: { args: ['epoch 3 passed to inst-b', 'a change of deployment dep-1'], message: 'this instance no longer holds the controller lease (epoch 3 passed to inst-b); a change of deployment dep-1 was refused' },
  CL_ERR_NO_CONTROLLER: { args: ['nothing answered promote within 10 s'], message: 'no instance of the fleet answered as the controller: nothing answered promote within 10 s' },
  CL_ERR_NOT_FOUND: { args: ['deployment d-9'], message: 'deployment d-9 not found' },
  CL_ERR_RELEASE_CONFLICT: { args: ['v2', 'env'], message: 'release v2 already exists with a different env; a release never changes' },
  CL_ERR_ARTIFACT_INVALID: { args: ['artifact /x: no such file'], message: 'artifact /x: no such file' },
  CL_ERR_INVALID_REQUEST: { args: ['body/steps: expected increasing percentages'], message: 'body/steps: expected increasing percentages' },
  CL_ERR_UNAUTHORIZED: { args: [], message: 'missing or wrong bearer token' },
  CL_ERR_LOAD_REFUSED: { args: ['the join token does not match'], message: 'the load coordinator refused: the join token does not match' },
  CL_ERR_LOAD_COORDINATOR: { args: ['k3j2 at redis://10.0.0.1:6379', 'none has answered for 10 s'], message: 'no load coordinator k3j2 at redis://10.0.0.1:6379: none has answered for 10 s' },
  CL_ERR_UNREACHABLE: { args: ['https://x/_changelens', 'ECONNREFUSED'], message: 'nothing answers at https://x/_changelens: ECONNREFUSED' },
  CL_ERR_BAD_PIN: { args: ['header x-changelens-color: expected blue or green, got "red"'], message: 'header x-changelens-color: expected blue or green, got "red"' },
  CL_ERR_CONFIG_INVALID: { args: ['  - PORT: expected a TCP port 1-65535, got "x"'], message: 'invalid configuration:\n  - PORT: expected a TCP port 1-65535, got "x"' },
  CL_ERR_CLI_USAGE: { args: ['unknown command "bogus"'], message: 'unknown command "bogus"' },
  CL_ERR_PORT_IN_USE: { args: ['port 8080 (PORT) is already in use'], message: 'port 8080 (PORT) is already in use' },
  CL_ERR_DATA_DIR: { args: ['/d', 'why'], message: 'data dir /d is not usable: why' },
  CL_ERR_MISSING_BINARY: { args: ['initdb', 'CHANGELENS_PG_BIN_DIR'], message: 'initdb not found (CHANGELENS_PG_BIN_DIR)' },
  CL_ERR_SERVICE_USER: { args: ['svc'], message: 'running as root, but the unprivileged service user "svc" does not exist' },
  CL_ERR_APP_ROLE: { args: ['changelens_app', 'permission denied'], message: 'could not set up the Postgres role changelens_app, which releases connect as: permission denied' },
  CL_ERR_COLOR_NOT_RUNNING: { args: ['api-green'], message: 'api-green is not running' },
  CL_ERR_RELEASE_USER: { args: ['"app" does not exist'], message: 'running as root, but the release user "app" does not exist' },
  CL_ERR_INITDB_FAILED: { args: ['exit code 1'], message: 'initdb failed: exit code 1' },
  CL_ERR_DEPENDENCY_FAILED: { args: ['redis', 'no answer', '; last log line'], message: 'redis did not become ready: no answer; last log line' },
  CL_ERR_MIGRATION_FAILED: { args: ['0003_index.sql', 'syntax error'], message: 'migration 0003_index.sql failed and was rolled back: syntax error' },
  CL_ERR_MIGRATION_CHANGED: { args: ['0001_init.sql'], message: 'migration 0001_init.sql was already applied but its file has changed since' },
  CL_ERR_ALREADY_RUNNING: { args: ['/data', '4242'], message: 'an appliance already runs on data dir /data (supervisor pid 4242)' },
  CL_ERR_NOT_RUNNING: { args: ['/srv/data'], message: 'no appliance is running on data dir /srv/data' },
  CL_ERR_INTERNAL: { args: [], message: 'internal error' },
  CL_ERR_DEPENDENCY_UNAVAILABLE: { args: ['redis', 'the connection is down'], message: 'redis is unavailable: the connection is down' },
  CL_ERR_REGRESSION_INVALID: { args: ['cpu intensity: expected an integer 1-10000 (work units), got 0'], message: 'cpu intensity: expected an integer 1-10000 (work units), got 0' },
  CL_ERR_TASK_NOT_FOUND: { args: ['7d9f'], message: 'task 7d9f not found' },
  CL_ERR_DOWNSTREAM_TIMEOUT: { args: ['1000'], message: 'downstream call timed out after 1000 ms' },
  CL_ERR_INJECTED_FAILURE: { args: ['green'], message: 'injected failure (errors regression on green)' },
  CL_ERR_EPHEMERAL_DATA: { args: ['Cloud Run', '/data is on the container\'s own filesystem'], message: 'on Cloud Run, embedded Postgres would lose its data: /data is on the container\'s own filesystem' },
  CL_ERR_ROLLOUT_BAD_TRANSITION: { args: ['promoted', 'resume', 'nothing: it is finished'], message: 'a deployment that is promoted cannot take "resume" (allowed now: nothing: it is finished)' },
  CL_ERR_UPSTREAM: { args: ['api-green', 'connect ECONNREFUSED 127.0.0.1:3002'], message: 'api-green could not be reached: connect ECONNREFUSED 127.0.0.1:3002' },
  CL_ERR_UPSTREAM_TIMEOUT: { args: ['api-blue', 'Headers Timeout Error'], message: 'api-blue did not answer in time: Headers Timeout Error' },
  CL_ERR_CLOSING: { args: [], message: 'shutting down' },
  CL_ERR_PROXY_RESTARTING: { args: ['10000'], message: 'the proxy did not come back within 10000 ms; this connection waited for it and was answered by the supervisor' },
  CL_ERR_AMBIGUOUS_REQUEST: { args: ['a body on GET'], message: 'refused: a body on GET; two servers could read where this request ends differently' },
  CL_ERR_UPSTREAM_BUSY: { args: ['api-blue', '1024 requests in flight'], message: 'api-blue is at its bound: 1024 requests in flight' },
  CL_ERR_PIN_REFUSED: { args: ['green'], message: 'a request pinned to green needs a preview credential' },
  CL_ERR_APP_CONTROL: { args: ['POST /api/regression/:type'], message: 'POST /api/regression/:type is the operator\'s to change: not through the public port' },
  CL_ERR_TOO_MANY_FAILURES: { args: ['10.0.0.5', '42'], message: 'too many failed sign-ins or wrong tokens from 10.0.0.5: its wrong ones are answered this for 42 s' },
  CL_ERR_MAINTENANCE: { args: ['restoring backup 20261129-020000-pg'], message: 'restoring backup 20261129-020000-pg' },
  CL_ERR_BACKUP_FAILED: { args: ['pg_dump failed: connection refused'], message: 'backup failed: pg_dump failed: connection refused' },
  CL_ERR_BACKUP_INVALID: { args: ['20261129T020000Z-postgres', 'postgres.dump: sha256 does not match'], message: 'backup 20261129T020000Z-postgres cannot be used: postgres.dump: sha256 does not match' },
  CL_ERR_PROCESS_CONTROL: { args: ['api-blue is the active colour'], message: 'api-blue is the active colour' },
  CL_ERR_BOOTING: { args: [], message: 'the appliance is booting; try again when it is ready' },
};

const EXPECTED_EXIT: Record<string, number> = { CL_ERR_CONFIG_INVALID: 2, CL_ERR_CLI_USAGE: 2, CL_ERR_NOT_RUNNING: 3, CL_ERR_UNREACHABLE: 3, CL_ERR_LOAD_COORDINATOR: 3, CL_ERR_LOAD_REFUSED: 5, CL_ERR_UNAUTHORIZED: 5, CL_ERR_APP_CONTROL: 5, CL_ERR_TOO_MANY_FAILURES: 5, CL_ERR_PIN_REFUSED: 5 };

function sampleFor(code: string): { args: string[]; message: string } {
  const sample = SAMPLES[code];
  if (sample === undefined) throw new Error(`add a sample for ${code} to SAMPLES`);
  return sample;
}

it('finds the error classes and has a sample for each', () => {
  expect(CODES.length).toBeGreaterThan(0);
  expect([...CODES].sort()).toEqual(Object.keys(SAMPLES).sort());
});

it('gives every class a unique code', () => {
  const codes = ERROR_CLASSES.map(([, ErrorClass]) => ErrorClass.code);
  expect(new Set(codes).size).toBe(codes.length);
});

describe.each(ERROR_CLASSES)('%s', (exportName, ErrorClass) => {
  const { args, message } = sampleFor(exportName);

  it('has its export name as static code and class name', () => {
    expect(ErrorClass.code).toBe(exportName);
    expect(ErrorClass.name).toBe(exportName);
  });

  it('makes a ChangeLensError with the code, a status 400-599 and a hint', () => {
    const err = new ErrorClass(...args);
    expect(err).toBeInstanceOf(ErrorClass);
    expect(err).toBeInstanceOf(ChangeLensError);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(exportName);
    expect(Number.isInteger(err.statusCode)).toBe(true);
    expect(err.statusCode).toBeGreaterThanOrEqual(400);
    expect(err.statusCode).toBeLessThanOrEqual(599);
    expect(err.hint.trim()).not.toBe('');
    expect(err.toJSON()).toEqual({ code: exportName, message: err.message, statusCode: err.statusCode, hint: err.hint });
  });

  it('fills the placeholders of its message, in order', () => {
    expect(new ErrorClass(...args).message).toBe(message);
  });

  it('takes a trailing { cause } without formatting it into the message', () => {
    const cause = new Error('root cause');
    const err = new ErrorClass(...args, { cause });
    expect(err.cause).toBe(cause);
    expect(err.message).toBe(message);
  });

  it(`exits with ${EXPECTED_EXIT[exportName] ?? EXIT.failure}`, () => {
    expect(exitCodeFor(new ErrorClass(...args))).toBe(EXPECTED_EXIT[exportName] ?? EXIT.failure);
  });
});

describe('exitCodeFor', () => {
  it('uses the documented exit codes', () => {
    expect(EXIT).toEqual({ ok: 0, failure: 1, usage: 2, notRunning: 3, undecided: 4, unauthorized: 5 });
  });

  it.each([
    ['a plain Error', new Error('boom')],
    ['a string', 'boom'],
    ['undefined', undefined],
    ['an object that only looks like a ChangeLens error', { code: 'CL_ERR_CONFIG_INVALID' }],
  ])('maps %s to 1', (_, thrown) => {
    expect(exitCodeFor(thrown)).toBe(1);
  });
});

it('docs/errors.md lists every code exactly once in its table', () => {
  const doc = readFileSync(fileURLToPath(new URL('../docs/errors.md', import.meta.url)), 'utf8');
  const tableCodes = doc
    .split('\n')
    .filter((line) => line.trimStart().startsWith('|'))
    .map((line) => line.split('|')[1]!.trim().replace(/`/g, ''))
    .filter((cell) => cell.startsWith('CL_ERR_'));
  expect(tableCodes.sort()).toEqual([...CODES].sort());
});

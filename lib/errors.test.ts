import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as errors from './errors.js';
import { ChangeLensError, EXIT, exitCodeFor, type ChangeLensErrorClass } from './errors.js';

/** Every exported CL_ERR_* class, by export name. */
const ERROR_CLASSES = Object.entries(errors).filter(([name]) => name.startsWith('CL_ERR_')) as [string, ChangeLensErrorClass<unknown[]>][];
const CODES = ERROR_CLASSES.map(([name]) => name);

/** Realistic constructor arguments per code, one per placeholder of its message template. */
const SAMPLE_ARGS: Record<string, string[]> = {
  CL_ERR_CONFIG_INVALID: ['  - PORT: expected a TCP port 1-65535, got "x"'],
  CL_ERR_CLI_USAGE: ['unknown command "bogus"'],
  CL_ERR_PORT_IN_USE: ['port 8080 (PORT) is already in use'],
  CL_ERR_DATA_DIR: ['/d', 'why'],
  CL_ERR_MISSING_BINARY: ['initdb', 'looked in /usr/lib/postgresql/16/bin'],
  CL_ERR_SERVICE_USER: ['svc-user'],
  CL_ERR_INITDB_FAILED: ['exit code 1'],
  CL_ERR_DEPENDENCY_FAILED: ['redis', 'timed out after 30000 ms', '; last error ECONNREFUSED'],
  CL_ERR_MIGRATION_FAILED: ['0003_add_index.sql', 'syntax error at or near "INDX"'],
  CL_ERR_MIGRATION_CHANGED: ['0001_init.sql'],
  CL_ERR_ALREADY_RUNNING: ['/data', '4242'],
  CL_ERR_NOT_RUNNING: ['/srv/data'],
  CL_ERR_INTERNAL: [],
};

const EXPECTED_EXIT: Record<string, number> = { CL_ERR_CONFIG_INVALID: 2, CL_ERR_CLI_USAGE: 2, CL_ERR_NOT_RUNNING: 3 };

function sampleArgs(code: string): string[] {
  const args = SAMPLE_ARGS[code];
  if (args === undefined) throw new Error(`add sample arguments for ${code} to SAMPLE_ARGS`);
  return args;
}

it('finds the error classes and has sample arguments for each', () => {
  expect(CODES.length).toBeGreaterThan(0);
  expect([...CODES].sort()).toEqual(Object.keys(SAMPLE_ARGS).sort());
});

it('gives every class a unique code', () => {
  const codes = ERROR_CLASSES.map(([, ErrorClass]) => ErrorClass.code);
  expect(new Set(codes).size).toBe(codes.length);
});

describe.each(ERROR_CLASSES)('%s', (exportName, ErrorClass) => {
  const args = sampleArgs(exportName);

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

  it('fills every placeholder of its message', () => {
    const { message } = new ErrorClass(...args);
    for (const arg of args) expect(message).toContain(arg);
    expect(message).not.toMatch(/%[sdj]/);
  });

  it('takes a trailing { cause } without formatting it into the message', () => {
    const cause = new Error('root cause');
    const err = new ErrorClass(...args, { cause });
    expect(err.cause).toBe(cause);
    expect(err.message).toBe(new ErrorClass(...args).message);
  });

  it(`exits with ${EXPECTED_EXIT[exportName] ?? EXIT.failure}`, () => {
    expect(exitCodeFor(new ErrorClass(...args))).toBe(EXPECTED_EXIT[exportName] ?? EXIT.failure);
  });
});

it('fills the data dir and the reason into CL_ERR_DATA_DIR', () => {
  expect(new errors.CL_ERR_DATA_DIR('/d', 'why').message).toBe('data dir /d is not usable: why');
});

describe('exitCodeFor', () => {
  it('uses the documented exit codes', () => {
    expect(EXIT).toEqual({ ok: 0, failure: 1, usage: 2, notRunning: 3 });
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

// Bad input at boot gets a clear error and loses nothing: a taken port, an invalid or unknown
// setting, a bad config file and a bad command line each stop `changelens up` before anything
// starts, with a message naming the culprit and the expected form, and an exit code ≠ 0.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appliancePorts, portsEnv, tempDataDir } from '../../bench/harness.js';
import { runCli } from '../helpers/cli.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function occupy(port: number): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  servers.push(server);
}

async function env(extra: Record<string, string> = {}): Promise<{ env: Record<string, string>; dataDir: string; ports: Awaited<ReturnType<typeof appliancePorts>> }> {
  const ports = await appliancePorts();
  // A data dir path that does not exist yet: a refused boot must not create it.
  const dataDir = join(tempDataDir(), 'data');
  return { env: { ...portsEnv(ports), CHANGELENS_DATA_DIR: dataDir, ...extra }, dataDir, ports };
}

describe('changelens up refuses bad input before starting anything', () => {
  it('a port already taken: names the port and its setting, exit 1', async () => {
    const { env: e, dataDir, ports } = await env();
    await occupy(ports.pgPort);
    const { code, stderr } = await runCli(['up'], e);
    expect(code).toBe(1);
    expect(stderr).toContain('CL_ERR_PORT_IN_USE');
    expect(stderr).toContain(`port ${ports.pgPort}`);
    expect(stderr).toContain('CHANGELENS_PG_PORT');
    expect(stderr).toContain('already in use');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('the public port taken: names PORT and the proxy', async () => {
    const { env: e, ports } = await env();
    await occupy(ports.port);
    const { code, stderr } = await runCli(['up'], e);
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`port ${ports.port} .*\\(PORT, for proxy\\) is already in use`));
  });

  it.runIf(process.getuid?.() === 0).each([
    ['a user that does not exist', 'no-such-user-cl', '"no-such-user-cl" does not exist'],
    ['root', 'root', '"root" is root'],
    ['the service user, who owns Postgres\'s files', 'postgres', 'shares its user or group with the service user postgres'],
  ])('as root, releases never run as %s: the boot is refused, naming the release user', async (_what, user, says) => {
    const { env: e } = await env({ CHANGELENS_RELEASE_USER: user });
    const { code, stderr } = await runCli(['up'], e);
    expect(code).toBe(1);
    expect(stderr).toContain('CL_ERR_RELEASE_USER');
    expect(stderr).toContain(says);
  });

  it('an invalid value: names the setting, the expected form and the value given, exit 2', async () => {
    const { env: e, dataDir } = await env({ CHANGELENS_REDIS_PORT: 'six-three-seven-nine', CHANGELENS_STOP_TIMEOUT_MS: '10' });
    const { code, stderr } = await runCli(['up'], e);
    expect(code).toBe(2);
    expect(stderr).toContain('CL_ERR_CONFIG_INVALID');
    expect(stderr).toContain('CHANGELENS_REDIS_PORT: expected a TCP port 1-65535, got "six-three-seven-nine"');
    expect(stderr).toContain('CHANGELENS_STOP_TIMEOUT_MS: expected milliseconds, 1000-120000, got 10');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('an invalid regression spec is refused, naming the setting and the bad part', async () => {
    const { env: e } = await env({ CHANGELENS_REGRESSION: 'cpu:50,memory:3' });
    const { code, stderr } = await runCli(['up'], e);
    expect(code).toBe(2);
    expect(stderr).toContain('CHANGELENS_REGRESSION: expected type:intensity');
    expect(stderr).toContain('"cpu:50,memory:3"');
    expect(stderr).toContain('unknown regression type "memory"');
  });

  it('on Cloud Run, embedded Postgres on the container\'s own filesystem is refused, saying why and what to do', async () => {
    const { env: e, dataDir } = await env({ K_SERVICE: 'changelens' });
    const { code, stderr } = await runCli(['up'], e);
    expect(code).toBe(1);
    expect(stderr).toContain('CL_ERR_EPHEMERAL_DATA: on Cloud Run, embedded Postgres would lose its data');
    expect(stderr).toContain('CHANGELENS_EPHEMERAL=1');
    expect(stderr).toContain('DATABASE_URL');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('an unknown setting (a typo) is refused, naming it', async () => {
    const { env: e } = await env({ CHANGELENS_PG_PROT: '5433' });
    const { code, stderr } = await runCli(['up'], e);
    expect(code).toBe(2);
    expect(stderr).toContain('CHANGELENS_PG_PROT: unknown setting');
  });

  it('a bad config file: unknown key and bad value both named with the file, exit 2', async () => {
    const { env: e, dataDir } = await env();
    const file = join(tempDataDir(), 'changelens.json');
    writeFileSync(file, JSON.stringify({ apiInstances: 99, colour: 'blue' }));
    const { code, stderr } = await runCli(['up', '--config', file], e);
    expect(code).toBe(2);
    expect(stderr).toContain(`${file}: unknown key "colour"`);
    expect(stderr).toContain(`${file}: apiInstances: expected an integer 1-16, got 99`);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('a bad command line: unknown command and unknown option, exit 2', async () => {
    const unknownCommand = await runCli(['upp'], {});
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain("CL_ERR_CLI_USAGE: unknown command 'upp' (did you mean up?)");
    const unknownOption = await runCli(['status', '--jsn'], {});
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("unknown option '--jsn' (did you mean --json?)\nhint: run: changelens status --help");
  });

  it('status with nothing running: exit 3, and --json says running: false', async () => {
    const dataDir = tempDataDir();
    const human = await runCli(['status'], { CHANGELENS_DATA_DIR: dataDir });
    expect(human.code).toBe(3);
    expect(human.stderr).toContain('CL_ERR_NOT_RUNNING');
    const json = await runCli(['status', '--json'], { CHANGELENS_DATA_DIR: dataDir });
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toEqual({ schemaVersion: 1, running: false, dataDir });
    expect(readdirSync(dataDir)).toEqual([]);
  });
});

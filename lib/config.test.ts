import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import * as fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configToEnv, parseStepsWithGates, envNameOf, loadConfig, type Config, type LoadConfigOptions } from './config.js';
import { CL_ERR_CONFIG_INVALID, ChangeLensError } from './errors.js';

/** The seven ports ChangeLens binds, as config keys and as the env vars that set them. */
const PORT_KEYS = ['port', 'pgPort', 'redisPort', 'apiBluePort', 'apiGreenPort', 'workerBluePort', 'workerGreenPort'] as const;
const PORT_ENVS = ['PORT', 'CHANGELENS_PG_PORT', 'CHANGELENS_REDIS_PORT', 'CHANGELENS_API_BLUE_PORT', 'CHANGELENS_API_GREEN_PORT', 'CHANGELENS_WORKER_BLUE_PORT', 'CHANGELENS_WORKER_GREEN_PORT'];

/** Every config key; a test below checks this list against what loadConfig returns. */
const ALL_KEYS: (keyof Config)[] = [
  ...PORT_KEYS, 'host', 'dataDir', 'apiInstances', 'readyTimeoutMs', 'stopTimeoutMs', 'logLevel', 'serviceUser', 'releaseUser',
  'pgBinDir', 'redisServer', 'databaseUrl', 'redisUrl', 'instanceId', 'instanceUrl', 'fleetLeaseMs', 'fleetGraceMs', 'adminToken', 'pgPassword', 'redisPassword', 'color',
  'backupPgSchedule', 'backupRedisSchedule', 'backupVerifySchedule', 'backupKeep', 'backupMaxAgeDays', 'backupMinFreeMb', 'backupBeforeDeploy', 'backupEncrypt', 'backupKey', 'backupS3Url', 'backupS3Endpoint', 'backupS3Region', 'backupS3PathStyle',
  'otlpEndpoint', 'accessLog', 'seedItems', 'jobSplit', 'jobMaxAttempts', 'jobClaimIdleMs', 'workerConcurrency', 'downstreamTimeoutMs', 'regression', 'workerRegression', 'pmId', 'platform', 'ephemeral', 'cloudRunService', 'releaseId',
  'canarySteps', 'stepSeconds', 'windowSeconds', 'p99Ratio', 'p99MinDeltaMs', 'analysisLoad', 'warmupSeconds', 'warmupPaths', 'mirror', 'mirrorPercent', 'mirrorMaxRps', 'progressDeadlineSeconds', 'progressDeadlineAction', 'maxErrorRate', 'maxP95Ms', 'maxP99Ms', 'minSamples', 'failuresToRollback',
  'sequential', 'artifactMaxMb', 'releasesKeep', 'tripConsecutive5xx', 'tripConsecutiveJobFailures', 'jobMinSamples', 'metricRules', 'monitorRules', 'monitorIntervalSeconds', 'apiMaxInstances', 'keepWarmSeconds', 'inspectSeconds', 'previewSeconds', 'hookUrls', 'notify', 'publicUrl', 'gateUrl', 'hookCommand', 'hookTimeoutMs',
  'connectionHandoff', 'appControlToken', 'trustedProxies', 'backupOffsitePlain', 'releaseSecretsKey',
];
const ALL_ENVS = ALL_KEYS.map(envNameOf);

/** An environment in which every setting is given (all distinct ports). */
const FULL_ENV: Record<string, string> = {
  PORT: '8081', CHANGELENS_PG_PORT: '15432', CHANGELENS_REDIS_PORT: '16379', CHANGELENS_API_BLUE_PORT: '4001',
  CHANGELENS_API_GREEN_PORT: '4002', CHANGELENS_WORKER_BLUE_PORT: '4003', CHANGELENS_WORKER_GREEN_PORT: '4004', CHANGELENS_HOST: '127.0.0.1',
  CHANGELENS_BACKUP_PG_SCHEDULE: '15 1 * * *', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off', CHANGELENS_BACKUP_VERIFY_SCHEDULE: '0 4 * * 1',
  CHANGELENS_BACKUP_KEEP: '3', CHANGELENS_BACKUP_MAX_AGE_DAYS: '14', CHANGELENS_BACKUP_MIN_FREE_MB: '100', CHANGELENS_BACKUP_BEFORE_DEPLOY: '1', CHANGELENS_BACKUP_ENCRYPT: '1', CHANGELENS_BACKUP_S3_URL: 's3://changelens-backups/prod', CHANGELENS_BACKUP_S3_ENDPOINT: 'https://cos.ap-shanghai.myqcloud.com', CHANGELENS_BACKUP_S3_REGION: 'ap-shanghai', CHANGELENS_BACKUP_S3_PATH_STYLE: '1', CHANGELENS_BACKUP_KEY: 'a-backup-key-of-32-characters-xx',
  CHANGELENS_DATA_DIR: '/srv/changelens', CHANGELENS_API_INSTANCES: '2', CHANGELENS_READY_TIMEOUT_MS: '1000',
  CHANGELENS_STOP_TIMEOUT_MS: '2000', CHANGELENS_LOG_LEVEL: 'debug', CHANGELENS_SERVICE_USER: 'changelens', CHANGELENS_RELEASE_USER: 'someapp',
  CHANGELENS_PG_BIN_DIR: '/usr/lib/postgresql/16/bin', CHANGELENS_REDIS_SERVER: '/usr/bin/redis-server',
  DATABASE_URL: 'postgres://app:pw@db:5432/app', REDIS_URL: 'redis://cache:6379/0', CHANGELENS_INSTANCE_ID: 'edge-1', CHANGELENS_INSTANCE_URL: 'http://10.0.0.2:8080', CHANGELENS_FLEET_LEASE_MS: '6000', CHANGELENS_FLEET_GRACE_MS: '7000',
  CHANGELENS_ADMIN_TOKEN: 'Adm1n-T0ken_of-forty.characters~xyzABCDE', CHANGELENS_PG_PASSWORD: 'b'.repeat(16), CHANGELENS_REDIS_PASSWORD: 'c'.repeat(16),
  CHANGELENS_COLOR: 'green', CHANGELENS_APP_CONTROL_TOKEN: 'app-control-token-0123456789', CHANGELENS_CONNECTION_HANDOFF: '1', CHANGELENS_TRUSTED_PROXIES: '10.0.0.2,::1', CHANGELENS_BACKUP_OFFSITE_PLAIN: '0', CHANGELENS_RELEASE_SECRETS_KEY: 'k'.repeat(43),
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', CHANGELENS_ACCESS_LOG: 'all', CHANGELENS_SEED_ITEMS: '500',
  CHANGELENS_JOB_SPLIT: 'weight', CHANGELENS_JOB_MAX_ATTEMPTS: '5', CHANGELENS_JOB_CLAIM_IDLE_MS: '2000', CHANGELENS_WORKER_CONCURRENCY: '2',
  CHANGELENS_DOWNSTREAM_TIMEOUT_MS: '250', CHANGELENS_REGRESSION: 'cpu:50,dependency:200/0.1', CHANGELENS_WORKER_REGRESSION: 'errors:0.2,slow:40', pm_id: '7', CHANGELENS_PLATFORM: 'cloudrun', CHANGELENS_EPHEMERAL: '1', K_SERVICE: 'changelens', CHANGELENS_RELEASE_ID: 'r-1',
  CHANGELENS_CANARY_STEPS: '10,100', CHANGELENS_STEP_SECONDS: '60', CHANGELENS_WINDOW_SECONDS: '10', CHANGELENS_P99_RATIO: '2.5', CHANGELENS_P99_MIN_DELTA_MS: '12.5', CHANGELENS_ANALYSIS_LOAD: '40,/api/data', CHANGELENS_WARMUP_SECONDS: '9', CHANGELENS_WARMUP_PATHS: '/api/data,/api/items?limit=5', CHANGELENS_MIRROR: '0', CHANGELENS_MIRROR_PERCENT: '12.5', CHANGELENS_MIRROR_MAX_RPS: '50', CHANGELENS_PROGRESS_DEADLINE_SECONDS: '120', CHANGELENS_PROGRESS_DEADLINE_ACTION: 'pause',
  CHANGELENS_MAX_ERROR_RATE: '0.01', CHANGELENS_MAX_P95_MS: '250', CHANGELENS_MAX_P99_MS: '800.5', CHANGELENS_MIN_SAMPLES: '100',
  CHANGELENS_FAILURES_TO_ROLLBACK: '3', CHANGELENS_TRIP_CONSECUTIVE_5XX: '0', CHANGELENS_TRIP_CONSECUTIVE_JOB_FAILURES: '7', CHANGELENS_JOB_MIN_SAMPLES: '30', CHANGELENS_ARTIFACT_MAX_MB: '50', CHANGELENS_SEQUENTIAL: '0', CHANGELENS_RELEASES_KEEP: '3', CHANGELENS_METRIC_RULES: 'recall_at_10>=0.3', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_MONITOR_INTERVAL_SECONDS: '5', CHANGELENS_API_MAX_INSTANCES: '6', CHANGELENS_KEEP_WARM_SECONDS: '60', CHANGELENS_INSPECT_SECONDS: '30', CHANGELENS_PREVIEW_SECONDS: '5',
  CHANGELENS_HOOK_URLS: 'http://hooks.local/a,https://hooks.local/b', CHANGELENS_GATE_URL: 'https://approvals.local/gate', CHANGELENS_NOTIFY: 'slack:https://hooks.slack.local/services/T0/B0/x,wecom:https://qyapi.local/send?key=k', CHANGELENS_PUBLIC_URL: 'https://app.example.com', CHANGELENS_HOOK_COMMAND: 'logger changelens', CHANGELENS_HOOK_TIMEOUT_MS: '2000',
};

/** Whether `message` names the setting `name` as a whole word (PORT must not match CHANGELENS_PG_PORT). */
function names(message: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![A-Za-z0-9_])${escaped}(?![A-Za-z0-9_])`).test(message);
}

/** Calls loadConfig expecting a CL_ERR_CONFIG_INVALID, and returns it. */
function configError(options: LoadConfigOptions): ChangeLensError {
  try {
    loadConfig(options);
  } catch (err) {
    expect(err).toBeInstanceOf(CL_ERR_CONFIG_INVALID);
    expect((err as ChangeLensError).code).toBe('CL_ERR_CONFIG_INVALID');
    return err as ChangeLensError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(options)}`);
}

const portArb = fc.integer({ min: 1, max: 65535 });
const distinctPortsArb = fc.uniqueArray(portArb, { minLength: PORT_KEYS.length, maxLength: PORT_KEYS.length });
const portEnv = (ports: readonly number[]): Record<string, string> =>
  Object.fromEntries(PORT_ENVS.map((name, i) => [name, String(ports[i])]));

/** Strings that are not an integer 1-65535 (the empty string is excluded: it means "unset"). */
const notAPortArb = fc.oneof(
  fc.oneof(fc.bigInt({ max: 0n }), fc.bigInt({ min: 65536n })).map(String),
  fc.double().filter((d) => !Number.isInteger(d)).map(String),
  fc.string({ minLength: 1 }).filter((s) => !/^\s*\d+\s*$/.test(s)),
);

const SECRET_CHARS = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~+/='];
const secretArb = fc.string({ unit: fc.constantFrom(...SECRET_CHARS), minLength: 16, maxLength: 40 });
const adminTokenArb = fc.string({ unit: fc.constantFrom(...SECRET_CHARS), minLength: 32, maxLength: 64 }).filter((t) => new Set(t).size >= 10);
const wordArb = fc.stringMatching(/^[a-z0-9]{1,12}$/);

/** Valid values for every setting but the ports, each one optional. */
const otherSettingsArb = fc.record(
  {
    CHANGELENS_HOST: fc.string({ minLength: 1 }),
    CHANGELENS_DATA_DIR: fc.string({ minLength: 1 }),
    CHANGELENS_API_INSTANCES: fc.integer({ min: 1, max: 16 }).map(String),
    CHANGELENS_READY_TIMEOUT_MS: fc.integer({ min: 500, max: 600_000 }).map(String),
    CHANGELENS_STOP_TIMEOUT_MS: fc.integer({ min: 1000, max: 120_000 }).map(String),
    CHANGELENS_LOG_LEVEL: fc.constantFrom('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
    CHANGELENS_SERVICE_USER: fc.stringMatching(/^[a-z_][a-z0-9_-]{0,15}$/),
    CHANGELENS_PG_BIN_DIR: fc.string({ minLength: 1 }),
    CHANGELENS_REDIS_SERVER: fc.string({ minLength: 1 }),
    DATABASE_URL: fc.tuple(fc.constantFrom('postgres', 'postgresql'), wordArb, portArb).map(([scheme, host, p]) => `${scheme}://app:pw@${host}:${p}/app`),
    REDIS_URL: fc.tuple(fc.constantFrom('redis', 'rediss'), wordArb, portArb).map(([scheme, host, p]) => `${scheme}://${host}:${p}`),
    CHANGELENS_ADMIN_TOKEN: adminTokenArb,
    CHANGELENS_PG_PASSWORD: secretArb,
    CHANGELENS_REDIS_PASSWORD: secretArb,
    CHANGELENS_COLOR: fc.constantFrom('blue', 'green'),
    CHANGELENS_CANARY_STEPS: fc.uniqueArray(fc.integer({ min: 1, max: 99 }), { maxLength: 6 }).map((s) => [...s.sort((a, b) => a - b), 100].join(',')),
    CHANGELENS_P99_RATIO: fc.double({ min: 1, max: 1000, noNaN: true }).map(String),
    CHANGELENS_MAX_ERROR_RATE: fc.double({ min: 0, max: 1, noNaN: true }).map(String),
    CHANGELENS_MIN_SAMPLES: fc.integer({ min: 1, max: 1_000_000 }).map(String),
  },
  { requiredKeys: [] },
);
const validEnvArb = fc.tuple(distinctPortsArb, otherSettingsArb).map(([ports, others]) => ({ ...portEnv(ports), ...others }));

describe('loadConfig: ports', () => {
  it('accepts any distinct ports and parses them to numbers', () => {
    fc.assert(
      fc.property(distinctPortsArb, (ports) => {
        const config = loadConfig({ env: portEnv(ports) });
        expect(PORT_KEYS.map((key) => config[key])).toEqual(ports);
      }),
    );
  });

  it('rejects any port value that is not an integer 1-65535, naming the env var', () => {
    fc.assert(
      fc.property(fc.constantFrom(...PORT_ENVS), notAPortArb, (name, value) => {
        const { message } = configError({ env: { [name]: value } });
        expect(names(message, name)).toBe(true);
        expect(message).toContain('expected a TCP port');
      }),
    );
  });

  it('rejects two equal ports, naming both settings', () => {
    const pairArb = fc.uniqueArray(fc.integer({ min: 0, max: PORT_ENVS.length - 1 }), { minLength: 2, maxLength: 2 });
    fc.assert(
      fc.property(distinctPortsArb, pairArb, (ports, [a, b]) => {
        const clashing = [...ports];
        clashing[b!] = clashing[a!]!;
        const { message } = configError({ env: portEnv(clashing) });
        expect(names(message, PORT_ENVS[a!]!)).toBe(true);
        expect(names(message, PORT_ENVS[b!]!)).toBe(true);
        expect(message).toContain('distinct ports');
      }),
    );
  });

  it('names a default port that a setting clashes with', () => {
    const { message } = configError({ env: { CHANGELENS_WORKER_GREEN_PORT: '8080' } });
    expect(names(message, 'CHANGELENS_WORKER_GREEN_PORT')).toBe(true);
    expect(message).toContain('PORT (default)');
  });

  it('lets the Postgres and Redis ports repeat others when the services are external', () => {
    const env = { DATABASE_URL: 'postgres://u:p@db:5432/app', REDIS_URL: 'redis://cache:6379', CHANGELENS_PG_PORT: '8080', CHANGELENS_REDIS_PORT: '8080' };
    expect(loadConfig({ env }).pgPort).toBe(8080);
  });
});

describe('loadConfig: environment', () => {
  it('reads every setting from its env var', () => {
    const config = loadConfig({ env: FULL_ENV });
    expect(Object.keys(config).sort()).toEqual([...ALL_KEYS].sort());
    expect(config).toMatchObject({ port: 8081, apiInstances: 2, logLevel: 'debug', color: 'green', dataDir: '/srv/changelens', p99Ratio: 2.5, maxErrorRate: 0.01, maxP99Ms: 800.5, canarySteps: '10,100' });
  });

  it('round-trips through configToEnv', () => {
    fc.assert(
      fc.property(validEnvArb, (env) => {
        const config = loadConfig({ env });
        expect(loadConfig({ env: configToEnv(config) })).toEqual(config);
      }),
    );
  });

  it('configToEnv writes each set key under envNameOf(key), and omits unset ones', () => {
    const full = configToEnv(loadConfig({ env: FULL_ENV }));
    expect(Object.keys(full).sort()).toEqual([...ALL_ENVS].sort());
    expect(full[envNameOf('pgPort')]).toBe('15432');
    expect(configToEnv(loadConfig({ env: {} }))).not.toHaveProperty('DATABASE_URL');
  });

  it('rejects an unknown CHANGELENS_* variable, naming it', () => {
    const unknownArb = fc
      .stringMatching(/^[A-Z0-9_]{1,24}$/)
      .map((suffix) => `CHANGELENS_${suffix}`)
      .filter((name) => !ALL_ENVS.includes(name) && name !== 'CHANGELENS_CONFIG' && name !== 'CHANGELENS_URL');
    fc.assert(
      fc.property(unknownArb, (name) => {
        const { message } = configError({ env: { [name]: '1' } });
        expect(names(message, name)).toBe(true);
        expect(message).toContain('unknown setting');
      }),
    );
  });

  it('ignores variables that are not its own', () => {
    const env = { PATH: '/usr/bin:/bin', HOME: '/root', NODE_ENV: 'production', PGPORT: 'nonsense' };
    expect(loadConfig({ env })).toEqual(loadConfig({ env: {} }));
  });

  it('treats an empty variable as unset', () => {
    fc.assert(
      fc.property(fc.subarray(ALL_ENVS, { minLength: 1 }), (empty) => {
        const env = Object.fromEntries(empty.map((name) => [name, '']));
        expect(loadConfig({ env })).toEqual(loadConfig({ env: {} }));
      }),
    );
  });

  it('reports every problem at once', () => {
    const { message } = configError({ env: { PORT: 'eighty', CHANGELENS_LOG_LEVEL: 'loud', CHANGELENS_BOGUS: 'x' } });
    for (const name of ['PORT', 'CHANGELENS_LOG_LEVEL', 'CHANGELENS_BOGUS']) expect(names(message, name)).toBe(true);
  });

  it('refuses a weak admin token — short, or without variety — naming the variable; any strong one is accepted', () => {
    for (const weak of ['a'.repeat(40), 'short-but-varied-0123456789', 'abababababababababababababababab1234']) {
      expect(names(configError({ env: { CHANGELENS_ADMIN_TOKEN: weak } }).message, 'CHANGELENS_ADMIN_TOKEN'), weak).toBe(true);
    }
    fc.assert(fc.property(adminTokenArb, (token) => loadConfig({ env: { CHANGELENS_ADMIN_TOKEN: token } }).adminToken === token));
  });

  it('refuses off-box copies without encryption unless plain ones are allowed in so many words', () => {
    const s3 = { CHANGELENS_BACKUP_S3_URL: 's3://bucket/prefix' };
    expect(names(configError({ env: s3 }).message, 'CHANGELENS_BACKUP_S3_URL')).toBe(true);
    expect(loadConfig({ env: { ...s3, CHANGELENS_BACKUP_ENCRYPT: '1' } }).backupS3Url).toBe('s3://bucket/prefix');
    expect(loadConfig({ env: { ...s3, CHANGELENS_BACKUP_OFFSITE_PLAIN: '1' } }).backupOffsitePlain).toBe('1');
  });

  it('reports a port clash together with other problems', () => {
    const { message } = configError({ env: { CHANGELENS_PG_PORT: '7000', CHANGELENS_REDIS_PORT: '7000', CHANGELENS_LOG_LEVEL: 'loud' } });
    expect(names(message, 'CHANGELENS_LOG_LEVEL')).toBe(true);
    expect(message).toContain('CHANGELENS_REDIS_PORT: port 7000 is already used by CHANGELENS_PG_PORT');
  });

  it('ignores an empty unknown variable, as it ignores empty known ones', () => {
    expect(loadConfig({ env: { CHANGELENS_NOT_A_SETTING: '' } })).toEqual(loadConfig({ env: {} }));
  });

  it('returns a frozen config whose dataDir is absolute', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (dataDir) => {
        const config = loadConfig({ env: { CHANGELENS_DATA_DIR: dataDir } });
        expect(Object.isFrozen(config)).toBe(true);
        expect(isAbsolute(config.dataDir)).toBe(true);
        expect(config.dataDir).toBe(resolve(dataDir));
      }),
    );
    const config = loadConfig({ env: {} });
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('loadConfig: config file', () => {
  let dir: string;
  let count = 0;
  /** Writes a string as is (or any other value as JSON) to a fresh file in the temp dir; returns its path. */
  const writeConfig = (content: unknown): string => {
    const file = join(dir, `config-${count++}.json`);
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'changelens-config-test-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('applies camelCase keys from the file', () => {
    const file = writeConfig({ pgPort: 6000, logLevel: 'debug', dataDir: '/srv/from-file' });
    expect(loadConfig({ env: {}, file })).toMatchObject({ pgPort: 6000, logLevel: 'debug', dataDir: '/srv/from-file', port: 8080 });
  });

  it('takes the file from CHANGELENS_CONFIG when no file is given', () => {
    const file = writeConfig({ workerGreenPort: 6001 });
    expect(loadConfig({ env: { CHANGELENS_CONFIG: file } }).workerGreenPort).toBe(6001);
  });

  it('lets environment variables override the file', () => {
    const file = writeConfig({ pgPort: 6000, logLevel: 'debug' });
    expect(loadConfig({ env: { CHANGELENS_PG_PORT: '6002' }, file })).toMatchObject({ pgPort: 6002, logLevel: 'debug' });
  });

  it.each([['an unknown key', 'pgport'], ['the supervisor-only key color', 'color']])('rejects %s, naming the file and key', (_, key) => {
    const file = writeConfig({ [key]: 'blue' });
    const { message } = configError({ env: {}, file });
    expect(message).toContain(`${file}: unknown key "${key}"`);
  });

  // Object.prototype's names are not config keys either (a plain `key in FIELDS` would let them pass).
  it.each(['constructor', 'toString', '__proto__'])('rejects the unknown key %s, even one Object.prototype has', (key) => {
    const file = writeConfig(`{"${key}": 1}`);
    expect(configError({ env: {}, file }).message).toContain(`unknown key "${key}"`);
  });

  it('names the file and key of an invalid value', () => {
    const file = writeConfig({ pgPort: '6000' });
    expect(configError({ env: {}, file }).message).toContain(`${file}: pgPort: expected a TCP port`);
  });

  it('rejects a file that is not JSON, naming it', () => {
    const file = writeConfig('port = 8080');
    expect(configError({ env: {}, file }).message).toContain(`${file}: not valid JSON`);
  });

  it('rejects a JSON file that is not an object', () => {
    const file = writeConfig([{ port: 8080 }]);
    expect(configError({ env: {}, file }).message).toContain(`${file}: expected a JSON object`);
  });

  it('rejects a missing file, naming CHANGELENS_CONFIG and the path', () => {
    const file = join(dir, 'missing.json');
    const { message } = configError({ env: { CHANGELENS_CONFIG: file } });
    expect(names(message, 'CHANGELENS_CONFIG')).toBe(true);
    expect(message).toContain(file);
  });

  it('reports problems in the file and the environment together', () => {
    const file = writeConfig({ logLevel: 'loud', bogusKey: 1 });
    const { message } = configError({ env: { CHANGELENS_REDIS_PORT: '70000' }, file });
    for (const part of [`${file}: logLevel`, `"bogusKey"`, 'CHANGELENS_REDIS_PORT']) expect(message).toContain(part);
  });
});

describe('loadConfig: rollout settings', () => {
  it('refuses canary steps that do not increase to 100, and numbers out of range, naming the variable', () => {
    for (const [name, value, expected] of [
      ['CHANGELENS_CANARY_STEPS', '50,25,100', 'increasing percentages'],
      ['CHANGELENS_CANARY_STEPS', '5,25', 'ending at 100'],
      ['CHANGELENS_CANARY_STEPS', '0,100', 'increasing percentages'],
      ['CHANGELENS_P99_RATIO', '0.9', 'a number 1-1000'],
      ['CHANGELENS_P99_RATIO', '1.5x', 'a number 1-1000'],
      ['CHANGELENS_MAX_ERROR_RATE', '5', 'a fraction 0-1'],
      ['CHANGELENS_HOOK_URLS', 'ftp://x', 'http(s) URLs'],
      ['CHANGELENS_GATE_URL', 'approvals.local', 'an http(s) URL'],
      ['CHANGELENS_NOTIFY', 'irc:https://x.local', 'kind:URL'],
      ['CHANGELENS_NOTIFY', 'slack:ftp://x.local', 'kind:URL'],
      ['CHANGELENS_PUBLIC_URL', 'https://app.example.com/path', 'an http(s) origin'],
      ['CHANGELENS_CANARY_STEPS', '5,pause', 'increasing percentages'],
      ['CHANGELENS_METRIC_RULES', 'recall>0.3', 'name>=number'],
      ['CHANGELENS_MONITOR_RULES', '[{"name":"x"}]', 'rule x.metric'],
    ] as const) {
      const { message } = configError({ env: { [name]: value } });
      expect(names(message, name), `${name}=${value}`).toBe(true);
      expect(message).toContain(expected);
    }
    // A refused secret (a webhook URL with its key, a mistyped token) is named, never echoed.
    for (const [name, value, expected] of [
      ['CHANGELENS_NOTIFY', 'slack:https://hooks.slack.local/services/T0/SECRETKEY,irc:https://x.local', '(entry 2: expected kind:URL'],
      ['CHANGELENS_NOTIFY', 'teams:https://user:SECRETKEY@x.local/hook', 'a user or password in the URL is not sent'],
      ['CHANGELENS_GATE_URL', 'https://user:SECRETKEY@approvals.local/gate', 'without a user or password'],
      ['CHANGELENS_ADMIN_TOKEN', 'SECRETKEY-too-short', 'at least 32 characters'],
      ['CHANGELENS_HOOK_URLS', 'ftp://SECRETKEY', 'http(s) URLs'],
    ] as const) {
      const { message } = configError({ env: { [name]: value } });
      expect(message, name).toContain(expected);
      expect(message, name).toContain('got a value not shown here');
      expect(message, name).not.toContain('SECRETKEY');
    }
    const { message } = configError({ env: { CHANGELENS_API_INSTANCES: '3', CHANGELENS_API_MAX_INSTANCES: '2' } });
    expect(names(message, 'CHANGELENS_API_MAX_INSTANCES')).toBe(true);
    expect(message).toContain('at least CHANGELENS_API_INSTANCES (3)');
  });
});

describe('steps with gates', () => {
  it('a "pause" before a weight gates that step; the weights are the steps; a pause last or doubled is refused (property)', () => {
    const weights = fc.uniqueArray(fc.integer({ min: 1, max: 99 }), { maxLength: 6 }).map((s) => [...s.sort((a, b) => a - b), 100]);
    fc.assert(fc.property(weights, fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }), (steps, pauses) => {
      const parts: Array<number | 'pause'> = steps.flatMap((w, i) => (pauses[i] ? ['pause' as const, w] : [w]));
      const gates = steps.map((_, i) => i).filter((i) => pauses[i]);
      expect(parseStepsWithGates(parts)).toEqual({ steps, gates });
      expect(parseStepsWithGates(parts.join(','))).toEqual({ steps, gates });
      expect(parseStepsWithGates([...parts, 'pause'])).toBeUndefined();
      expect(parseStepsWithGates(['pause', 'pause', ...steps])).toBeUndefined();
    }));
  });
});


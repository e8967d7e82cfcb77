import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { processGraph } from '../ecosystem.config.js';
import { nodeForRelease } from './process-control.js';
import { releaseEnvironment } from './confinement.js';

/** The release's own variables, as the entry reads them. */
const varsOf = (env: Record<string, string>): Record<string, string> => JSON.parse(Buffer.from(env.CHANGELENS_RELEASE_VARS!, 'base64').toString('utf8')) as Record<string, string>;

const APP = { database: 'postgres://changelens_app:pw@127.0.0.1:5432/changelens', redis: 'redis://changelens-app:pw@127.0.0.1:6379' };
import { COLORS, loadConfig, type Color } from '../lib/config.js';
import { dataPaths } from '../lib/paths.js';
import { bootNodes, orderGraph, type GraphNode } from './process-graph.js';

const node = (name: string, needs: string[] = [], atBoot = true): GraphNode => ({ name, needs, atBoot, probe: { kind: 'task' } });
const namesOf = (nodes: readonly GraphNode[]): string[] => nodes.map((n) => n.name);

/** Fails unless `ordered` holds each of `nodes` exactly once, each after everything it needs. */
function expectDependencyOrder(ordered: readonly GraphNode[], nodes: readonly GraphNode[]): void {
  expect([...namesOf(ordered)].sort()).toEqual([...namesOf(nodes)].sort());
  const position = new Map(ordered.map((n, i) => [n.name, i]));
  for (const n of ordered) {
    for (const need of n.needs) expect(position.get(need)!, `${n.name} needs ${need}`).toBeLessThan(position.get(n.name)!);
  }
}

/**
 * A random DAG: nodes n0..nk, each needing only earlier ones, declared in a shuffled order.
 * Each node carries a random boot flag, kept only if everything it needs also starts at boot.
 */
const dagArb = fc.integer({ min: 1, max: 12 }).chain((size) => {
  const names = Array.from({ length: size }, (_, i) => `n${i}`);
  return fc
    .tuple(
      fc.tuple(...names.map((_, i) => fc.subarray(names.slice(0, i)))),
      fc.array(fc.boolean(), { minLength: size, maxLength: size }),
      fc.shuffledSubarray(names, { minLength: size, maxLength: size }),
    )
    .map(([needs, bootFlags, order]) => {
      const byName = new Map<string, GraphNode>();
      names.forEach((name, i) => {
        const atBoot = bootFlags[i]! && needs[i]!.every((need) => byName.get(need)!.atBoot);
        byName.set(name, node(name, needs[i], atBoot));
      });
      return order.map((name) => byName.get(name)!);
    });
});

describe('orderGraph', () => {
  it('returns every node of a DAG once, each after all it needs', () => {
    fc.assert(fc.property(dagArb, (nodes) => expectDependencyOrder(orderGraph(nodes), nodes)));
  });

  it('accepts a spawnAfter among what a node needs (directly or not), refuses one it does not need', () => {
    const graph = [node('db'), node('migrate', ['db']), node('api', ['migrate']), { ...node('proxy', ['api']), spawnAfter: ['migrate'] }];
    expect(namesOf(orderGraph(graph))).toEqual(['db', 'migrate', 'api', 'proxy']);
    expect(() => orderGraph([...graph.slice(0, 3), { ...node('proxy', ['api']), spawnAfter: ['cache'] }, node('cache')])).toThrow(/"proxy" spawns after "cache", which it does not need/);
    // A release's code may expect what it needs at its first line: never spawned early.
    const release = { ...node('api', ['migrate']), spawnAfter: ['db'], app: { script: '/opt/changelens/dist/supervisor/release-entry.js' } } as GraphNode;
    expect(() => orderGraph([node('db'), node('migrate', ['db']), release])).toThrow(/"api" runs a release's code/);
  });

  it('throws on a cycle anywhere in the graph, self-needs included', () => {
    // A ring c0 → c1 → … → c0 (a single node needing itself when the length is 1), mixed into a DAG.
    const ringArb = fc.integer({ min: 1, max: 5 }).map((length) =>
      Array.from({ length }, (_, i) => node(`c${i}`, [`c${(i + 1) % length}`])),
    );
    const graphArb = fc
      .tuple(dagArb, ringArb)
      .chain(([dag, ring]) => fc.shuffledSubarray([...dag, ...ring], { minLength: dag.length + ring.length }));
    fc.assert(fc.property(graphArb, (nodes) => {
      expect(() => orderGraph(nodes)).toThrow(/cycle/);
    }));
  });

  it('names the nodes of a cycle', () => {
    expect(() => orderGraph([node('a', ['b']), node('b', ['a'])])).toThrow(/cycle a → b → a/);
    expect(() => orderGraph([node('a', ['a'])])).toThrow(/cycle a → a/);
  });

  it('throws on a need that is not declared, naming the node and the need', () => {
    expect(() => orderGraph([node('a'), node('b', ['a', 'ghost'])])).toThrow(/"b" needs unknown "ghost"/);
  });

  it('throws on a name declared twice, naming it', () => {
    expect(() => orderGraph([node('a'), node('b', ['a']), node('a')])).toThrow(/"a" is declared twice/);
  });
});

describe('bootNodes', () => {
  it('returns exactly the boot nodes, in dependency order', () => {
    fc.assert(
      fc.property(dagArb, (nodes) => {
        const boot = nodes.filter((n) => n.atBoot);
        expectDependencyOrder(bootNodes(nodes), boot);
      }),
    );
  });

  it('throws when a boot node needs a node that does not start at boot', () => {
    const nodes = [node('db'), node('api-green', ['db'], false), node('proxy', ['api-green'])];
    expect(() => bootNodes(nodes)).toThrow(/"proxy" starts at boot but needs "api-green"/);
  });
});

describe('the process graph of ecosystem.config.js', () => {
  const graphFor = (activeColor: Color, embedded = { postgres: true, redis: true }): GraphNode[] => {
    const config = loadConfig({ env: { CHANGELENS_DATA_DIR: '/tmp/x' } });
    return processGraph({
      config,
      paths: dataPaths(config.dataDir),
      activeColor,
      bin: { postgres: '/usr/lib/postgresql/16/bin/postgres', redisServer: '/usr/bin/redis-server' },
      serviceUser: undefined,
      childEnv: { CHANGELENS_BACKUP_KEY: 'backup-key-0123456789', DATABASE_URL: 'postgres://changelens:su@127.0.0.1/changelens' },
      proxyEnv: { CHANGELENS_ADMIN_TOKEN: 'admin-token-0123456789' },
      releaseEnv: {
        blue: { ...releaseEnvironment(config, APP, 'blue', { name: 'changelens-app', uid: 999, gid: 995 }), CHANGELENS_APP_CONTROL_TOKEN: 'control-blue-0123456789' },
        green: { ...releaseEnvironment(config, APP, 'green', null), CHANGELENS_APP_CONTROL_TOKEN: 'control-green-0123456789' },
      },
      distDir: '/d',
      embedded,
    });
  };

  it.each(COLORS)('spawns the proxy once migrations are done, beside api-%s (not after it)', (active) => {
    const proxy = bootNodes(graphFor(active)).find((n) => n.name === 'proxy')!;
    expect(proxy.needs).toEqual([`api-${active}`]);
    expect(proxy.spawnAfter).toEqual(['migrations']);
  });

  it.each(COLORS)('boots the dependencies, then api-%s and its worker, then the proxy', (active) => {
    const boot = namesOf(bootNodes(graphFor(active)));
    expect(boot.slice(0, 3)).toEqual(['postgres', 'migrations', 'redis']);
    expect(boot.slice(3, 5).sort()).toEqual([`api-${active}`, `worker-${active}`].sort());
    expect(boot.slice(5)).toEqual(['proxy']);
  });

  it.each(COLORS)('declares the idle colour (API and worker) but leaves it out of the boot when %s is active', (active) => {
    const idle = active === 'blue' ? 'green' : 'blue';
    const graph = graphFor(active);
    expect(namesOf(graph)).toEqual(expect.arrayContaining([`api-${idle}`, `worker-${idle}`]));
    expect(namesOf(bootNodes(graph))).not.toContain(`api-${idle}`);
    expect(namesOf(bootNodes(graph))).not.toContain(`worker-${idle}`);
  });

  it('marks a service external when it is not embedded', () => {
    const external = (graph: GraphNode[], name: string): boolean | undefined => graph.find((n) => n.name === name)?.external;
    const noPostgres = graphFor('blue', { postgres: false, redis: true });
    expect([external(noPostgres, 'postgres'), external(noPostgres, 'redis')]).toEqual([true, false]);
    const noRedis = graphFor('blue', { postgres: true, redis: false });
    expect([external(noRedis, 'postgres'), external(noRedis, 'redis')]).toEqual([false, true]);
  });

  it('runs postgres and redis as native binaries that stop their own children', () => {
    const apps = graphFor('blue').filter((n) => n.name === 'postgres' || n.name === 'redis').map((n) => n.app);
    expect(apps).toHaveLength(2);
    for (const app of apps) expect(app).toMatchObject({ treekill: false, interpreter: 'none' });
  });

  it('sends no process output to files', () => {
    const apps = graphFor('green').flatMap((n) => (n.app ? [n.app] : []));
    expect(apps.map((app) => app.name).sort()).toEqual(['api-blue', 'api-green', 'postgres', 'proxy', 'redis', 'worker-blue', 'worker-green']);
    for (const app of apps) expect(app).toMatchObject({ out_file: '/dev/null', error_file: '/dev/null' });
  });

  it('gives the admin token to the proxy only and the control credential to the built-in API only, never to another app', () => {
    const graph = graphFor('blue');
    const envOf = (name: string) => graph.find((n) => n.name === name)!.app!.env!;
    expect(envOf('proxy').CHANGELENS_ADMIN_TOKEN).toBe('admin-token-0123456789');
    expect(envOf('proxy').CHANGELENS_CONNECTION_HANDOFF).toBe('1');
    for (const color of ['blue', 'green']) {
      expect(envOf(`api-${color}`)).toMatchObject({ CHANGELENS_APP_CONTROL_TOKEN: `control-${color}-0123456789` });
      expect(envOf(`api-${color}`).CHANGELENS_ADMIN_TOKEN).toBeUndefined();
    }
    // The built-in worker is the colour's too: the same control credential (its regressions), no admin token.
    for (const color of ['blue', 'green']) {
      expect(envOf(`worker-${color}`)).toMatchObject({ CHANGELENS_APP_CONTROL_TOKEN: `control-${color}-0123456789`, CHANGELENS_COLOR: color, DATABASE_URL: APP.database, REDIS_URL: APP.redis });
      expect(envOf(`worker-${color}`).CHANGELENS_ADMIN_TOKEN).toBeUndefined();
    }
    const api = graph.find((n) => n.name === 'api-blue')!;
    const other = nodeForRelease(api, { APP_SETTING: 'x', CHANGELENS_REGRESSION: 'errors:1' }, { script: '/data/releases/v2/server.js', readyPath: '/health' });
    expect(varsOf(other.app!.env!)).toEqual({ APP_SETTING: 'x', CHANGELENS_REGRESSION: 'errors:1' });
    expect(other.app!.env!.CHANGELENS_APP_CONTROL_TOKEN).toBeUndefined();
    expect(nodeForRelease(api, {}).app!.env!.CHANGELENS_APP_CONTROL_TOKEN).toBe('control-blue-0123456789');
  });

  it('starts every release through the entry, as its user, with the app\'s URLs and nothing of the appliance\'s env', () => {
    const api = graphFor('blue').find((n) => n.name === 'api-blue')!;
    expect(api.app!.script).toBe('/d/supervisor/release-entry.js');
    // pm2 copies none of the supervisor's env into it: an empty string matches every name.
    expect(api.app!.filter_env).toEqual(['']);
    const builtin = nodeForRelease(api, { APP_SETTING: 'x' }).app!.env!;
    expect(builtin).toMatchObject({ CHANGELENS_RELEASE_MAIN: '/d/apps/api/main.js', CHANGELENS_RELEASE_UID: '999', CHANGELENS_RELEASE_GID: '995', DATABASE_URL: APP.database, REDIS_URL: APP.redis });
    // The release's own variables never reach pm2 as names of their own: pm2 would obey one named
    // like its fields (pm_exec_path, exec_interpreter) as root.
    const hostile = nodeForRelease(api, { pm_exec_path: '/tmp/evil.js', exec_interpreter: '/bin/sh', APP_SETTING: 'x' }).app!.env!;
    expect(hostile.pm_exec_path).toBeUndefined();
    expect(hostile.exec_interpreter).toBeUndefined();
    expect(varsOf(hostile)).toEqual({ pm_exec_path: '/tmp/evil.js', exec_interpreter: '/bin/sh', APP_SETTING: 'x' });
    const other = nodeForRelease(api, { APP_SETTING: 'x' }, { script: '/data/releases/v2/server.js', readyPath: '/health' }).app!.env!;
    expect(other).toMatchObject({ CHANGELENS_RELEASE_MAIN: '/data/releases/v2/server.js', PORT: '3001', DATABASE_URL: APP.database });
    expect(varsOf(other)).toEqual({ APP_SETTING: 'x' });
    for (const env of [builtin, other]) {
      const kept = env.CHANGELENS_RELEASE_ENV!.split(',');
      // The list the entry keeps is exactly what was given, less the entry's own instructions.
      expect(kept.sort()).toEqual(Object.keys(env).filter((k) => !/^CHANGELENS_RELEASE_(ENV|MAIN|UID|GID|VARS)$/.test(k)).sort());
      for (const name of kept) expect(name).not.toMatch(/ADMIN_TOKEN|BACKUP_KEY|SECRETS_KEY|HOOK|DATA_DIR|PG_PASSWORD|REDIS_PASSWORD|S3/);
    }
    expect(other.CHANGELENS_LOG_LEVEL).toBeUndefined();
    expect(other.CHANGELENS_API_BLUE_PORT).toBeUndefined();
  });

  it('runs each colour\'s worker through the same entry: the built-in one, or an artifact\'s worker on its own port and probe path', () => {
    const worker = graphFor('blue').find((n) => n.name === 'worker-green')!;
    expect(worker.app).toMatchObject({ script: '/d/supervisor/release-entry.js', filter_env: [''], exec_mode: 'cluster', instances: 1 });
    const builtin = nodeForRelease(worker, { CHANGELENS_WORKER_REGRESSION: 'errors:0.2' });
    expect(builtin.app!.env).toMatchObject({ CHANGELENS_RELEASE_MAIN: '/d/apps/worker/main.js', CHANGELENS_COLOR: 'green', CHANGELENS_WORKER_GREEN_PORT: '3004' });
    expect(varsOf(builtin.app!.env!)).toEqual({ CHANGELENS_WORKER_REGRESSION: 'errors:0.2' });
    const other = nodeForRelease(worker, {}, { script: '/data/releases/v2/worker.js', readyPath: '/up' });
    expect(other.probe).toEqual({ kind: 'http', url: 'http://127.0.0.1:3004/up' });
    expect(other.app!.env).toMatchObject({ CHANGELENS_RELEASE_MAIN: '/data/releases/v2/worker.js', PORT: '3004', CHANGELENS_COLOR: 'green' });
    expect(other.app!.env!.CHANGELENS_APP_CONTROL_TOKEN).toBeUndefined();
    expect(other.app!.cwd).toBe('/data/releases/v2');
  });
});

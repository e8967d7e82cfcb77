// The one declaration of the appliance's processes: their pm2 options, what each needs before it
// may start, and how its readiness is probed. The supervisor (supervisor/boot.ts) reads it and
// starts each process only once all it needs is ready; it stops them in reverse order.
// No logic lives here beyond mapping the resolved context onto pm2's options.
// @ts-check

/** @typedef {import('./supervisor/process-graph.js').GraphContext} GraphContext */
/** @typedef {import('./supervisor/process-graph.js').GraphNode} GraphNode */

/** pm2 options every process shares: output only through pm2's bus (the supervisor prints it to
 *  stdout), never into files under PM2_HOME that grow without bound. */
const quiet = {
  out_file: '/dev/null', error_file: '/dev/null', merge_logs: true, autorestart: true,
  // pm2 copies the supervisor's whole environment into every process. Keep our settings and
  // secrets out of it: each process gets exactly the ones its `env` gives it (childEnv), so a
  // release's regression reaches only its colour and Postgres never sees a password.
  // (`filter_env: true` is a no-op in pm2 7: it checks `.length`; a list of substrings works.)
  filter_env: ['CHANGELENS_', 'DATABASE_URL', 'REDIS_URL', 'PORT', 'OTEL_', 'K_SERVICE'],
};
/** Node processes: no @pm2/io agent injected into them (it costs ~35 MB each and reports to pm2.io,
 *  which we do not use; our own monitor measures requests). pm2 stops them with a "shutdown"
 *  message rather than SIGINT: cluster workers share the supervisor's process group, so a Ctrl-C
 *  in the terminal would otherwise stop the APIs before the proxy has drained. */
const node = { ...quiet, pmx: false, automation: false, shutdown_with_message: true };
/** V8's young generation grows to 2 × 16 MB during start-up and stays resident; 4 MB semi-spaces
 *  cost a few more (short) scavenges and save ~20 MB per process (npm run bench:boot). */
const smallHeap = ['--max-semi-space-size=4'];
/** The proxy's, the same (24 MB of its idle memory); bench:proxy runs its proxy with these, so its
 *  throughput and P99 figures are the young generation's as shipped. */
export const PROXY_NODE_ARGS = Object.freeze([...smallHeap]);
/** Releases share a user: a SIGUSR1 from one would open the other's inspector (its memory, its
 *  secrets) where Node can refuse it (≥ 22.14); on older Node, colours share that exposure. */
const releaseArgs = process.allowedNodeEnvironmentFlags.has('--disable-sigusr1') ? [...smallHeap, '--disable-sigusr1'] : smallHeap;

/**
 * @param {GraphContext} ctx
 * @returns {GraphNode[]}
 */
export function processGraph(ctx) {
  const { config, paths, bin, childEnv, releaseEnv, proxyEnv, distDir, serviceUser, activeColor, embedded } = ctx;
  // Every pool that can be open at once, plus room for the supervisor, probes and an operator.
  const maxConnections = Math.max(60, 2 * config.apiInstances * 10 + 2 * (config.workerConcurrency + 2) + 15);
  const asServiceUser = serviceUser ? { user: serviceUser } : {};
  /**
   * A colour's process: its API or its worker, started and stopped together
   * (supervisor/process-control.ts). Every release's code, the built-in one included, starts
   * through the entry that confines it (its own user, an allow-listed env) before it loads:
   * supervisor/release-entry.ts.
   * @param {'api' | 'worker'} kind
   * @param {'blue' | 'green'} color
   * @param {number} port
   * @param {string} main
   * @param {number} instances
   */
  const colourProcess = (kind, color, port, main, instances) => /** @type {GraphNode} */ ({
    name: `${kind}-${color}`,
    needs: ['migrations', 'redis'],
    atBoot: color === activeColor,
    probe: { kind: 'http', url: `http://127.0.0.1:${port}/readyz` },
    app: {
      ...node,
      name: `${kind}-${color}`,
      script: `${distDir}/supervisor/release-entry.js`,
      node_args: releaseArgs,
      // Cluster mode: an API colour is scaled and reloaded without dropping its port, and the
      // supervisor's listen guard holds each to its own port.
      exec_mode: 'cluster',
      instances,
      // A worker's jobs in hand finish first (they are short); what outlives this is taken over later.
      kill_timeout: 4000,
      min_uptime: 1000,
      max_restarts: 16,
      exp_backoff_restart_delay: 100,
      // Only what the colour's release may have (supervisor/confinement.ts): nothing of the
      // supervisor's env (an empty string filters every name out), only what is given here.
      filter_env: [''],
      env: { ...releaseEnv[color], CHANGELENS_RELEASE_MAIN: main },
    },
  });
  /** @param {'blue' | 'green'} color */
  const api = (color) => colourProcess('api', color, color === 'blue' ? config.apiBluePort : config.apiGreenPort, `${distDir}/apps/api/main.js`, config.apiInstances);
  /** One worker per colour: jobs scale by its concurrency. @param {'blue' | 'green'} color */
  const worker = (color) => colourProcess('worker', color, color === 'blue' ? config.workerBluePort : config.workerGreenPort, `${distDir}/apps/worker/main.js`, 1);

  return [
    {
      name: 'postgres',
      needs: [],
      atBoot: true,
      external: !embedded.postgres,
      probe: { kind: 'postgres' },
      app: {
        ...quiet,
        ...asServiceUser,
        name: 'postgres',
        script: bin.postgres,
        interpreter: 'none',
        args: [
          '-D', paths.postgres,
          '-c', `port=${config.pgPort}`,
          '-c', 'listen_addresses=127.0.0.1',
          '-c', 'unix_socket_directories=',
          '-c', `max_connections=${maxConnections}`,
          '-c', 'shared_buffers=32MB',
          // JIT compiles only queries far costlier than a small web system's, and the image ships
          // without LLVM: off everywhere, so a bare machine and the image plan alike.
          '-c', 'jit=off',
          '-c', 'logging_collector=off',
          '-c', 'log_line_prefix=',
        ],
        // SIGINT (pm2's signal) is Postgres's fast shutdown. Never SIGKILL it (pm2 would after
        // kill_timeout: a fast shutdown takes well under a second, so this is only a backstop),
        // and do not signal its backends too (treekill): the postmaster shuts them down itself.
        treekill: false,
        kill_timeout: 60_000,
        min_uptime: 2000,
        max_restarts: 16,
        // A postmaster killed -9 leaves its backends for a moment; restarting too fast only fails.
        restart_delay: 500,
      },
    },
    // Migrations run inside the supervisor against the ready Postgres: a task, not a process.
    { name: 'migrations', needs: ['postgres'], atBoot: true, probe: { kind: 'task' } },
    // Redis needs nothing of Postgres: the two start side by side.
    {
      name: 'redis',
      needs: [],
      atBoot: true,
      external: !embedded.redis,
      probe: { kind: 'redis' },
      app: {
        ...quiet,
        ...asServiceUser,
        name: 'redis',
        script: bin.redisServer,
        interpreter: 'none',
        // Port, password and persistence live in a 0600 file, so the password is not in `ps`.
        args: [paths.redisConf],
        treekill: false,
        kill_timeout: 5000,
        min_uptime: 1000,
        max_restarts: 16,
        restart_delay: 200,
      },
    },
    api('blue'),
    api('green'),
    worker('blue'),
    worker('green'),
    {
      name: 'proxy',
      needs: [`api-${activeColor}`],
      // Spawned with the API, not after it: it reads its rollout state as soon as the schema is
      // migrated, and its /readyz asks the active API's (and waits for that state), so its
      // start-up overlaps the API's. The supervisor opens the public port only once the API is ready.
      spawnAfter: ['migrations'],
      atBoot: true,
      probe: { kind: 'http', url: `http://127.0.0.1:${config.port}/readyz` },
      app: {
        ...node,
        // It parses every byte from the network: never root. The service user (when the supervisor
        // is root) owns state/ (routing.json, the supervisor's socket) and releases/ (uploads).
        ...asServiceUser,
        name: 'proxy',
        script: `${distDir}/proxy/main.js`,
        node_args: [...PROXY_NODE_ARGS],
        // A cluster worker of the supervisor's in-process pm2, so the supervisor can hand it the
        // public connections over IPC: the port it holds outlives a proxy crash
        // (supervisor/public-listener.ts). One instance: one judge sees every request.
        exec_mode: 'cluster',
        instances: 1,
        // Draining in-flight requests takes as long as the slowest of them; give it the budget.
        kill_timeout: Math.max(1000, config.stopTimeoutMs - 3000),
        min_uptime: 1000,
        max_restarts: 16,
        exp_backoff_restart_delay: 100,
        env: { ...childEnv, ...proxyEnv, CHANGELENS_CONNECTION_HANDOFF: '1' },
      },
    },
  ];
}

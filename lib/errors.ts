// Every ChangeLens error is declared here once: a stable code, an HTTP status (for the admin API),
// a message template (%s placeholders filled from the constructor's arguments) and a hint that
// tells the operator what to do. Retired codes are never reused (see docs/errors.md).
import { format } from 'node:util';

export class ChangeLensError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly hint: string;
  constructor(code: string, statusCode: number, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChangeLensError';
    this.code = code;
    this.statusCode = statusCode;
    this.hint = hint;
  }
  toJSON(): { code: string; message: string; statusCode: number; hint: string } {
    return { code: this.code, message: this.message, statusCode: this.statusCode, hint: this.hint };
  }
}

export interface ChangeLensErrorClass<A extends unknown[]> {
  new (...args: [...A, { cause?: unknown }?]): ChangeLensError;
  readonly code: string;
}

function defineError<A extends unknown[]>(code: string, statusCode: number, template: string, hint: string): ChangeLensErrorClass<A> {
  const placeholders = (template.match(/%[sdj]/g) ?? []).length;
  const ErrorClass = class extends ChangeLensError {
    static readonly code = code;
    constructor(...args: unknown[]) {
      const last = args[args.length - 1];
      const hasOptions = args.length > placeholders && typeof last === 'object' && last !== null;
      const values = hasOptions ? args.slice(0, -1) : args;
      super(code, statusCode, format(template, ...values), hint, hasOptions ? (last as { cause?: unknown }) : undefined);
    }
  };
  Object.defineProperty(ErrorClass, 'name', { value: code });
  return ErrorClass as unknown as ChangeLensErrorClass<A>;
}

// Config and command line
export const CL_ERR_CONFIG_INVALID = defineError<[string]>(
  'CL_ERR_CONFIG_INVALID', 400, 'invalid configuration:\n%s',
  'fix the named keys (environment variables or the config file) and start again; see README.md, "Configuration"');
export const CL_ERR_CLI_USAGE = defineError<[string]>(
  'CL_ERR_CLI_USAGE', 400, '%s', 'run: changelens --help');

// Boot
export const CL_ERR_PORT_IN_USE = defineError<[string]>(
  'CL_ERR_PORT_IN_USE', 409, '%s',
  'stop whatever holds the port (ss -ltnp shows it) or choose another port with the named setting');
export const CL_ERR_DATA_DIR = defineError<[string, string]>(
  'CL_ERR_DATA_DIR', 500, 'data dir %s is not usable: %s',
  'point CHANGELENS_DATA_DIR at a writable directory on a real volume');
export const CL_ERR_MISSING_BINARY = defineError<[string, string]>(
  'CL_ERR_MISSING_BINARY', 500, '%s not found (%s)',
  'run scripts/install-system-deps.sh as root, or set the named path setting');
export const CL_ERR_SERVICE_USER = defineError<[string]>(
  'CL_ERR_SERVICE_USER', 500, 'running as root, but the unprivileged service user "%s" does not exist',
  'Postgres refuses to run as root: create the user, or set CHANGELENS_SERVICE_USER to an existing one');
export const CL_ERR_RELEASE_USER = defineError<[string]>(
  'CL_ERR_RELEASE_USER', 500, 'running as root, but the release user %s',
  'releases run as their own unprivileged user: run scripts/install-system-deps.sh (it creates changelens-app), or set CHANGELENS_RELEASE_USER to an existing user that is neither root nor the service user');
export const CL_ERR_INITDB_FAILED = defineError<[string]>(
  'CL_ERR_INITDB_FAILED', 500, 'initdb failed: %s',
  'check that the data dir is writable by the service user; nothing was left half-initialised');
export const CL_ERR_DEPENDENCY_FAILED = defineError<[string, string, string]>(
  'CL_ERR_DEPENDENCY_FAILED', 503, '%s did not become ready: %s%s',
  'read the log lines above; fix the cause and start again (the data dir is untouched)');
export const CL_ERR_APP_ROLE = defineError<[string, string]>(
  'CL_ERR_APP_ROLE', 500, 'could not set up the Postgres role %s, which releases connect as: %s',
  'the database user (DATABASE_URL, with its password in the URL) must be a superuser, or have CREATEROLE and own the database: releases get their own role, owning the schema app and nothing of the appliance\'s');
export const CL_ERR_MIGRATION_FAILED = defineError<[string, string]>(
  'CL_ERR_MIGRATION_FAILED', 500, 'migration %s failed and was rolled back: %s',
  'fix the migration; the database is at the previous version');
export const CL_ERR_MIGRATION_CHANGED = defineError<[string]>(
  'CL_ERR_MIGRATION_CHANGED', 500, 'migration %s was already applied but its file has changed since',
  'never edit an applied migration: restore it and add a new one');
export const CL_ERR_EPHEMERAL_DATA = defineError<[string, string]>(
  'CL_ERR_EPHEMERAL_DATA', 500, 'on %s, embedded Postgres would lose its data: %s',
  'mount a persistent volume at the data dir, or use external mode (DATABASE_URL and REDIS_URL), or set CHANGELENS_EPHEMERAL=1 for a demo whose data may vanish');
export const CL_ERR_ALREADY_RUNNING = defineError<[string, string]>(
  'CL_ERR_ALREADY_RUNNING', 409, 'an appliance already runs on data dir %s (supervisor pid %s)',
  'stop it first (SIGTERM), or use another CHANGELENS_DATA_DIR');

// Demo services (API and worker)
export const CL_ERR_REGRESSION_INVALID = defineError<[string]>(
  'CL_ERR_REGRESSION_INVALID', 400, '%s',
  'see GET /api/regression for the types; intensities: cpu 1-10000, db 1-10000, dependency 1-60000 ms, errors 0-1');
export const CL_ERR_TASK_NOT_FOUND = defineError<[string]>(
  'CL_ERR_TASK_NOT_FOUND', 404, 'task %s not found',
  'use the id that POST /api/process returned');
export const CL_ERR_DOWNSTREAM_TIMEOUT = defineError<[number]>(
  'CL_ERR_DOWNSTREAM_TIMEOUT', 504, 'downstream call timed out after %d ms',
  'a dependency regression is on for this colour: the operator clears it (changelens regression clear <colour> dependency)');
export const CL_ERR_INJECTED_FAILURE = defineError<[string]>(
  'CL_ERR_INJECTED_FAILURE', 503, 'injected failure (errors regression on %s)',
  'an errors regression is on for this colour: the operator clears it (changelens regression clear <colour> errors)');

// Rollouts
export const CL_ERR_ROLLOUT_BAD_TRANSITION = defineError<[string, string, string]>(
  'CL_ERR_ROLLOUT_BAD_TRANSITION', 409, 'a deployment that is %s cannot take "%s" (allowed now: %s)',
  'check the deployment\'s phase first; a finished deployment takes nothing more');
export const CL_ERR_DEPLOYMENT_RUNNING = defineError<[string, string, string]>(
  'CL_ERR_DEPLOYMENT_RUNNING', 409, 'deployment %s of release %s is still %s; one deployment runs at a time',
  'wait for it (changelens status), or end it first: changelens promote | rollback | abort');
export const CL_ERR_NO_DEPLOYMENT = defineError<[string]>(
  'CL_ERR_NO_DEPLOYMENT', 409, 'no deployment is running to %s',
  'start one with: changelens deploy <version>');
export const CL_ERR_NOT_CONTROLLER = defineError<[string, string]>(
  'CL_ERR_NOT_CONTROLLER', 409, 'this instance no longer holds the controller lease (%s); %s was refused',
  'another instance drives deployments now: repeat the request, through any instance, and it reaches it');
export const CL_ERR_NO_CONTROLLER = defineError<[string]>(
  'CL_ERR_NO_CONTROLLER', 503, 'no instance of the fleet answered as the controller: %s',
  'the lease passes to a live instance within 10 s of its holder stopping; retry then, and check changelens status for the instances');
export const CL_ERR_NOT_FOUND = defineError<[string]>(
  'CL_ERR_NOT_FOUND', 404, '%s not found',
  'list what exists with: changelens releases, or GET /_changelens/api/deployments');
export const CL_ERR_RELEASE_CONFLICT = defineError<[string, string]>(
  'CL_ERR_RELEASE_CONFLICT', 409, 'release %s already exists with a different %s; a release never changes',
  'deploy it as it is (omit --artifact and --set), or give the new build a new version');
export const CL_ERR_ARTIFACT_INVALID = defineError<[string]>(
  'CL_ERR_ARTIFACT_INVALID', 400, '%s',
  'an artifact is a directory or a .tar.gz holding a Node app (package.json "main", or server.js / index.js) that listens on $PORT');
export const CL_ERR_INVALID_REQUEST = defineError<[string]>(
  'CL_ERR_INVALID_REQUEST', 400, '%s',
  'correct the named field; changelens deploy --help lists every option and its range');
export const CL_ERR_UNREACHABLE = defineError<[string, string]>(
  'CL_ERR_UNREACHABLE', 503, 'nothing answers at %s: %s',
  'check --url (or CHANGELENS_URL), that the appliance runs, and the network between; a TLS error means its certificate is not trusted here (NODE_EXTRA_CA_CERTS)');
export const CL_ERR_BAD_PIN = defineError<[string]>(
  'CL_ERR_BAD_PIN', 400, '%s',
  'pin a colour with x-changelens-color: blue|green (header) or changelens-color=blue|green (cookie), with a preview credential (changelens preview-url), or send neither');
export const CL_ERR_UNAUTHORIZED = defineError<[]>(
  'CL_ERR_UNAUTHORIZED', 401, 'missing or wrong bearer token',
  'send Authorization: Bearer <token>; the token is CHANGELENS_ADMIN_TOKEN, or adminToken in <data>/state/secrets.json');
export const CL_ERR_TOO_MANY_FAILURES = defineError<[string, number]>(
  'CL_ERR_TOO_MANY_FAILURES', 429, 'too many failed sign-ins or wrong tokens from %s: its wrong ones are answered this for %s s',
  'send the right token (it is never refused); the failures are in the audit log (auth.failed, auth.blocked)');

// The proxy's own answers for proxied requests
export const CL_ERR_COLOR_NOT_RUNNING = defineError<[string]>(
  'CL_ERR_COLOR_NOT_RUNNING', 409, '%s is not running',
  'the idle colour runs only while a deployment, the keep-warm or the inspection time holds it; see `changelens status`');
export const CL_ERR_UPSTREAM = defineError<[string, string]>(
  'CL_ERR_UPSTREAM', 502, '%s could not be reached: %s',
  'see `changelens status` and the logs of the API colour named');
export const CL_ERR_UPSTREAM_TIMEOUT = defineError<[string, string]>(
  'CL_ERR_UPSTREAM_TIMEOUT', 504, '%s did not answer in time: %s',
  'the app took over 5 minutes to send its headers or between two parts of its body; see its logs');
export const CL_ERR_DEPENDENCY_UNAVAILABLE = defineError<[string, string]>(
  'CL_ERR_DEPENDENCY_UNAVAILABLE', 503, '%s is unavailable: %s',
  'nothing was changed; the service reconnects by itself: retry after the seconds in the Retry-After header (changelens status shows the dependency)');
export const CL_ERR_CLOSING = defineError<[]>(
  'CL_ERR_CLOSING', 503, 'shutting down',
  'the appliance is stopping; retry in a moment or on another instance');
export const CL_ERR_APP_CONTROL = defineError<[string]>(
  'CL_ERR_APP_CONTROL', 403, '%s is the operator\'s to change: not through the public port',
  'use the admin API with the admin token: `changelens regression set|clear <colour> <type>`, or POST/DELETE /_changelens/api/colors/<colour>/regressions/<type> and POST /_changelens/api/colors/<colour>/metrics/reset');
export const CL_ERR_AMBIGUOUS_REQUEST = defineError<[string]>(
  'CL_ERR_AMBIGUOUS_REQUEST', 400, 'refused: %s; two servers could read where this request ends differently',
  'send a body only with a method that has one (POST, PUT, PATCH…), and Transfer-Encoding only over HTTP/1.1');
export const CL_ERR_UPSTREAM_BUSY = defineError<[string, string]>(
  'CL_ERR_UPSTREAM_BUSY', 503, '%s is at its bound: %s',
  'retry after the seconds in the Retry-After header; if it lasts, the app is slower than its traffic: scale it (CHANGELENS_API_INSTANCES) or find what is slow');
export const CL_ERR_PIN_REFUSED = defineError<[string]>(
  'CL_ERR_PIN_REFUSED', 403, 'a request pinned to %s needs a preview credential',
  'get a preview link with `changelens preview-url`, or send x-changelens-preview with a credential from POST /_changelens/api/previews (or the admin token)');
export const CL_ERR_PROXY_RESTARTING = defineError<[number]>(
  'CL_ERR_PROXY_RESTARTING', 503, 'the proxy did not come back within %s ms; this connection waited for it and was answered by the supervisor',
  'pm2 restarts the proxy by itself: retry after the seconds in the Retry-After header; if it persists, `changelens status` and the proxy\'s log lines say why it does not start');
export const CL_ERR_MAINTENANCE = defineError<[string]>(
  'CL_ERR_MAINTENANCE', 503, '%s',
  'traffic resumes by itself when it ends: retry after the seconds in the Retry-After header');

// Backups
export const CL_ERR_BACKUP_FAILED = defineError<[string]>(
  'CL_ERR_BACKUP_FAILED', 500, 'backup failed: %s',
  'older backups are untouched; fix the cause in the message and run `changelens backup now` again');
export const CL_ERR_BACKUP_INVALID = defineError<[string, string]>(
  'CL_ERR_BACKUP_INVALID', 409, 'backup %s cannot be used: %s',
  'nothing was changed; choose another backup (`changelens backup list`) or run `changelens backup verify <id>` for details');

// Supervisor control (status, process start/stop)
export const CL_ERR_PROCESS_CONTROL = defineError<[string]>(
  'CL_ERR_PROCESS_CONTROL', 409, '%s',
  'only the idle API colour can be started or stopped by hand: changelens process start|stop api-blue|api-green');
export const CL_ERR_BOOTING = defineError<[]>(
  'CL_ERR_BOOTING', 503, 'the appliance is booting; try again when it is ready',
  'wait until `changelens status` says ready (a fleet instance\'s proxy waits by itself)');
export const CL_ERR_LOAD_REFUSED = defineError<[string]>(
  'CL_ERR_LOAD_REFUSED', 403, 'the load coordinator refused: %s',
  'use the exact --join/--coordinator string `changelens bench coordinator` printed (its token is checked)');
export const CL_ERR_LOAD_COORDINATOR = defineError<[string, string]>(
  'CL_ERR_LOAD_COORDINATOR', 503, 'no load coordinator %s: %s',
  'start one with `changelens bench coordinator` and pass what it printed; check that this machine reaches its Redis');
export const CL_ERR_NOT_RUNNING = defineError<[string]>(
  'CL_ERR_NOT_RUNNING', 503, 'no appliance is running on data dir %s',
  'start it with: changelens up (and check CHANGELENS_DATA_DIR points at the same dir)');

// Anything uncoded: its cause is logged, never shown.
export const CL_ERR_INTERNAL = defineError<[]>(
  'CL_ERR_INTERNAL', 500, 'internal error', 'see the JSON logs for the cause');

/**
 * Exit codes of the changelens command, one per category. `undecided`: deploy --wait saw the
 * deployment paused, aborted (its progress deadline, or an operator) or its own --timeout pass.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, notRunning: 3, undecided: 4, unauthorized: 5 } as const;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof ChangeLensError)) return EXIT.failure;
  if (err.code === 'CL_ERR_CONFIG_INVALID' || err.code === 'CL_ERR_CLI_USAGE') return EXIT.usage;
  if (err.code === 'CL_ERR_NOT_RUNNING' || err.code === 'CL_ERR_UNREACHABLE' || err.code === 'CL_ERR_LOAD_COORDINATOR') return EXIT.notRunning;
  if (err.statusCode === 401 || err.statusCode === 403 || err.statusCode === 429) return EXIT.unauthorized;
  return EXIT.failure;
}

/** The one shape of every error ChangeLens answers over HTTP. */
export function errorBody(err: ChangeLensError) {
  return { statusCode: err.statusCode, code: err.code, error: reasonOf(err.statusCode), message: err.message, hint: err.hint };
}

export function reasonOf(status: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' } as Record<number, string>)[status] ?? (status >= 500 ? 'Internal Server Error' : 'Bad Request');
}

/**
 * What went wrong, without the addresses an error's message names (connect ECONNREFUSED
 * 127.0.0.1:5433, a managed database's host): its code (ECONNREFUSED, UND_ERR_SOCKET, 57P03…),
 * through a fetch's cause, or its class's name (TimeoutError, ClientClosedError). For answers to
 * clients; the log keeps the whole message.
 */
export function errorCodeOf(err: unknown): string {
  let e = err as { code?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 3; depth++, e = e.cause as typeof e) {
    if (typeof e.code === 'string' && /^[A-Z0-9_]{2,40}$/.test(e.code)) return e.code;
  }
  const top = err as { name?: unknown; constructor?: { name?: unknown } } | null | undefined;
  for (const name of [top?.constructor?.name, top?.name]) {
    if (typeof name === 'string' && name !== 'Error' && name !== 'Object' && /^[A-Za-z]{2,40}$/.test(name)) return name;
  }
  return 'the connection failed';
}

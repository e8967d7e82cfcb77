// The first code of every release process (an API colour running the built-in API or an uploaded
// app), which pm2 starts as a cluster worker of the supervisor, so as root when the supervisor is:
// it gives root up for the release's own user (no supplementary group kept), deletes every variable
// the supervisor did not list (pm2 adds its own bookkeeping), sets the release's own variables, and
// only then loads the release. It imports nothing of the appliance but the contract: nothing else
// runs as root here.
import Module from 'node:module';
import { RELEASE_BASE_ENV, RELEASE_ENV, RELEASE_GID, RELEASE_MAIN, RELEASE_UID, RELEASE_VARS } from '../lib/contracts/release-process.js';

function refuse(reason: string): never {
  process.stderr.write(`release-entry: ${reason}; the release does not start\n`);
  // pm2 restarts it with backoff; the supervisor's readiness probe reports the colour as not ready.
  process.exit(78);
}

const main = process.env[RELEASE_MAIN];
const allowed = process.env[RELEASE_ENV];
if (!main || allowed === undefined) refuse(`${RELEASE_MAIN} and ${RELEASE_ENV} must be set (the supervisor sets them)`);

const uid = process.env[RELEASE_UID];
const gid = process.env[RELEASE_GID];
if ((uid === undefined) !== (gid === undefined)) refuse(`${RELEASE_UID} and ${RELEASE_GID} go together`);
if (uid !== undefined && gid !== undefined) {
  try {
    process.setgroups!([Number(gid)]);
    process.setgid!(Number(gid));
    process.setuid!(Number(uid));
  } catch (err) {
    refuse(`could not become uid ${uid} gid ${gid}: ${(err as Error).message}`);
  }
  // setuid from root sets the real, effective and saved ids: there is no way back. Prove it.
  let regained = false;
  try {
    process.setuid!(0);
    regained = true;
  } catch { /* expected */ }
  if (regained || process.getuid!() !== Number(uid) || process.getgid!() !== Number(gid)) refuse('the switch of user did not hold');
}

// Never root past this point: a supervisor that is root always names the user.
if (process.getuid?.() === 0) refuse('running as root without a user to switch to');

let vars: Record<string, string>;
try {
  vars = JSON.parse(Buffer.from(process.env[RELEASE_VARS] ?? 'e30=', 'base64').toString('utf8')) as Record<string, string>;
} catch {
  refuse(`${RELEASE_VARS} is not base64 JSON`);
}
const keep = new Set<string>([...allowed.split(',').filter(Boolean), ...RELEASE_BASE_ENV]);
for (const own of [RELEASE_MAIN, RELEASE_ENV, RELEASE_UID, RELEASE_GID, RELEASE_VARS]) keep.delete(own);
for (const name of Object.keys(process.env)) {
  if (!keep.has(name)) delete process.env[name];
}
for (const [name, value] of Object.entries(vars)) if (typeof value === 'string') process.env[name] = value;

// As `node <main>` would run it: CommonJS or ESM, with require.main and argv[1] the release's own.
process.argv[1] = main;
(Module as unknown as { runMain(): void }).runMain();

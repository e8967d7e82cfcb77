// How the supervisor tells a release's process (supervisor/release-entry.ts) whom to run as, what to
// run and which env to keep. These variables are the entry's own: it removes them before the
// release's code loads.
export const RELEASE_UID = 'CHANGELENS_RELEASE_UID';
export const RELEASE_GID = 'CHANGELENS_RELEASE_GID';
/** The release's main script: the built-in API's dist/apps/api/main.js, or an artifact's entry. */
export const RELEASE_MAIN = 'CHANGELENS_RELEASE_MAIN';
/** The names of the appliance's variables the release keeps (comma-separated): everything else is deleted. */
export const RELEASE_ENV = 'CHANGELENS_RELEASE_ENV';
/**
 * The release's own variables (its env, opened secrets, its release id and regressions), as
 * base64 JSON: opaque to pm2, which copies every env key onto the process's description and would
 * obey one named like its own fields (pm_exec_path, exec_interpreter…) as root. Set by the entry,
 * after the switch of user.
 */
export const RELEASE_VARS = 'CHANGELENS_RELEASE_VARS';

/** What every release keeps besides the allowed names: pm2's instance numbers (pm2 sets them in the process). */
export const RELEASE_BASE_ENV = ['pm_id', 'NODE_APP_INSTANCE'] as const;

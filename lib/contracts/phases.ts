// A deployment's phases, and which of them end it: the one list the state machine, the store's
// SQL, the supervisor's monitor, the CLI, the metrics and the benchmarks all read. The transitions
// between phases are rollout/state-machine.ts's.

export const PHASES = [
  'starting',     // the idle colour is being started with the release
  'warming',      // started; waiting for readiness
  'shifting',     // weight moves to the step's share; analysis runs for the step
  'paused',       // an inconclusive verdict, or an operator's pause
  'promoted',     // the candidate is active and last_good
  'rolling_back', // passed through on the way to rolled_back, in one write; a row an older proxy left here is finished on take-over
  'rolled_back',
  'aborted',
  'failed',       // the candidate never became ready
] as const;

export type Phase = (typeof PHASES)[number];

/** The phases a deployment ends in; any other means it still runs. */
export const TERMINAL_PHASES: readonly Phase[] = ['promoted', 'rolled_back', 'aborted', 'failed'];

/** A string rather than a Phase: the CLI and the benchmarks read phases from JSON. */
export function isTerminal(phase: string): boolean {
  return (TERMINAL_PHASES as readonly string[]).includes(phase);
}

/** `('promoted', 'rolled_back', …)`: the terminal phases as an SQL list (constants, not input). */
export const TERMINAL_PHASES_SQL = `(${TERMINAL_PHASES.map((p) => `'${p}'`).join(', ')})`;

// Releases and their rollouts. The proxy holds a `RolloutController` (controller.ts, a facade); the
// reconciler (reconciler.ts) drives a deployment through the state machine (state-machine.ts), its
// strategy (strategies/), window analysis (analysis.ts), fast trips (fast-trips.ts), the colours
// (colours.ts) and events (events.ts); traffic.ts is the only writer of the routing table. Its
// state lives behind the `RolloutStore` port (ports.ts): Postgres in store.ts.
export { atGate, candidateWeight, GATE, initialStatus, isTerminal, transition, type DeploymentEvent, type DeploymentStatus, type Phase } from './state-machine.js';
export type { Deployment, DeployRequest, Release, Plan, Strategy, Bucket, Pointers, StoredVerdict } from './model.js';
export type { RolloutStore, SupervisorLink, ColorHealth, RolloutGauges, Clock, FleetLink } from './ports.js';
export type { RollbackTiming } from './run.js';
export { PgRolloutStore } from './store.js';
export { RolloutController, type ControllerOptions, type ControllerFleet } from './controller.js';
export type { StepExpectation } from './reconciler.js';
export { UPLOADED } from './release-import.js';
export { systemClock } from './ports.js';
export { analysisLoadThrough } from './analysis-load.js';

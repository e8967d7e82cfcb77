// Past one machine: appliances sharing an external Postgres and Redis make one fleet, with one
// controller (a lease with a fencing epoch), one rollout every instance follows, and one verdict
// on the merged 1 s slices of every proxy. node.ts puts the parts together for the proxy.
export { instanceId } from './instance-id.js';
export { FleetNode, FLEET_JUDGE_DELAY_MS, type FleetNodeOptions } from './node.js';
export type { FleetInstance, InstanceState } from './registry.js';
export type { LeaseHeld } from './lease.js';
export { claimScheduledRun } from './scheduled-run.js';

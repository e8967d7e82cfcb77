// Releases and their rollouts: the deployment state machine, its store in Postgres, and the
// controller that drives a deployment and owns the routing table.
export { candidateWeight, initialStatus, isTerminal, transition, type DeploymentEvent, type DeploymentStatus, type Phase } from './state-machine.js';
export { RolloutStore, type Deployment, type Release, type Plan, type Strategy, type Bucket, type Pointers, type StoredVerdict } from './store.js';
export { RolloutController, type DeployRequest, type SupervisorLink, type RolloutGauges, type RollbackTiming } from './controller.js';

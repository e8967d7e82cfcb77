// Releases and their rollouts. So far: the deployment state machine (phases and transitions as data).
export { candidateWeight, initialStatus, isTerminal, transition, type DeploymentEvent, type DeploymentStatus, type Phase } from './state-machine.js';

// The supervisor's public surface: `changelens up`, and the control channel the CLI queries.
export { runUp, type UpOptions } from './up.js';
export { queryControl, streamControl } from './control-socket.js';
export { LOG_LEVELS, levelOf, type LogLevelName } from './log-ring.js';
export { orderGraph, bootNodes, type GraphNode, type GraphContext, type Probe } from './process-graph.js';
export { reapOrphans } from './orphans.js';
export { readMigrations } from './migrations.js';
export { runningMs } from './run-log.js';

// The public port's hand-off between the supervisor, which holds the listening socket, and the
// proxy, which serves the connections: messages on pm2's IPC channel (the proxy is a cluster
// worker of the supervisor's in-process pm2). The supervisor only believes them from the process
// pm2 runs as the proxy: an API colour runs release code and could send them too.

/** Supervisor → proxy, with the accepted socket as the message's handle. */
export const HANDOFF_CONNECTION = 'changelens:connection';

/**
 * Supervisor → proxy, the answer to its 'proxy-stopping': no connection is sent to it any more, and
 * every one that was has arrived before this (the channel keeps order), so it may close now.
 */
export const PROXY_DETACHED = 'changelens:detached';

/** Proxy → supervisor: what the proxy says about itself. */
export type ProxyHandoffMessage =
  /** Its server is ready: hand it every new connection (and those that waited). */
  | { changelens: 'proxy-accepting' }
  /** It is draining to stop: keep new connections for the next proxy. */
  | { changelens: 'proxy-stopping' };

export function isProxyHandoffMessage(message: unknown): message is ProxyHandoffMessage {
  if (typeof message !== 'object' || message === null) return false;
  const said = (message as { changelens?: unknown }).changelens;
  return said === 'proxy-accepting' || said === 'proxy-stopping';
}

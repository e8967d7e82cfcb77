// The public port, held by the supervisor so that it outlives the proxy process. The supervisor
// accepts each connection without reading from it and hands the socket to the proxy over pm2's
// IPC channel (the proxy is a cluster worker of the pm2 running in this process). When the proxy
// dies, the port stays open: new connections wait here until pm2 has a proxy back, so a crash
// costs only the requests inside the dead process, never a refused connection.
// One proxy serves at a time, so its judge sees every request: nothing to merge.
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import { HANDOFF_CONNECTION, isProxyHandoffMessage, PROXY_DETACHED } from '../lib/contracts/handoff.js';
import type { PublicPortStatus } from '../lib/contracts/status.js';
import { CL_ERR_CLOSING, CL_ERR_PROXY_RESTARTING, errorBody, type ChangeLensError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

/** Where a connection goes: the proxy process. */
export interface HandoffTarget {
  /** False once its channel is closed (the process died or is stopping). */
  readonly connected: boolean;
  /**
   * Sends the socket, keeping this process's copy open (keepOpen): `done(null)` once it left, and
   * then the copy here is closed; an error, or no call at all when the process dies with the
   * socket still queued in node's channel, leaves it here to be sent to the next proxy.
   */
  send(socket: net.Socket, done: (err: Error | null) => void): void;
}

export interface PublicListenerOptions {
  host: string;
  port: number;
  log: Logger;
  /** Connections kept while no proxy takes them; past it they are answered 503 at once. */
  maxWaiting?: number;
  /** How long one connection waits for a proxy before it is answered 503. */
  maxWaitMs?: number;
}

/** One proxy restart (pm2's delay plus the proxy's start, about 2 s) with room to spare. */
const MAX_WAIT_MS = 10_000;
/** Paused sockets cost a descriptor each; a restart at a few hundred new connections a second fits. */
const MAX_WAITING = 1024;
/**
 * Node sends one socket per acknowledgement from the proxy; the rest queue inside node, out of
 * reach of the bounds above. A stalled proxy gets this many; later ones wait here, bounded.
 */
const MAX_IN_TRANSIT = 64;

interface Waiting {
  socket: net.Socket;
  timer: NodeJS.Timeout;
}

interface Attached {
  to: HandoffTarget;
  /** Sent but not yet confirmed: still owned here, and sent again if the proxy dies. */
  inTransit: Set<net.Socket>;
}

export class PublicListener {
  private readonly server: net.Server;
  private readonly waiting: Waiting[] = [];
  private target: Attached | null = null;
  private pid: number | null = null;
  private listening: Promise<void> | null = null;
  /** What must happen before the port opens at all (the boot: what the proxy needs is ready). */
  private opensAfter: Promise<void> = Promise.resolve();
  private closed = false;
  /** pm2 gave up restarting the proxy: nothing to wait for, so answer at once. */
  private givenUp = false;
  private readonly counts = { handedOff: 0, waited: 0, refused: 0 };
  private readonly maxWaiting: number;
  private readonly maxWaitMs: number;

  constructor(private readonly options: PublicListenerOptions) {
    this.maxWaiting = options.maxWaiting ?? MAX_WAITING;
    this.maxWaitMs = options.maxWaitMs ?? MAX_WAIT_MS;
    // Paused: not a byte is read here, so the proxy parses the request from its first byte.
    // noDelay as node's http server sets on its own accepts (it cannot on a socket handed to it).
    this.server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
      // A client that resets while it waits must not become an unhandled 'error' here.
      socket.on('error', () => {});
      this.deliver(socket, false);
    });
    this.server.on('error', (err) => options.log.error({ err: err.message, port: options.port }, 'the public port failed'));
  }

  /**
   * Keeps the port closed until `ready` resolves, whatever the proxy says: it is spawned while what
   * it serves is still starting, and a client must be refused until it can be served, not held.
   */
  holdUntil(ready: Promise<void>): void {
    this.opensAfter = ready;
  }

  /** Opens the port: when the first proxy accepts (and what holds it closed has passed), so a boot still refuses until it can serve. */
  listen(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the public port is closed'));
    this.listening ??= this.opensAfter.then(() => new Promise<void>((resolve, reject) => {
      if (this.closed) return reject(new Error('the public port is closed'));
      const failed = (err: Error): void => {
        this.listening = null; // a later attempt may succeed
        reject(err);
      };
      this.server.once('error', failed);
      this.server.listen({ host: this.options.host, port: this.options.port, exclusive: true }, () => {
        this.server.off('error', failed);
        this.options.log.info({ host: this.options.host, port: this.options.port }, 'the supervisor holds the public port; connections are handed to the proxy');
        resolve();
      });
    }));
    return this.listening;
  }

  /** This proxy takes every new connection from now on, and those that waited. */
  attach(to: HandoffTarget, pid: number): void {
    if (this.closed || !to.connected) return;
    // The proxy says it accepts now and then (a heartbeat): the same one again changes nothing.
    if (this.target !== null && this.pid === pid) {
      this.pump();
      return;
    }
    this.target = { to, inTransit: new Set() };
    this.pid = pid;
    this.givenUp = false;
    this.options.log.info({ proxyPid: pid, waited: this.waiting.length }, 'the proxy takes the public connections');
    this.pump();
  }

  /**
   * This proxy is gone or stopping: new connections wait for the next one. A dead proxy never got
   * what was still on its way, which goes to the next one too; a stopping one still gets (and
   * serves) it, since the sockets already in node's channel arrive before it is told it is detached.
   */
  detach(to: HandoffTarget, reason: 'stopping' | 'exited' | string): void {
    const target = this.target;
    if (target?.to !== to) return;
    this.target = null;
    const unsent = reason === 'stopping' ? [] : [...target.inTransit];
    for (const socket of unsent) target.inTransit.delete(socket);
    if (!this.closed) this.options.log.warn({ proxyPid: this.pid, reason, unsent: unsent.length }, 'the proxy is gone; new connections wait for the next one');
    this.pid = null;
    for (const socket of unsent) this.wait(socket, true);
  }

  /** pm2 will not restart the proxy: waiting would only delay the same answer. */
  giveUp(): void {
    this.givenUp = true;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      this.refuse(w.socket, new CL_ERR_PROXY_RESTARTING(this.maxWaitMs));
    }
  }

  stats(): PublicPortStatus {
    return { listening: this.server.listening, proxyPid: this.pid, ...this.counts, waitingNow: this.waiting.length };
  }

  /** Stops accepting; connections still waiting are answered 503 (the appliance is stopping). */
  close(): void {
    this.closed = true;
    this.target = null;
    this.pid = null;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      this.refuse(w.socket, new CL_ERR_CLOSING());
    }
    // The port closes at once. Not awaiting close's callback: node waits there until every socket
    // handed to a worker is closed in it, which a dead proxy never reports.
    if (this.server.listening) this.server.close();
  }

  private deliver(socket: net.Socket, waitedAlready: boolean): void {
    const target = this.target;
    if (target === null || !target.to.connected || target.inTransit.size >= MAX_IN_TRANSIT) {
      this.wait(socket, waitedAlready);
      return;
    }
    target.inTransit.add(socket);
    target.to.send(socket, (err) => {
      // Taken back already: the proxy was detached meanwhile and the socket waits for the next.
      if (!target.inTransit.delete(socket)) return;
      if (err === null) {
        this.counts.handedOff++;
        // The descriptor is in the proxy's hands (or on its way in the kernel): ours can go.
        socket.destroy();
      } else {
        // It did not leave. Only a proxy whose channel closed is let go; a live one keeps its place
        // (and the socket is offered again).
        if (!target.to.connected) this.detach(target.to, `hand-off failed: ${err.message}`);
        else this.options.log.warn({ proxyPid: this.pid, err: err.message }, 'a connection could not be handed to the proxy; offered again');
        this.wait(socket, true);
      }
      this.pump();
    });
  }

  /** Hands waiting connections over while the proxy has room for them. */
  private pump(): void {
    while (this.waiting.length > 0 && this.target !== null && this.target.to.connected && this.target.inTransit.size < MAX_IN_TRANSIT) {
      const w = this.waiting.shift()!;
      clearTimeout(w.timer);
      this.deliver(w.socket, true);
    }
  }

  private wait(socket: net.Socket, waitedAlready: boolean): void {
    if (socket.destroyed) return;
    if (this.closed) return this.refuse(socket, new CL_ERR_CLOSING());
    if (this.givenUp || this.waiting.length >= this.maxWaiting) return this.refuse(socket, new CL_ERR_PROXY_RESTARTING(this.maxWaitMs));
    if (!waitedAlready) this.counts.waited++;
    const entry: Waiting = {
      socket,
      timer: setTimeout(() => {
        const at = this.waiting.indexOf(entry);
        if (at >= 0) this.waiting.splice(at, 1);
        this.refuse(socket, new CL_ERR_PROXY_RESTARTING(this.maxWaitMs));
      }, this.maxWaitMs),
    };
    this.waiting.push(entry);
  }

  /** Answers 503 in the error shape and closes: better than a reset the client cannot tell from a crash. */
  private refuse(socket: net.Socket, why: ChangeLensError): void {
    this.counts.refused++;
    if (socket.destroyed) return;
    const body = JSON.stringify(errorBody(why));
    // Read (and drop) what the client sent, or closing with unread bytes would reset the
    // connection and lose the answer.
    socket.on('data', () => {});
    socket.resume();
    socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.setTimeout(5_000, () => socket.destroy());
  }
}

/** pm2 marks the workers it forks, in this process, with their app (a child cannot change it). */
function isProxyWorker(worker: Worker): boolean {
  return (worker as Worker & { pm2_env?: { name?: unknown } }).pm2_env?.name === 'proxy';
}

/**
 * Follows the proxy among the cluster workers of the pm2 in this process: attaches it when it says
 * it accepts, detaches it when it says it stops (and confirms, so it closes only after the last
 * socket sent to it has arrived) or its channel closes. A failure to open the port goes to
 * `onListenFailed`. Returns the unsubscribe.
 */
export function followProxy(listener: PublicListener, log: Logger, onListenFailed: (err: Error) => void): () => void {
  const targets = new Map<Worker, HandoffTarget>();
  const onMessage = (worker: Worker, message: unknown): void => {
    if (!isProxyHandoffMessage(message)) return;
    if (!isProxyWorker(worker)) {
      log.warn({ workerPid: worker.process.pid, said: message.changelens }, 'a process that is not the proxy asked for the public connections; ignored');
      return;
    }
    if (message.changelens === 'proxy-accepting') {
      const target = targets.get(worker) ?? workerTarget(worker);
      targets.set(worker, target);
      listener.listen().then(() => listener.attach(target, worker.process.pid ?? 0), onListenFailed);
      return;
    }
    const target = targets.get(worker);
    if (target) listener.detach(target, 'stopping');
    // Ordered after every socket sent to it: once it reads this, nothing more is on its way.
    if (worker.isConnected()) worker.send(PROXY_DETACHED);
  };
  const onGone = (worker: Worker): void => {
    const target = targets.get(worker);
    if (!target) return;
    targets.delete(worker);
    listener.detach(target, 'exited');
  };
  cluster.on('message', onMessage);
  cluster.on('disconnect', onGone);
  cluster.on('exit', onGone);
  return () => {
    cluster.off('message', onMessage);
    cluster.off('disconnect', onGone);
    cluster.off('exit', onGone);
  };
}

function workerTarget(worker: Worker): HandoffTarget {
  return {
    get connected() {
      return worker.isConnected() && !worker.isDead();
    },
    send(socket, done) {
      worker.send(HANDOFF_CONNECTION, socket, { keepOpen: true }, (err: Error | null) => done(err ?? null));
    },
  };
}

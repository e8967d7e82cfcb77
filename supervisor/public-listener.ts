// The public port, held by the supervisor so that it outlives the proxy process. The supervisor
// accepts each connection without reading from it and hands the socket to the proxy over pm2's
// IPC channel (the proxy is a cluster worker of the pm2 running in this process). When the proxy
// dies, the port stays open: new connections wait here until pm2 has a proxy back, so a crash
// costs only the requests inside the dead process, never a refused connection.
// One proxy serves at a time, so its judge sees every request: nothing to merge.
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import { HANDOFF_CONNECTION, isProxyHandoffMessage } from '../lib/contracts/handoff.js';
import type { PublicPortStatus } from '../lib/contracts/status.js';
import { CL_ERR_PROXY_RESTARTING, errorBody } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

/** Where a connection goes: the proxy process. */
export interface HandoffTarget {
  /** False once its channel is closed (the process died or is stopping). */
  readonly connected: boolean;
  /** Sends the socket; `done` says whether it left this process. */
  send(socket: net.Socket, done: (err: Error | null) => void): void;
}

export interface PublicListenerOptions {
  host: string;
  port: number;
  log: Logger;
  /** Connections kept while no proxy is attached; past it they are answered 503 at once. */
  maxWaiting?: number;
  /** How long one connection waits for a proxy before it is answered 503. */
  maxWaitMs?: number;
}

/** One proxy restart (pm2's delay plus the proxy's start, about 2 s) with room to spare. */
const MAX_WAIT_MS = 10_000;
/** Paused sockets cost a descriptor each; a restart at a few hundred new connections a second fits. */
const MAX_WAITING = 1024;

interface Waiting {
  socket: net.Socket;
  timer: NodeJS.Timeout;
}

export class PublicListener {
  private readonly server: net.Server;
  private readonly waiting: Waiting[] = [];
  private target: { pid: number; to: HandoffTarget } | null = null;
  private listening: Promise<void> | null = null;
  private closed = false;
  private readonly counts = { handedOff: 0, waited: 0, refused: 0 };
  private readonly maxWaiting: number;
  private readonly maxWaitMs: number;

  constructor(private readonly options: PublicListenerOptions) {
    this.maxWaiting = options.maxWaiting ?? MAX_WAITING;
    this.maxWaitMs = options.maxWaitMs ?? MAX_WAIT_MS;
    // Paused: not a byte is read here, so the proxy parses the request from its first byte.
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => this.deliver(socket, false));
    this.server.on('error', (err) => options.log.error({ err: err.message, port: options.port }, 'the public port failed'));
  }

  /** Opens the port (once): when the first proxy is ready, so a boot still refuses until it can serve. */
  listen(): Promise<void> {
    this.listening ??= new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.options.host, port: this.options.port }, () => {
        this.server.off('error', reject);
        this.options.log.info({ host: this.options.host, port: this.options.port }, 'the supervisor holds the public port; connections are handed to the proxy');
        resolve();
      });
    });
    return this.listening;
  }

  /** The proxy with this pid takes every new connection from now on, and those that waited. */
  attach(pid: number, to: HandoffTarget): void {
    if (this.closed || !to.connected) return;
    this.target = { pid, to };
    const held = this.waiting.splice(0);
    this.options.log.info({ pid, waited: held.length }, 'the proxy takes the public connections');
    for (const w of held) {
      clearTimeout(w.timer);
      this.deliver(w.socket, true);
    }
  }

  /** The proxy with this pid is gone or stopping: new connections wait for the next one. */
  detach(pid: number, reason: string): void {
    if (this.target?.pid !== pid) return;
    this.target = null;
    if (!this.closed) this.options.log.warn({ pid, reason }, 'the proxy is gone; new connections wait for the next one');
  }

  stats(): PublicPortStatus {
    return { listening: this.server.listening, proxyPid: this.target?.pid ?? null, ...this.counts, waitingNow: this.waiting.length };
  }

  /** Stops accepting; connections still waiting are answered 503 (the appliance is stopping). */
  close(): void {
    this.closed = true;
    this.target = null;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      this.refuse(w.socket);
    }
    // The port closes at once. Not awaiting close's callback: node waits there until every socket
    // handed to a worker is closed in it, which a dead proxy never reports.
    if (this.server.listening) this.server.close();
  }

  private deliver(socket: net.Socket, waitedAlready: boolean): void {
    // A client that resets while it waits must not become an unhandled 'error' here.
    if (!waitedAlready) socket.on('error', () => {});
    const target = this.target;
    if (target === null || !target.to.connected) {
      this.wait(socket, waitedAlready);
      return;
    }
    target.to.send(socket, (err) => {
      if (err === null) {
        this.counts.handedOff++;
        return;
      }
      // The proxy died between the check and the send: keep the connection for the next one.
      this.detach(target.pid, `hand-off failed: ${err.message}`);
      if (!socket.destroyed) this.wait(socket, true);
    });
  }

  private wait(socket: net.Socket, waitedAlready: boolean): void {
    if (this.closed || this.waiting.length >= this.maxWaiting) {
      this.refuse(socket);
      return;
    }
    if (!waitedAlready) this.counts.waited++;
    const entry: Waiting = {
      socket,
      timer: setTimeout(() => {
        const at = this.waiting.indexOf(entry);
        if (at >= 0) this.waiting.splice(at, 1);
        this.refuse(socket);
      }, this.maxWaitMs),
    };
    this.waiting.push(entry);
  }

  /** Answers 503 in the error shape and closes: better than a reset the client cannot tell from a crash. */
  private refuse(socket: net.Socket): void {
    this.counts.refused++;
    if (socket.destroyed) return;
    const body = JSON.stringify(errorBody(new CL_ERR_PROXY_RESTARTING(this.maxWaitMs)));
    // Read (and drop) what the client sent, or closing with unread bytes would reset the
    // connection and lose the answer.
    socket.on('data', () => {});
    socket.resume();
    socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.setTimeout(5_000, () => socket.destroy());
  }
}

/** What the supervisor's pm2 reports of the proxy, to believe only its messages. */
export interface ProxyPids {
  proxyPids(): Promise<number[]>;
}

/**
 * Follows the proxy among the cluster workers of the pm2 in this process: attaches it when it says
 * it accepts, detaches it when it stops or its channel closes. Returns the unsubscribe.
 */
export function followProxy(listener: PublicListener, pm: ProxyPids, log: Logger): () => void {
  // A release (an API colour is a cluster worker too) that keeps asking costs one check and one log line.
  const impostors = new Set<number>();
  const onMessage = (worker: Worker, message: unknown): void => {
    if (!isProxyHandoffMessage(message)) return;
    const pid = worker.process.pid;
    if (pid === undefined || impostors.has(pid)) return;
    void pm.proxyPids().then((pids) => {
      if (!pids.includes(pid)) {
        impostors.add(pid);
        log.warn({ pid, said: message.changelens }, 'a process that is not the proxy asked for the public connections; ignored');
        return;
      }
      if (message.changelens === 'proxy-accepting') {
        void listener.listen().then(() => listener.attach(pid, workerTarget(worker)), () => {});
      } else {
        listener.detach(pid, 'stopping');
      }
    }, (err: Error) => log.warn({ err: err.message }, 'could not ask pm2 which process is the proxy'));
  };
  const onGone = (worker: Worker): void => {
    if (worker.process.pid === undefined) return;
    listener.detach(worker.process.pid, 'exited');
    impostors.delete(worker.process.pid); // its pid may be the next proxy's
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
      // keepOpen false: once the proxy has it, this process closes its copy.
      worker.send(HANDOFF_CONNECTION, socket, { keepOpen: false }, (err: Error | null) => done(err ?? null));
    },
  };
}

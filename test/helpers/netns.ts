// "Machines" for tests that need several: network namespaces, each with its own address on one
// bridge, made with iproute2 (root, or CAP_NET_ADMIN). Where this machine does not allow them, every
// "machine" is this one on loopback, and `isolated` says so.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Machine {
  /** Its address: what the others reach it at. */
  address: string;
  /** Starts a process on it. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
}

export interface Network {
  /** Whether the machines are separate namespaces (false: all loopback here). */
  isolated: boolean;
  /** This (the test's) machine, on the bridge. */
  host: Machine;
  machines: Machine[];
  close(): void;
}

const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: 'pipe' }); };

export function makeNetwork(count: number): Network {
  // Names unique to this process (interface names are at most 15 characters).
  const tag = (process.pid % 100_000).toString(36);
  const subnet = `10.${200 + (process.pid % 50)}.${(process.pid >> 6) % 250}`;
  const bridge = `clb${tag}`;
  const namespaces: string[] = [];
  const here: Machine = { address: '127.0.0.1', spawn: (c, a, o = {}) => spawn(c, a, o) };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const machines: Machine[] = [];
    for (let k = 0; k < count; k++) {
      const ns = `cl${tag}n${k}`;
      const outside = `cl${tag}v${k}`;
      ip('netns', 'add', ns);
      namespaces.push(ns);
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('link', 'set', outside, 'master', bridge);
      ip('link', 'set', outside, 'up');
      ip('-n', ns, 'addr', 'add', `${subnet}.${10 + k}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      machines.push({ address: `${subnet}.${10 + k}`, spawn: (c, a, o = {}) => spawn('ip', ['netns', 'exec', ns, c, ...a], o) });
    }
    return {
      isolated: true, host: { address: `${subnet}.1`, spawn: here.spawn }, machines,
      close: () => cleanUp(bridge, namespaces),
    };
  } catch {
    cleanUp(bridge, namespaces);
    return { isolated: false, host: here, machines: Array.from({ length: count }, () => here), close: () => {} };
  }
}

function cleanUp(bridge: string, namespaces: readonly string[]): void {
  // Deleting a namespace deletes its end of the veth pair, and with it the other end.
  for (const ns of namespaces) try { ip('netns', 'del', ns); } catch { /* already gone */ }
  try { ip('link', 'del', bridge); } catch { /* never made */ }
}

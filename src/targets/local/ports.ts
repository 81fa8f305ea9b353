/**
 * Ports on this machine: which are taken and by whom (from /proc/net and /proc/<pid>/fd), and choosing
 * free ones for a stack.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import type { PortReservations } from './port-reservations.js';

export type Protocol = 'tcp' | 'udp';

interface SocketEntry {
  port: number;
  inode: string;
}

/** Local ports of listening TCP sockets (state 0A) or bound UDP sockets in a /proc/net/{tcp,udp}[6] table. */
export function parseProcNetTable(text: string, protocol: Protocol): SocketEntry[] {
  const entries: SocketEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const localAddress = fields[1]!;
    const state = fields[3]!;
    if (protocol === 'tcp' && state !== '0A') continue;
    const port = parseInt(localAddress.split(':')[1] ?? '', 16);
    if (Number.isFinite(port)) entries.push({ port, inode: fields[9]! });
  }
  return entries;
}

function boundSockets(protocol: Protocol): SocketEntry[] {
  const entries: SocketEntry[] = [];
  for (const table of [protocol, `${protocol}6`]) {
    try {
      entries.push(...parseProcNetTable(readFileSync(`/proc/net/${table}`, 'utf8'), protocol));
    } catch {
      // No IPv6 on this machine.
    }
  }
  return entries;
}

export interface PortHolder {
  pid: number;
  command: string;
}

/** The process owning a socket inode, found through /proc/<pid>/fd links `socket:[inode]`. */
function socketOwner(inode: string): PortHolder | undefined {
  const target = `socket:[${inode}]`;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${name}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link === target) {
        let command = '?';
        try {
          command = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
        } catch {
          // The process just exited.
        }
        return { pid: Number(name), command };
      }
    }
  }
  return undefined;
}

export interface PortInUse {
  port: number;
  protocol: Protocol;
  holder?: PortHolder;
}

/** Whether a port is taken (listening TCP or bound UDP, any address), and by which process. */
export function portInUse(port: number, protocol: Protocol): PortInUse | undefined {
  const entry = boundSockets(protocol).find((socket) => socket.port === port);
  if (!entry) return undefined;
  return { port, protocol, holder: socketOwner(entry.inode) };
}

export function describePortHolder(use: PortInUse): string {
  return use.holder ? `process ${use.holder.pid} (${use.holder.command})` : 'another process';
}

/** Ports a stack should not pick: the kernel's ephemeral range, where outgoing connections take theirs. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // Not Linux: use the usual default.
  }
  return [32768, 60999];
}

export interface PortChooser {
  /** One free port (TCP, or TCP and UDP). */
  single(protocols: Protocol[]): number;
  /** A run of consecutive free UDP ports. */
  range(length: number): [number, number];
}

/**
 * Picks free ports at random below the ephemeral range, never twice in one chooser. With reservations, a
 * port is also claimed machine-wide (port-reservations.ts), so that choosers of other processes skip it
 * until it is bound. `pick` draws a number in [low, high) (tests make it predictable).
 */
export function createPortChooser(
  taken: Set<number> = new Set(),
  reservations?: PortReservations,
  pick: (low: number, high: number) => number = randomInt,
): PortChooser {
  const [ephemeralLow] = ephemeralRange();
  const low = 10_000;
  const high = Math.max(low + 1000, ephemeralLow - 1);
  const sockets = { tcp: new Set(boundSockets('tcp').map((s) => s.port)), udp: new Set(boundSockets('udp').map((s) => s.port)) };
  const isFree = (port: number, protocols: Protocol[]) => !taken.has(port) && protocols.every((p) => !sockets[p].has(port));
  /** Claims every port or none. */
  const claim = (ports: number[]): boolean => {
    if (!reservations) return true;
    const claimed: number[] = [];
    for (const port of ports) {
      if (!reservations.tryReserve(port)) {
        claimed.forEach((done) => reservations.release(done));
        return false;
      }
      claimed.push(port);
    }
    return true;
  };
  return {
    single(protocols) {
      for (let attempt = 0; attempt < 1000; attempt++) {
        const port = pick(low, high);
        if (isFree(port, protocols) && claim([port])) {
          taken.add(port);
          return port;
        }
      }
      throw new Error('no free port found between 10000 and the ephemeral range');
    },
    range(length) {
      for (let attempt = 0; attempt < 1000; attempt++) {
        const first = pick(low, high - length);
        const ports = Array.from({ length }, (_, i) => first + i);
        if (ports.every((port) => isFree(port, ['udp', 'tcp'])) && claim(ports)) {
          ports.forEach((port) => taken.add(port));
          return [first, first + length - 1];
        }
      }
      throw new Error(`no run of ${length} free ports found`);
    },
  };
}

/**
 * Ports promised to a process that has not bound them yet, shared by every process on this machine.
 *
 * Choosing a free port and binding it are minutes apart for a stack (its processes bind as they start),
 * and two `up`s started together both see the same ports free in /proc/net. So a chosen port is also
 * claimed here: one pid file per port (pid-file.ts). A claim ends when its process releases it or exits;
 * by then the stack's processes hold the port itself.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createPidFile, removePidFile } from './pid-file.js';

/** On a tmpfs: claims never outlive a reboot. */
export const defaultPortReservationsDir = '/run/mxstack/port-reservations';

export class PortReservations {
  private readonly held = new Set<number>();
  /** False when the directory cannot be created (not root): then nothing is claimed and every port is offered. */
  private readonly enabled: boolean;

  constructor(
    private readonly dir: string = defaultPortReservationsDir,
    private readonly owner: number = process.pid,
  ) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      this.enabled = true;
    } catch {
      this.enabled = false;
    }
  }

  /** Claims a port for the owner; false when a live process other than the owner holds it. */
  tryReserve(port: number): boolean {
    if (!this.enabled || this.held.has(port)) return true;
    const result = createPidFile(join(this.dir, String(port)), this.owner);
    if (result.created) this.held.add(port);
    return result.created || result.holder === this.owner;
  }

  /** Gives back one port claimed by this owner. */
  release(port: number): void {
    if (this.held.delete(port)) removePidFile(join(this.dir, String(port)), this.owner);
  }

  /** Gives back every port this owner claimed here. */
  releaseAll(): void {
    for (const port of [...this.held]) this.release(port);
  }
}

/**
 * Ports promised to a process that has not bound them yet, shared by every process on this machine.
 *
 * Choosing a free port and binding it are minutes apart for a stack (its processes bind as they start),
 * and two `up`s started together both see the same ports free in /proc/net. So a chosen port is also
 * claimed here: one file per port, created exclusively (O_EXCL), holding the claiming process's id. A
 * claim ends when its process releases it or exits; by then the stack's processes hold the port itself.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { processIsAlive } from './runtime.js';

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
    const file = join(this.dir, String(port));
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o644);
        writeSync(fd, `${this.owner}\n`);
        closeSync(fd);
        this.held.add(port);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = claimHolder(file);
        if (holder === this.owner) return true;
        // A claim being written (no id yet) is held for a moment; a claim of an exited process is stale.
        if (holder === undefined ? !claimAbandoned(file) : processIsAlive(holder)) return false;
        rmSync(file, { force: true });
      }
    }
    return false;
  }

  /** Gives back one port claimed by this owner. */
  release(port: number): void {
    if (!this.held.delete(port)) return;
    const file = join(this.dir, String(port));
    if (claimHolder(file) === this.owner) rmSync(file, { force: true });
  }

  /** Gives back every port this owner claimed here. */
  releaseAll(): void {
    for (const port of [...this.held]) this.release(port);
  }
}

/** A claim file still without an id a minute after it was created: its process died while writing it. */
function claimAbandoned(file: string): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs > 60_000;
  } catch {
    return true;
  }
}

function claimHolder(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

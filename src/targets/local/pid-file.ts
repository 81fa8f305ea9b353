/**
 * Files that say which process holds something: the state directory's lock, a claimed port. A file is
 * created exclusively (O_EXCL) and holds the holder's process id; it is stale once that process exited.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { processIsAlive } from './runtime.js';

/** The process id written in the file; undefined when there is no file or no id in it yet. */
export function pidInFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** A file still without an id a minute after it was created: its process died while writing it. */
function abandoned(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > 60_000;
  } catch {
    return true;
  }
}

export type PidFileResult = { created: true } | { created: false; holder: number | undefined };

/**
 * Creates the file holding `pid`. A file of an exited process, or one left without an id for a minute, is
 * replaced; otherwise the answer names its holder (undefined: a process is writing it at this moment).
 */
export function createPidFile(path: string, pid: number = process.pid): PidFileResult {
  let holder: number | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${pid}\n`);
      closeSync(fd);
      return { created: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      holder = pidInFile(path);
      if (holder === undefined ? !abandoned(path) : processIsAlive(holder)) return { created: false, holder };
      rmSync(path, { force: true });
    }
  }
  return { created: false, holder };
}

/** Removes the file when it holds `pid`, and only then. */
export function removePidFile(path: string, pid: number = process.pid): void {
  if (pidInFile(path) === pid) rmSync(path, { force: true });
}

/**
 * CPU seconds used by process trees, from /proc: where the machine's time went during a scenario. A
 * component's tree is its supervised process and every descendant (the chroot wrapper, PostgreSQL's backends);
 * time of children already reaped is in their parent's cutime/cstime, so nothing is counted twice.
 */
import { readdirSync, readFileSync } from 'node:fs';

const clockTicksPerSecond = 100;

interface ProcStat {
  pid: number;
  parent: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number(text.slice(0, text.indexOf(' ')));
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is the state (field 3): ppid is field 4, utime..cstime are fields 14..17.
  const parent = Number(fields[1]);
  const ticks = [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index]), 0);
  return Number.isFinite(pid) && Number.isFinite(ticks) ? { pid, parent, ticks } : undefined;
}

function allProcesses(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = parseProcStat(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (stat) stats.push(stat);
    } catch {
      // the process ended while we looked
    }
  }
  return stats;
}

/** CPU seconds of each named process tree so far (a missing root counts 0). */
export function treeCpuSeconds(roots: Record<string, number>): Record<string, number> {
  const processes = allProcesses();
  const children = new Map<number, ProcStat[]>();
  for (const process of processes) children.set(process.parent, [...(children.get(process.parent) ?? []), process]);
  const byPid = new Map(processes.map((process) => [process.pid, process]));
  const result: Record<string, number> = {};
  for (const [name, root] of Object.entries(roots)) {
    let ticks = 0;
    const pending = byPid.has(root) ? [byPid.get(root)!] : [];
    while (pending.length > 0) {
      const process = pending.pop()!;
      ticks += process.ticks;
      pending.push(...(children.get(process.pid) ?? []));
    }
    result[name] = ticks / clockTicksPerSecond;
  }
  return result;
}

/** The CPU seconds used between two readings, per name. */
export function cpuSecondsBetween(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([name, seconds]) => [name, seconds - (before[name] ?? 0)]));
}

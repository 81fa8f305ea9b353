/**
 * The doctor's checklist: one line per check, pass / warn / fail, and for what is not a pass, the fix.
 * `--output json` prints `{"checks": [{"name", "status", "detail", "fix"}]}`; any fail makes the exit code 1.
 */

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  /** What was seen, in one or two sentences. */
  detail: string;
  /** What to do about it; empty for a pass. */
  fix: string;
}

export interface DoctorReport {
  checks: DoctorCheck[];
}

export const pass = (name: string, detail: string): DoctorCheck => ({ name, status: 'pass', detail, fix: '' });
export const warn = (name: string, detail: string, fix: string): DoctorCheck => ({ name, status: 'warn', detail, fix });
export const fail = (name: string, detail: string, fix: string): DoctorCheck => ({ name, status: 'fail', detail, fix });

export function doctorExitCode(report: DoctorReport): number {
  return report.checks.some((check) => check.status === 'fail') ? 1 : 0;
}

/** Human-readable: one line per check, the fix indented below anything that is not a pass. */
export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((check) => check.name.length), 4);
  const lines: string[] = [];
  for (const check of report.checks) {
    lines.push(`${check.status.toUpperCase().padEnd(4)}  ${check.name.padEnd(width)}  ${check.detail}`);
    if (check.status !== 'pass' && check.fix) lines.push(`${' '.repeat(width + 8)}fix: ${check.fix}`);
  }
  const count = (status: CheckStatus) => report.checks.filter((check) => check.status === status).length;
  lines.push('', `${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed`);
  return `${lines.join('\n')}\n`;
}

const longestErrorText = 400;

/** One line of an unexpected error (never a stack trace); a long one keeps its start (what failed) and its end (why). */
export function errorSentence(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  const text = `${message}${cause}`.replace(/\s+/g, ' ').trim();
  return text.length <= longestErrorText ? text : `${text.slice(0, 150)} … ${text.slice(-(longestErrorText - 155))}`;
}

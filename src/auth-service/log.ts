// One JSON line per event on stdout. Callers pass only non-secret fields; `redactFields` is a last guard
// against a field whose name looks like a secret slipping into a line.
const secretLookingField = /pass|secret|code|token|cookie|key|otp|authorization|challenge|csrf/i;

export type LogFields = Record<string, string | number | boolean | undefined>;

export function redactFields(fields: LogFields): LogFields {
  return Object.fromEntries(Object.entries(fields).map(([name, value]) => [name, secretLookingField.test(name) ? '[redacted]' : value]));
}

export function logLine(event: string, fields: LogFields = {}, nowMs = Date.now()): string {
  return JSON.stringify({ time: new Date(nowMs).toISOString(), event, ...redactFields(fields) });
}

export function log(event: string, fields: LogFields = {}): void {
  process.stdout.write(logLine(event, fields) + '\n');
}

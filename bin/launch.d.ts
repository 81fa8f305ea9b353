// Types of bin/launch.js (plain JavaScript: it runs before anything is compiled), for the benchmark and tests.
export function newestModification(dir: string): number;
export function buildRecordFile(root: string): string;
export function buildIsCurrent(root?: string): boolean;
export function importEntry(module: string, root?: string): Promise<Record<string, unknown>>;

/** Progress of long transfers on stderr: at most one line every two seconds, and a last line at the end. */
export type Progress = (line: string) => void;

const intervalMs = 2000;
export const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export interface ProgressMeter {
  add(bytes: number): void;
  done(): void;
  readonly bytes: number;
}

export function progressMeter(label: string, totalBytes: number | undefined, progress: Progress | undefined): ProgressMeter {
  const started = Date.now();
  let last = started;
  let bytes = 0;
  const line = () => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const share = totalBytes ? ` of ${megabytes(totalBytes)} (${Math.floor((100 * bytes) / Math.max(1, totalBytes))}%)` : '';
    return `${label}: ${megabytes(bytes)}${share}, ${megabytes(bytes / seconds)}/s`;
  };
  return {
    add(n: number) {
      bytes += n;
      const now = Date.now();
      if (progress && now - last >= intervalMs) {
        last = now;
        progress(line());
      }
    },
    done() {
      if (progress && bytes > 0) progress(line());
    },
    get bytes() {
      return bytes;
    },
  };
}

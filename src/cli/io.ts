/**
 * How the CLI talks to the user: output streams, the usage-error type (one line, exit code 2),
 * and progress (a bar on a terminal, a line every few seconds on stderr otherwise).
 */
import cliProgress from 'cli-progress';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Progress bars only on a TTY; elsewhere progress is a line on stderr every few seconds. */
  isTTY: boolean;
}

/** Bad input: one line on stderr, exit code 2. */
export class UsageError extends Error {}

export const processIO: CliIO = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: Boolean(process.stderr.isTTY),
};

/** Run f; any error it throws becomes a UsageError (its message is the one line shown). */
export function toUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message);
  }
}

export interface Progress {
  start(total: number, label: string): void;
  update(value: number, payload?: Record<string, unknown>): void;
  stop(): void;
}

/** Seconds between progress lines when stderr is not a terminal. */
export const LINE_PROGRESS_SECONDS = 5;

/**
 * A progress bar on a terminal; without one (CI logs, pipes) a plain line on stderr at most every
 * LINE_PROGRESS_SECONDS, so a long command is never silent. `enabled: false` (--no-progress,
 * --json) shows nothing.
 */
export function progress(io: CliIO, enabled: boolean, unit: string, now: () => number = Date.now): Progress {
  if (!enabled) return { start() {}, update() {}, stop() {} };
  if (!io.isTTY) {
    let label = '';
    let total = 0;
    let last = -Infinity;
    return {
      start(t, l) {
        total = t;
        label = l;
        last = now();
        io.err(`${label}: 0/${total} ${unit}\n`);
      },
      update(v, payload) {
        if (typeof payload?.total === 'number') total = payload.total;
        const t = now();
        if (t - last < LINE_PROGRESS_SECONDS * 1000) return;
        last = t;
        const info = typeof payload?.info === 'string' && payload.info !== '' ? ` ${payload.info}` : '';
        io.err(`${label}: ${v}/${total} ${unit}${info}\n`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      format: `{label} [{bar}] {value}/{total} ${unit} {info}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      fps: 8,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total, label) => bar.start(total, 0, { label, info: '' }),
    update: (v, payload) => bar.update(v, payload),
    stop: () => bar.stop(),
  };
}

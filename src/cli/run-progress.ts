/**
 * How `sparse-frontier run` shows where it stands: a cli-progress bar (done/total examples, rate,
 * ETA, the configuration in flight) when stdout is a terminal, otherwise one plain line every
 * `intervalSeconds` (CI logs, files), plus a final line. Fed by the runner's onProgress callback.
 */
import cliProgress from 'cli-progress';
import type { RunProgress } from '../experiments/runner.js';

/** Where the display writes: process.stdout, or any sink with write (tests). */
export interface OutputSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressDisplay {
  update(p: RunProgress): void;
  /** A message line that must not be overwritten by the bar. */
  log(line: string): void;
  /** Clears the bar (or prints the last line) before other output follows. */
  stop(): void;
}

/** 75 → "1m15s", 3700 → "1h01m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A configuration key shortened for one status line:
 * "model=m|task=niah|n=1024|phase=decode|method=quest|s=0.5" → "m niah n=1024 quest s=0.5".
 */
export function shortConfigLabel(key: string): string {
  return key
    .split('|')
    .filter((part) => !part.startsWith('phase='))
    .map((part) => part.replace(/^(model|task|method)=/, ''))
    .join(' ');
}

/** Examples per second so far and the time the rest would take at that rate. */
export function rateAndEta(p: RunProgress, elapsedSeconds: number): { rate: number; etaSeconds: number } {
  const rate = elapsedSeconds > 0 ? p.done / elapsedSeconds : 0;
  const etaSeconds = rate > 0 ? (p.total - p.done) / rate : Number.POSITIVE_INFINITY;
  return { rate, etaSeconds };
}

/** One plain status line: "[12/342 3.5%] 0.41 ex/s, ETA 13m25s, elapsed 29s | model=…". */
export function progressLine(p: RunProgress, elapsedSeconds: number): string {
  const { rate, etaSeconds } = rateAndEta(p, elapsedSeconds);
  const pct = p.total > 0 ? ((100 * p.done) / p.total).toFixed(1) : '100.0';
  const failed = p.failed ? `, ${p.failed} unbuildable` : '';
  const eta = p.done >= p.total ? 'done' : `ETA ${formatDuration(etaSeconds)}`;
  return `[${p.done}/${p.total} ${pct}%] ${rate.toFixed(2)} ex/s, ${eta}, elapsed ${formatDuration(elapsedSeconds)}${failed}${p.current ? ` | ${shortConfigLabel(p.current)}` : ''}`;
}

export function createProgressDisplay(stream: OutputSink, options: { intervalSeconds?: number } = {}): ProgressDisplay {
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  if (!stream.isTTY) {
    const interval = options.intervalSeconds ?? 15;
    let lastLine = -Infinity;
    let last: RunProgress | null = null;
    let lastPrinted: RunProgress | null = null;
    const print = (p: RunProgress): void => {
      lastLine = elapsed();
      lastPrinted = p;
      stream.write(`${progressLine(p, elapsed())}\n`);
    };
    return {
      update(p) {
        last = p;
        if (elapsed() - lastLine >= interval) print(p);
      },
      log(line) {
        stream.write(`${line}\n`);
      },
      stop() {
        // The final count, unless the last line already showed it.
        if (last && (lastPrinted?.done !== last.done || lastPrinted.total !== last.total)) print({ ...last, current: null });
      },
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      // A terminal (isTTY) is a real tty stream: the bar moves its cursor.
      stream: stream as NodeJS.WriteStream,
      format: '{bar} {value}/{total} examples | {rate} ex/s | ETA {etaText} | {current}',
      hideCursor: true,
      clearOnComplete: false,
      barsize: 24,
      fps: 4,
      // Redraw on every render call: a log line may have replaced the bar's line.
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const payload = (p: RunProgress) => {
    const { rate, etaSeconds } = rateAndEta(p, elapsed());
    const width = Math.max(24, (stream.columns ?? 120) - 64);
    const current = p.current ? shortConfigLabel(p.current) : '';
    return {
      rate: rate.toFixed(2),
      etaText: p.done >= p.total ? 'done' : formatDuration(etaSeconds),
      current: current.length > width ? `…${current.slice(current.length - width + 1)}` : current,
    };
  };
  return {
    update(p) {
      if (!started) {
        bar.start(p.total, p.done, payload(p));
        started = true;
      } else {
        bar.setTotal(p.total);
        bar.update(p.done, payload(p));
      }
      // The runner is synchronous between examples: draw now rather than on the bar's timer.
      bar.render();
    },
    log(line) {
      // Clear the bar's line, print the message, draw the bar again below it.
      stream.write(`\r\x1b[2K${line}\n`);
      if (started) bar.render();
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/**
 * Runs slots in `jobs` worker processes (runner-worker.ts). Slots are handed out one at a time as
 * workers become free, so a slow slot never leaves another worker idle at the end. Each worker loads
 * the model itself and records into the same results database through its own connection (WAL).
 * Stopping (the signal): every worker finishes the example in flight, then exits; a worker that
 * fails ends the run with its error once the others have stopped.
 *
 * Parent → worker messages: init, slot, finish, stop. Worker → parent: ready (wants a slot),
 * start, finished, buildFailure, log, stopped, error.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BuildFailureNote } from './runner.js';
import type { Slot } from './slot-runner.js';

export interface JobEvents {
  start(configKey: string): void;
  finished(count: number, failed: boolean): void;
  buildFailure(f: BuildFailureNote): void;
  log(line: string): void;
  shouldStop(): boolean;
}

export interface JobOptions {
  jobs: number;
  dir: string;
  runId: number;
  dataDir?: string;
  sharePrefill: boolean;
  taskModule?: string;
  events: JobEvents;
  /** Polled as well as listened to: stop handing out slots and tell the workers to stop. */
  signal?: AbortSignal;
}

export interface WorkerInit {
  type: 'init';
  dir: string;
  runId: number;
  dataDir?: string;
  sharePrefill: boolean;
  taskModule?: string;
}

export type ToWorker = WorkerInit | { type: 'slot'; slot: Slot } | { type: 'finish' } | { type: 'stop' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'start'; key: string }
  | { type: 'finished'; count: number; failed: boolean }
  | { type: 'buildFailure'; failure: BuildFailureNote }
  | { type: 'log'; line: string }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

/** The module a worker runs: the compiled .js next to this file, or the .ts under tsx. */
function workerEntry(): string {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`./runner-worker.${ext}`, import.meta.url));
}

/**
 * The loader flags of this process (tsx registers itself with --require/--import), without the
 * rest (a test runner's --test flags would turn the worker into a test runner).
 */
export function loaderExecArgv(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  const withValue = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (withValue.has(a) && i + 1 < execArgv.length) {
      out.push(a, execArgv[++i]);
    } else if (/^--(import|require|loader|experimental-loader)=/.test(a) || a === '--enable-source-maps') {
      out.push(a);
    }
  }
  return out;
}

/** Resolves to true when the run stopped early (signal), false when every slot was run. */
export function runSlotsInJobs(slots: Slot[], options: JobOptions): Promise<boolean> {
  const queue = [...slots];
  const { events } = options;
  let stopping = false;
  let stoppedEarly = false;
  const errors: string[] = [];
  const workers: ChildProcess[] = [];
  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    for (const w of workers) if (w.connected) w.send({ type: 'stop' } satisfies ToWorker);
  };
  options.signal?.addEventListener('abort', stopAll, { once: true });

  return new Promise((resolve, reject) => {
    let running = options.jobs;
    const exited = (): void => {
      if (--running > 0) return;
      options.signal?.removeEventListener('abort', stopAll);
      if (errors.length) reject(new Error(errors.join('\n')));
      else resolve(stoppedEarly || queue.length > 0);
    };
    for (let j = 0; j < options.jobs; j++) {
      const worker = fork(workerEntry(), [], { execArgv: loaderExecArgv(process.execArgv), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(worker);
      let finished = false;
      const send = (m: ToWorker): void => {
        if (worker.connected) worker.send(m);
      };
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'ready': {
            if (events.shouldStop()) stopAll();
            const slot = stopping ? undefined : queue.shift();
            if (slot) send({ type: 'slot', slot });
            else {
              finished = true;
              send({ type: 'finish' });
            }
            break;
          }
          case 'start': events.start(m.key); break;
          case 'finished': events.finished(m.count, m.failed); break;
          case 'buildFailure': events.buildFailure(m.failure); break;
          case 'log': events.log(m.line); break;
          case 'stopped':
            stoppedEarly = true;
            stopAll();
            break;
          case 'error':
            errors.push(m.message);
            stopAll();
            break;
        }
      });
      worker.on('exit', (code, signal) => {
        if (!finished && !errors.length && !stopping) errors.push(`worker ${j + 1} exited (${signal ?? `code ${code}`}) before finishing its work`);
        else if (!finished) stoppedEarly = true;
        exited();
      });
      worker.on('error', (e) => {
        errors.push(`worker ${j + 1}: ${e.message}`);
      });
      send({ type: 'init', dir: options.dir, runId: options.runId, dataDir: options.dataDir, sharePrefill: options.sharePrefill, taskModule: options.taskModule });
    }
  });
}

/**
 * The experiment runner: expands a spec into configurations and runs every (configuration, example)
 * not yet in the results database, so an interrupted run resumes and `--shard i/n` runs a disjoint
 * share. The work is cut into slots, one per (model, task, length, example): the example is built
 * once and its configurations run back to back, dense and the decode-phase methods from one shared
 * dense prefill (slot-runner.ts). Per configuration: the method's AttentionPlan (sparse in its phase,
 * dense in the other), greedy generation, the task's scorer, the measured pair counts, FLOPs and
 * timings, recorded one example at a time.
 *
 * With `jobs` > 1 the slots are handed out one at a time to that many worker processes
 * (runner-jobs.ts), each with its own model copy and database connection (WAL): on a machine with
 * idle cores the grid finishes up to `jobs` times sooner, with the same records.
 *
 * Backend (backend.ts): cpu runs the CPU engine; cuda runs the experiment on the GPU model when
 * every method has a GPU implementation (the others are refused, naming them); auto takes the GPU
 * when that holds and one is usable, and otherwise the CPU, logging why. GPU runs stay in this process
 * (one model on the one GPU; --jobs does not apply).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ResultsDb } from './results-db.js';
import { type ResolvedBackend, type RunBackend, chooseRunBackend } from './backend.js';
import { runSlotsInJobs } from './runner-jobs.js';
import { type Slot, SlotRunner, type TaskLookup, planFor } from './slot-runner.js';
import { type ExperimentConfiguration, type ExperimentSpec, type TaskRef, expandExperiment, inShard, resolveModels, resolveTasks } from './spec.js';

export { flopsShape, headDetail, methodEstimation, planFor, promptHash } from './slot-runner.js';
export type { Slot, TaskLookup } from './slot-runner.js';

export interface RunOptions {
  /** Experiment directory (results.sqlite and spec.json go there). */
  dir: string;
  spec: ExperimentSpec;
  /** Resolves a task name of the spec to its module (in-process runs). */
  getTask: TaskLookup;
  /**
   * Worker processes (jobs > 1) resolve tasks by importing this module and calling its `getTask`
   * export (default: the task registry, src/tasks/index.ts). Tests point it at a fixture.
   */
  taskModule?: string;
  shard?: { index: number; count: number };
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Folder of the QA data files (default: the tasks' own default). */
  dataDir?: string;
  /**
   * Run dense and every decode-phase configuration of an example from one dense prefill of its
   * prompt, each on a copy of the KV cache (default true). Off: each configuration prefills on its
   * own; the results are identical either way, only the time differs.
   */
  sharePrefill?: boolean;
  /** Worker processes (default 1: everything in this process). */
  jobs?: number;
  /** Overrides the spec's `backend` (`run --backend`). */
  backend?: RunBackend;
  /** Checked between examples: once aborted, the runner records nothing more and returns. */
  signal?: AbortSignal;
  /** Called when an example starts (current = its configuration key) and when the counts change. */
  onProgress?: (p: RunProgress) => void;
}

/** Where a run stands, in (configuration, example) units of this invocation. */
export interface RunProgress {
  /** Units finished: recorded or found unbuildable. */
  done: number;
  /** Units this invocation has to do (already recorded ones and other shards' excluded). */
  total: number;
  recorded: number;
  /** Units whose example the task could not build. */
  failed: number;
  /** Configuration key of the example in flight (the latest started, with several jobs). */
  current: string | null;
}

export type BuildFailureNote = { model: string; task: string; length: number; index: number; error: string };

export interface RunSummary {
  configurations: number;
  recorded: number;
  skippedDone: number;
  /**
   * Examples that could not be built within the length bounds (e.g. n below the task's minimum),
   * with the task's reason; they are not recorded, so a later run retries them.
   */
  failedExamples: BuildFailureNote[];
  /** True when the signal stopped the run before its work was done (resume by running it again). */
  interrupted: boolean;
  /** The engine that ran it (auto resolved). */
  backend: ResolvedBackend;
}

/** The (model, task, length) of a configuration: its examples share prompts (and the dense prefill). */
export function slotKey(c: ExperimentConfiguration): string {
  return `model=${c.model.name}|task=${c.task}|n=${c.length}`;
}

/**
 * The slots still to run, in grid order (model, length, task, example), each with its pending
 * configurations in grid order (dense, prefill methods, decode methods). Shards hold whole slots,
 * so the shared prefill stays in one shard. Counts the units already recorded into `skipped`.
 */
export function pendingSlots(
  spec: ExperimentSpec, configs: ExperimentConfiguration[], doneIndices: (key: string) => Set<number>,
  shard: { index: number; count: number } | undefined, skipped: { count: number },
): Slot[] {
  const slots = new Map<string, Slot>();
  const questionFilterLength = Math.min(...spec.lengths);
  for (const c of configs) {
    const done = doneIndices(c.key);
    for (let i = 0; i < c.examples; i++) {
      if (shard && !inShard(slotKey(c), i, shard)) continue;
      if (done.has(i)) {
        skipped.count++;
        continue;
      }
      const key = `${slotKey(c)}|${i}`;
      let slot = slots.get(key);
      if (!slot) {
        slot = {
          model: c.model, task: c.task, taskName: c.taskName, taskParams: c.taskParams, length: c.length, seed: c.seed, index: i,
          configs: [], questionFilterLength,
        };
        slots.set(key, slot);
      }
      slot.configs.push(c);
    }
  }
  // Example-major inside each (model, length, task): all configurations of example i before i + 1.
  const order = new Map(configs.map((c, k) => [slotKey(c), k]));
  return [...slots.values()].sort((a, b) => order.get(slotKey(a.configs[0]))! - order.get(slotKey(b.configs[0]))! || a.index - b.index);
}

/** A task entry's parameters must be the task's own (those its `defaults` name). */
export function checkTaskParams(t: TaskRef, task: { defaults: Readonly<Record<string, unknown>> }): void {
  const known = Object.keys(task.defaults);
  for (const name of Object.keys(t.params)) {
    if (!known.includes(name)) throw new Error(`task ${t.label}: "${t.name}" has no parameter "${name}" (known: ${known.join(', ') || 'none'})`);
  }
}

export async function runExperiment(options: RunOptions): Promise<RunSummary> {
  const spec = options.backend ? { ...options.spec, backend: options.backend } : options.spec;
  const { getTask, shard } = options;
  const log = options.log ?? (() => {});
  const jobs = options.jobs ?? 1;
  if (!(Number.isInteger(jobs) && jobs >= 1)) throw new Error(`jobs must be a positive integer, got ${jobs}`);
  const configs = expandExperiment(spec);
  // Fail on unknown task names, task parameters and bad method options before loading any model.
  for (const t of resolveTasks(spec)) checkTaskParams(t, getTask(t.name));
  for (const c of configs) planFor(c);
  const { backend, note } = await chooseRunBackend(spec.backend, configs);
  if (note) log(note);
  if (backend === 'cuda' && jobs > 1) log(`--jobs ${jobs} ignored: the GPU run uses one process`);
  for (const m of resolveModels(spec)) {
    if (!existsSync(join(m.path, 'config.json'))) {
      throw new Error(`model ${m.name}: no checkpoint at ${m.path} (a folder with config.json, weights and tokenizer files is expected)`);
    }
  }
  const db = ResultsDb.openDir(options.dir);
  writeFileSync(join(options.dir, 'spec.json'), `${JSON.stringify(spec, null, 2)}\n`);
  const summary: RunSummary = { configurations: configs.length, recorded: 0, skippedDone: 0, failedExamples: [], interrupted: false, backend };
  try {
    db.registerConfigurations(configs);
    const runId = db.startRun(spec, { shard: shard ? `${shard.index}/${shard.count}` : undefined });
    const skipped = { count: 0 };
    const slots = pendingSlots(spec, configs, (key) => db.doneIndices(key), shard, skipped);
    summary.skippedDone = skipped.count;
    for (const name of new Set(configs.map((c) => c.model.name))) {
      if (!slots.some((s) => s.model.name === name)) log(`${name}: nothing left to run`);
    }
    const progress: RunProgress = { done: 0, total: slots.reduce((n, s) => n + s.configs.length, 0), recorded: 0, failed: 0, current: null };
    const report = (): void => options.onProgress?.({ ...progress });
    const events = {
      start(key: string) {
        progress.current = key;
        report();
      },
      finished(count: number, failed: boolean) {
        progress.done += count;
        if (failed) progress.failed += count;
        else progress.recorded += count;
        report();
      },
      buildFailure(f: BuildFailureNote) {
        summary.failedExamples.push(f);
      },
      log,
      shouldStop: () => options.signal?.aborted ?? false,
    };
    report();
    const sharePrefill = options.sharePrefill ?? true;
    if (backend === 'cpu' && jobs > 1 && slots.length > 1) {
      // The workers write through their own connections; this one stays open only for the run row.
      summary.interrupted = await runSlotsInJobs(slots, {
        jobs: Math.min(jobs, slots.length), dir: options.dir, runId, dataDir: options.dataDir, sharePrefill,
        taskModule: options.taskModule, events, signal: options.signal,
      });
    } else {
      const runner = new SlotRunner(db, runId, getTask, { dataDir: options.dataDir, sharePrefill, backend });
      try {
        for (const slot of slots) {
          if (!(await runner.runSlot(slot, events))) {
            summary.interrupted = true;
            break;
          }
        }
      } finally {
        runner.dispose();
      }
    }
    summary.recorded = progress.recorded;
    progress.current = null;
    report();
  } finally {
    db.close();
  }
  return summary;
}

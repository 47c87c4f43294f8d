/**
 * The experiment runner: expands a spec into configurations and runs every (configuration, example)
 * not yet in the results database (so an interrupted run resumes, and `--shard i/n` runs a disjoint
 * share). Per model: load the checkpoint once; per (length, task): build the examples once (they
 * depend only on task, length, seed and index); per configuration: the method's AttentionPlan
 * (sparse in its phase, dense in the other), greedy generation, the task's scorer, the measured pair
 * counts, FLOPs and timings, recorded one example at a time.
 *
 * CPU engine only for now: `backend: cuda` is refused with a clear message until the engine exposes
 * a CUDA model.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AttentionPlan } from '../engine/attention.js';
import type { AttentionCounts, PhaseCounts } from '../engine/forward-state.js';
import { type Checkpoint, loadCheckpoint } from '../engine/checkpoint.js';
import { type PrefilledSequence, type SequenceResult, collectStopTokenIds, continueGeneration, generateTokens } from '../engine/generate.js';
import { SequenceState } from '../engine/forward-state.js';
import { TransformerModel } from '../engine/model.js';
import type { ModelConfig } from '../engine/model-config.js';
import { createAttentionPlan, estimationFlops } from '../methods/index.js';
import { DensePrefill, densePlan } from '../methods/dense.js';
import type { Task, TaskExample } from '../tasks/types.js';
import { exampleFlops, decodeSteps, type FlopsModelShape } from './flops.js';
import { type ExampleRecord, type HeadDetail, type PairCounts, type PhaseHeadDetail, ResultsDb } from './results-db.js';
import { type ExperimentConfiguration, type ExperimentSpec, expandExperiment, inShard } from './spec.js';

export type TaskLookup = (name: string) => Task<Record<string, unknown>, unknown>;

export interface RunOptions {
  /** Experiment directory (results.sqlite and spec.json go there). */
  dir: string;
  spec: ExperimentSpec;
  /** Resolves a task name of the spec to its module. */
  getTask: TaskLookup;
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
  /** Configuration key of the example in flight. */
  current: string | null;
}

export interface RunSummary {
  configurations: number;
  recorded: number;
  skippedDone: number;
  /**
   * Examples that could not be built within the length bounds (e.g. n below the task's minimum),
   * with the task's reason; they are not recorded, so a later run retries them.
   */
  failedExamples: { model: string; task: string; length: number; index: number; error: string }[];
  /** True when the signal stopped the run before its work was done (resume by running it again). */
  interrupted: boolean;
}

/** The ModelConfig fields the FLOPs model (and the results database) keep. */
export function flopsShape(c: ModelConfig): FlopsModelShape {
  return {
    vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, numLayers: c.numLayers,
    numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, layerTypes: [...c.layerTypes],
    slidingWindow: c.slidingWindow, tieWordEmbeddings: c.tieWordEmbeddings,
  };
}

function sum(xs: Float64Array): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/** Pair totals over the given layers ([L·H] layer-major counts). */
function phasePairs(p: PhaseCounts, numHeads: number, layers: readonly number[]): PairCounts {
  let attendedPairs = 0, densePairs = 0;
  for (const l of layers) {
    attendedPairs += sum(p.attended.subarray(l * numHeads, (l + 1) * numHeads));
    densePairs += sum(p.dense.subarray(l * numHeads, (l + 1) * numHeads));
  }
  return { attendedPairs, densePairs };
}

/** [L·H] layer-major counts → [L][H] arrays. */
function phaseDetail(p: PhaseCounts, numLayers: number, numHeads: number): PhaseHeadDetail {
  const rows = (a: Float64Array) => Array.from({ length: numLayers }, (_, l) => Array.from(a.subarray(l * numHeads, (l + 1) * numHeads)));
  return { attended: rows(p.attended), dense: rows(p.dense) };
}

export function headDetail(c: AttentionCounts): HeadDetail {
  return { prefill: phaseDetail(c.prefill, c.numLayers, c.numHeads), decode: phaseDetail(c.decode, c.numLayers, c.numHeads) };
}

export function promptHash(ids: readonly number[]): string {
  return createHash('sha256').update(Int32Array.from(ids)).digest('hex').slice(0, 32);
}

/**
 * Estimation FLOPs of a method for one example: its per-layer cost on the layers it runs on (full
 * attention layers; sliding layers always run dense) at the prompt length, once for the prompt and
 * once per decode step.
 */
export function methodEstimation(cfg: ModelConfig, c: ExperimentConfiguration, inputTokens: number, outputTokens: number): { prefill: number; decode: number } {
  if (c.phase === 'dense') return { prefill: 0, decode: 0 };
  const perLayer = estimationFlops(c.method, { numHeads: cfg.numHeads, numKvHeads: cfg.numKvHeads, headDim: cfg.headDim }, inputTokens, c.params);
  const layers = cfg.layerTypes.filter((t) => t === 'full').length;
  return { prefill: perLayer.atPrefill * layers, decode: perLayer.perDecodeToken * layers * decodeSteps(outputTokens) };
}

/** The configuration's methods: sparse in its phase, dense in the other (dense in both for dense). */
export function planFor(c: ExperimentConfiguration): AttentionPlan {
  try {
    return createAttentionPlan(c.method, c.phase === 'dense' ? {} : { sparsity: c.requestedSparsity ?? undefined, params: c.params });
  } catch (e) {
    throw new Error(`configuration ${c.key}: ${(e as Error).message}`);
  }
}

/** What running one example needs from the loaded model. */
interface ModelContext {
  model: TransformerModel;
  ckpt: Checkpoint;
  stopTokenIds: number[];
  /** Layers the methods act on (full attention); sliding layers always run dense. */
  fullLayers: number[];
  allLayers: number[];
  task: Task<Record<string, unknown>, unknown>;
}

/**
 * The record of one generated example: output and score, achieved sparsity over the full-attention
 * layers, FLOPs over every layer (estimation included), timings.
 */
function exampleRecord(ctx: ModelContext, c: ExperimentConfiguration, index: number, ex: TaskExample, res: SequenceResult, runId: number): ExampleRecord {
  const { ckpt, task } = ctx;
  const output = ckpt.tokenizer.decode(res.tokenIds, { skipSpecialTokens: true });
  const scored = task.score(ex, output);
  const estimation = methodEstimation(ckpt.config, c, ex.inputLength, res.generatedTokens);
  const H = res.counts.numHeads;
  const prefillAll = phasePairs(res.counts.prefill, H, ctx.allLayers);
  const decodeAll = phasePairs(res.counts.decode, H, ctx.allLayers);
  return {
    configKey: c.key, exampleIndex: index, runId, promptHash: promptHash(ex.inputIds), output, gold: JSON.stringify(ex.gold),
    score: scored.score, metric: task.metric, inputTokens: ex.inputLength, outputTokens: res.generatedTokens, goldTokens: ex.goldLength,
    prefill: phasePairs(res.counts.prefill, H, ctx.fullLayers),
    decode: phasePairs(res.counts.decode, H, ctx.fullLayers),
    headDetail: headDetail(res.counts),
    flops: exampleFlops(flopsShape(ckpt.config), {
      inputTokens: ex.inputLength, outputTokens: res.generatedTokens,
      prefillAttendedPairs: prefillAll.attendedPairs, decodeAttendedPairs: decodeAll.attendedPairs,
      prefillEstimationFlops: estimation.prefill, decodeEstimationFlops: estimation.decode,
    }),
    prefillMs: res.prefillSeconds * 1000, decodeMs: res.decodeSeconds * 1000,
  };
}

/** A configuration runs after the shared dense prefill when its own prefill is exactly that. */
function sharesDensePrefill(plan: AttentionPlan): boolean {
  return plan.prefill instanceof DensePrefill;
}

const seconds = (): number => performance.now() / 1000;

/**
 * The dense prefill of one prompt that every sharing configuration of this example continues from:
 * it keeps the longest observation window any of them needs, so each fork gets its own window's
 * queries (SequenceState.fork).
 */
function sharedDensePrefill(ctx: ModelContext, prompt: number[], chunkSize: number, observationWindow: number): PrefilledSequence {
  const { model } = ctx;
  const c = model.config;
  const state = new SequenceState(c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.layerTypes.map((t) => t !== 'sliding'), observationWindow);
  const t0 = seconds();
  const lastLogits = model.prefill(state, prompt, densePlan(), chunkSize);
  return { state, lastLogits, promptTokens: prompt.length, prefillSeconds: seconds() - t0 };
}

/**
 * One configuration continuing from the shared prefill: a copy of its cache, the method's
 * afterPrefill hook (its cost is added to the shared prefill time; the copy's is not), then its
 * decode.
 */
function continueFromShared(ctx: ModelContext, shared: PrefilledSequence, plan: AttentionPlan, c: ExperimentConfiguration): SequenceResult {
  const state = shared.state.fork(plan.decode.observationWindow);
  const t0 = seconds();
  ctx.model.finishPrefill(state, plan);
  const hookSeconds = seconds() - t0;
  const [res] = continueGeneration(ctx.model, [{ ...shared, state, prefillSeconds: shared.prefillSeconds + hookSeconds }], {
    plan, maxNewTokens: c.maxNewTokens, stopTokenIds: ctx.stopTokenIds, chunkSize: c.chunkSize,
  });
  return res;
}

/** Lets signal handlers and timers (progress display, Ctrl-C) run between examples. */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function runExperiment(options: RunOptions): Promise<RunSummary> {
  const { spec, getTask, shard } = options;
  const log = options.log ?? (() => {});
  const sharePrefill = options.sharePrefill ?? true;
  if (spec.backend === 'cuda') throw new Error('backend: cuda is not available to the runner yet (the CPU engine runs experiments); use cpu or auto');
  const configs = expandExperiment(spec);
  // Fail on unknown task names and bad method options before loading any model.
  for (const t of spec.tasks) getTask(t);
  for (const c of configs) planFor(c);
  const db = ResultsDb.openDir(options.dir);
  writeFileSync(join(options.dir, 'spec.json'), `${JSON.stringify(spec, null, 2)}\n`);
  const summary: RunSummary = { configurations: configs.length, recorded: 0, skippedDone: 0, failedExamples: [], interrupted: false };
  try {
    db.registerConfigurations(configs);
    const runId = db.startRun(spec, { shard: shard ? `${shard.index}/${shard.count}` : undefined });
    // Shards hold whole (model, task, length, example) slots, so the shared prefill stays in one shard.
    const pending = (c: ExperimentConfiguration): number[] => {
      const done = db.doneIndices(c.key);
      const out: number[] = [];
      for (let i = 0; i < c.examples; i++) {
        if (shard && !inShard(slotKey(c), i, shard)) continue;
        if (done.has(i)) summary.skippedDone++;
        else out.push(i);
      }
      return out;
    };
    const work = configs.map((c) => ({ c, todo: pending(c) })).filter((w) => w.todo.length > 0);
    const progress: RunProgress = { done: 0, total: work.reduce((n, w) => n + w.todo.length, 0), recorded: 0, failed: 0, current: null };
    const report = (current: string | null): void => {
      progress.current = current;
      options.onProgress?.({ ...progress });
    };
    report(null);

    const byModel = new Map<string, typeof work>();
    for (const w of work) {
      const g = byModel.get(w.c.model.name);
      if (g) g.push(w); else byModel.set(w.c.model.name, [w]);
    }
    for (const modelConfigs of new Set(configs.map((c) => c.model.name))) {
      if (!byModel.has(modelConfigs)) log(`${modelConfigs}: nothing left to run`);
    }
    models: for (const [modelName, modelWork] of byModel) {
      const ckpt = loadCheckpoint(modelWork[0].c.model.path);
      db.recordModel(modelName, ckpt.dir, flopsShape(ckpt.config));
      const model = new TransformerModel(ckpt.config, ckpt.weights);
      const stopTokenIds = collectStopTokenIds(ckpt.tokenizer, ckpt.stopTokenIds);
      const allLayers = ckpt.config.layerTypes.map((_, l) => l);
      const fullLayers = allLayers.filter((l) => ckpt.config.layerTypes[l] === 'full');
      log(`${modelName}: loaded ${ckpt.dir}`);

      const cells = new Map<string, typeof work>();
      for (const w of modelWork) {
        const k = `${w.c.length}|${w.c.task}`;
        const g = cells.get(k);
        if (g) g.push(w); else cells.set(k, [w]);
      }
      for (const cell of cells.values()) {
        const { task: taskName, length, seed } = cell[0].c;
        const task = getTask(taskName);
        const ctx: ModelContext = { model, ckpt, stopTokenIds, fullLayers, allLayers, task };
        // QA keeps only questions whose single-document prompt fits the experiment's shortest length,
        // so every length asks the same questions (SPEC section 3).
        const params = 'questionFilterLength' in task.defaults ? { questionFilterLength: Math.min(...spec.lengths) } : undefined;
        const indices = [...new Set(cell.flatMap((w) => w.todo))].sort((a, b) => a - b);
        // Example-major: every configuration of example i runs before example i + 1, so the dense
        // prefill of i can be shared and early results already pair with dense.
        for (const i of indices) {
          const due = cell.filter((w) => w.todo.includes(i)).map((w) => ({ c: w.c, plan: planFor(w.c) }));
          let ex: TaskExample;
          try {
            [ex] = task.generate({ tokenizer: ckpt.tokenizer, length, count: 1, firstIndex: i, seed, dataDir: options.dataDir, params });
            db.clearBuildFailure(modelName, taskName, length, i);
          } catch (e) {
            const error = (e as Error).message;
            summary.failedExamples.push({ model: modelName, task: taskName, length, index: i, error });
            db.recordBuildFailure({ model: modelName, task: taskName, length, exampleIndex: i, error });
            log(`${modelName} ${taskName} n=${length} example ${i}: cannot be built: ${error}`);
            progress.done += due.length;
            progress.failed += due.length;
            report(null);
            continue;
          }
          const sharing = sharePrefill ? due.filter((d) => sharesDensePrefill(d.plan)) : [];
          let shared: PrefilledSequence | null = null;
          for (const { c, plan } of due) {
            report(c.key);
            await yieldToEventLoop();
            if (options.signal?.aborted) {
              summary.interrupted = true;
              break models;
            }
            let res: SequenceResult;
            if (sharing.some((d) => d.c === c)) {
              shared ??= sharedDensePrefill(ctx, ex.inputIds, c.chunkSize, Math.max(0, ...sharing.map((d) => d.plan.decode.observationWindow)));
              res = continueFromShared(ctx, shared, plan, c);
            } else {
              [res] = generateTokens(model, [ex.inputIds], { plan, maxNewTokens: c.maxNewTokens, stopTokenIds, chunkSize: c.chunkSize });
            }
            db.record(exampleRecord(ctx, c, i, ex, res, runId));
            summary.recorded++;
            progress.done++;
            progress.recorded++;
          }
        }
        log(`${modelName} ${taskName} n=${length}: done`);
      }
    }
    report(null);
  } finally {
    db.close();
  }
  return summary;
}

/** The (model, task, length) of a configuration: its examples share prompts (and the dense prefill). */
export function slotKey(c: ExperimentConfiguration): string {
  return `model=${c.model.name}|task=${c.task}|n=${c.length}`;
}

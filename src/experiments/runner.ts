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
import { collectStopTokenIds, generateTokens } from '../engine/generate.js';
import { TransformerModel } from '../engine/model.js';
import type { ModelConfig } from '../engine/model-config.js';
import { createAttentionPlan, estimationFlops } from '../methods/index.js';
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
 * Generates one example under the configuration's plan and returns its record: output and score,
 * achieved sparsity over the full-attention layers, FLOPs over every layer (estimation included),
 * timings.
 */
function runExample(ctx: ModelContext, c: ExperimentConfiguration, index: number, ex: TaskExample, runId: number): ExampleRecord {
  const { model, ckpt, task } = ctx;
  const [res] = generateTokens(model, [ex.inputIds], { plan: planFor(c), maxNewTokens: c.maxNewTokens, stopTokenIds: ctx.stopTokenIds, chunkSize: c.chunkSize });
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

export async function runExperiment(options: RunOptions): Promise<RunSummary> {
  const { spec, getTask, shard } = options;
  const log = options.log ?? (() => {});
  if (spec.backend === 'cuda') throw new Error('backend: cuda is not available to the runner yet (the CPU engine runs experiments); use cpu or auto');
  const configs = expandExperiment(spec);
  // Fail on unknown task names and bad method options before loading any model.
  for (const t of spec.tasks) getTask(t);
  for (const c of configs) planFor(c);
  const db = ResultsDb.openDir(options.dir);
  writeFileSync(join(options.dir, 'spec.json'), `${JSON.stringify(spec, null, 2)}\n`);
  const summary: RunSummary = { configurations: configs.length, recorded: 0, skippedDone: 0, failedExamples: [] };
  try {
    db.registerConfigurations(configs);
    const runId = db.startRun(spec, { shard: shard ? `${shard.index}/${shard.count}` : undefined });
    const pending = (c: ExperimentConfiguration): number[] => {
      const done = db.doneIndices(c.key);
      const out: number[] = [];
      for (let i = 0; i < c.examples; i++) {
        if (shard && !inShard(c.key, i, shard)) continue;
        if (done.has(i)) summary.skippedDone++;
        else out.push(i);
      }
      return out;
    };

    const byModel = new Map<string, ExperimentConfiguration[]>();
    for (const c of configs) {
      const g = byModel.get(c.model.name);
      if (g) g.push(c); else byModel.set(c.model.name, [c]);
    }
    for (const [modelName, modelConfigs] of byModel) {
      const work = modelConfigs.map((c) => ({ c, todo: pending(c) })).filter((w) => w.todo.length > 0);
      if (!work.length) {
        log(`${modelName}: nothing left to run`);
        continue;
      }
      const ckpt = loadCheckpoint(modelConfigs[0].model.path);
      db.recordModel(modelName, ckpt.dir, flopsShape(ckpt.config));
      const model = new TransformerModel(ckpt.config, ckpt.weights);
      const stopTokenIds = collectStopTokenIds(ckpt.tokenizer, ckpt.stopTokenIds);
      const allLayers = ckpt.config.layerTypes.map((_, l) => l);
      const fullLayers = allLayers.filter((l) => ckpt.config.layerTypes[l] === 'full');
      log(`${modelName}: loaded ${ckpt.dir}`);

      const cells = new Map<string, typeof work>();
      for (const w of work) {
        const k = `${w.c.length}|${w.c.task}`;
        const g = cells.get(k);
        if (g) g.push(w); else cells.set(k, [w]);
      }
      for (const cell of cells.values()) {
        const { task: taskName, length, seed } = cell[0].c;
        const task = getTask(taskName);
        // QA keeps only questions whose single-document prompt fits the experiment's shortest length,
        // so every length asks the same questions (SPEC section 3).
        const params = 'questionFilterLength' in task.defaults ? { questionFilterLength: Math.min(...spec.lengths) } : undefined;
        const examples = new Map<number, TaskExample>();
        for (const i of new Set(cell.flatMap((w) => w.todo))) {
          try {
            const [ex] = task.generate({ tokenizer: ckpt.tokenizer, length, count: 1, firstIndex: i, seed, dataDir: options.dataDir, params });
            examples.set(i, ex);
            db.clearBuildFailure(modelName, taskName, length, i);
          } catch (e) {
            const error = (e as Error).message;
            summary.failedExamples.push({ model: modelName, task: taskName, length, index: i, error });
            db.recordBuildFailure({ model: modelName, task: taskName, length, exampleIndex: i, error });
            log(`${modelName} ${taskName} n=${length} example ${i}: cannot be built: ${error}`);
          }
        }
        for (const { c, todo } of cell) {
          for (const i of todo) {
            const ex = examples.get(i);
            if (!ex) continue;
            db.record(runExample({ model, ckpt, stopTokenIds, fullLayers, allLayers, task }, c, i, ex, runId));
            summary.recorded++;
          }
          log(`${c.key}: ${todo.filter((i) => examples.has(i)).length} example(s) recorded`);
        }
      }
    }
  } finally {
    db.close();
  }
  return summary;
}

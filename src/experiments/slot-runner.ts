/**
 * The work of one slot: one (model, task, length, example index) and the configurations of that
 * example still to run. The example is built once; dense and every decode-phase configuration run
 * from one shared dense prefill of its prompt (each on a copy of the KV cache; results identical to
 * prefilling per configuration, see test/experiments/runner-shared-prefill.test.ts); prefill-phase
 * configurations prefill on their own. Each configuration's example is recorded as soon as it is
 * done, so an interruption loses at most the one in flight.
 *
 * Used in-process by runExperiment and, with --jobs, by each worker process (runner-worker.ts).
 * With backend cuda (see backend.ts) each example generates on the GPU model (device-engine.ts) under
 * its configuration's GPU method pair instead, with no shared prefill.
 */
import { createHash } from 'node:crypto';
import type { AttentionPlan } from '../engine/attention.js';
import type { AttentionCounts, PhaseCounts } from '../engine/forward-state.js';
import { type Checkpoint, loadCheckpoint } from '../engine/checkpoint.js';
import { type PrefilledSequence, type SequenceResult, collectStopTokenIds, continueGeneration, generateTokens } from '../engine/generate.js';
import { SequenceState } from '../engine/forward-state.js';
import { TransformerModel } from '../engine/model.js';
import type { ModelConfig } from '../engine/model-config.js';
import { createAttentionPlan, estimationFlops, type PlanOptions } from '../methods/index.js';
import { DensePrefill, densePlan } from '../methods/dense.js';
import type { Task, TaskExample } from '../tasks/types.js';
import { exampleFlops, decodeSteps, type FlopsModelShape } from './flops.js';
import { type ExampleRecord, type HeadDetail, type PairCounts, type PhaseHeadDetail, ResultsDb } from './results-db.js';
import type { ExperimentConfiguration, ModelRef } from './spec.js';
import type { ResolvedBackend } from './backend.js';
import type { DeviceEngine } from './device-engine.js';

export type TaskLookup = (name: string) => Task<Record<string, unknown>, unknown>;

/** One example of one (model, task, length) and its configurations still to run (plain data). */
export interface Slot {
  model: ModelRef;
  /** The task's label (results are filed under it); examples are built from taskName + taskParams. */
  task: string;
  taskName: string;
  taskParams: Record<string, number | string | boolean>;
  length: number;
  seed: number;
  index: number;
  configs: ExperimentConfiguration[];
  /** QA tasks: the experiment's shortest length (every length asks the same questions). */
  questionFilterLength: number;
}

/** What a slot reports as it goes. */
export interface SlotEvents {
  /** An example of `configKey` starts. */
  start(configKey: string): void;
  /** `count` units finished: recorded, or (failed) found unbuildable. */
  finished(count: number, failed: boolean): void;
  buildFailure(f: { model: string; task: string; length: number; index: number; error: string }): void;
  log(line: string): void;
  /** Checked before each configuration's example; true stops the slot there. */
  shouldStop(): boolean;
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

/** The registry options of the configuration's method (none for dense). */
export function methodOptionsFor(c: ExperimentConfiguration): PlanOptions {
  return c.phase === 'dense' ? {} : { sparsity: c.requestedSparsity ?? undefined, params: c.params };
}

/** The configuration's methods: sparse in its phase, dense in the other (dense in both for dense). */
export function planFor(c: ExperimentConfiguration): AttentionPlan {
  try {
    return createAttentionPlan(c.method, methodOptionsFor(c));
  } catch (e) {
    throw new Error(`configuration ${c.key}: ${(e as Error).message}`);
  }
}

/** One example on the GPU model under the configuration's method pair (device-engine.ts). */
function generateOnDevice(device: DeviceEngine, c: ExperimentConfiguration, prompt: number[], stopTokenIds: number[]): SequenceResult {
  const methodOptions = methodOptionsFor(c);
  try {
    device.check(c.method, methodOptions);
  } catch (e) {
    throw new Error(`configuration ${c.key}: ${(e as Error).message}`);
  }
  return device.generate(prompt, { maxNewTokens: c.maxNewTokens, stopTokenIds, chunkSize: c.chunkSize, method: c.method, methodOptions });
}

/** What running one example needs from the loaded model. */
interface ModelContext {
  /** The CPU engine's model (backend cpu); null on the GPU. */
  model: TransformerModel | null;
  /** The GPU model (backend cuda); null on the CPU. */
  device: DeviceEngine | null;
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
  const model = cpuModel(ctx);
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
  cpuModel(ctx).finishPrefill(state, plan);
  const hookSeconds = seconds() - t0;
  const [res] = continueGeneration(cpuModel(ctx), [{ ...shared, state, prefillSeconds: shared.prefillSeconds + hookSeconds }], {
    plan, maxNewTokens: c.maxNewTokens, stopTokenIds: ctx.stopTokenIds, chunkSize: c.chunkSize,
  });
  return res;
}

function cpuModel(ctx: ModelContext): TransformerModel {
  if (!ctx.model) throw new Error('internal: the CPU engine was asked for on a GPU run');
  return ctx.model;
}

/** Lets signal handlers, timers and messages run between examples. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs slots against one results database, loading each model once. */
export class SlotRunner {
  private readonly models = new Map<string, Omit<ModelContext, 'task'>>();

  constructor(
    private readonly db: ResultsDb,
    private readonly runId: number,
    private readonly getTask: TaskLookup,
    private readonly options: { dataDir?: string; sharePrefill: boolean; backend?: ResolvedBackend },
  ) {}

  private get onDevice(): boolean {
    return this.options.backend === 'cuda';
  }

  private async modelContext(ref: ModelRef, log: (line: string) => void): Promise<Omit<ModelContext, 'task'>> {
    const known = this.models.get(ref.name);
    if (known) return known;
    const ckpt = loadCheckpoint(ref.path);
    this.db.recordModel(ref.name, ckpt.dir, flopsShape(ckpt.config));
    const allLayers = ckpt.config.layerTypes.map((_, l) => l);
    const device = this.onDevice ? await (await import('./device-engine.js')).openDeviceEngine(ckpt) : null;
    const ctx = {
      model: device ? null : new TransformerModel(ckpt.config, ckpt.weights),
      device,
      ckpt,
      stopTokenIds: collectStopTokenIds(ckpt.tokenizer, ckpt.stopTokenIds),
      allLayers,
      fullLayers: allLayers.filter((l) => ckpt.config.layerTypes[l] === 'full'),
    };
    this.models.set(ref.name, ctx);
    log(`${ref.name}: loaded ${ckpt.dir}${device ? ` ${device.description}` : ''}`);
    return ctx;
  }

  /** Frees what the models hold outside the JS heap (the GPU's weights and context). */
  dispose(): void {
    for (const ctx of this.models.values()) ctx.device?.dispose();
    this.models.clear();
  }

  /** Runs the slot; returns false when `shouldStop` ended it early. */
  async runSlot(slot: Slot, events: SlotEvents): Promise<boolean> {
    const { task: taskLabel, length, seed, index: i } = slot;
    const modelName = slot.model.name;
    const task = this.getTask(slot.taskName);
    const ctx: ModelContext = { ...(await this.modelContext(slot.model, events.log)), task };
    // QA tasks ask the questions that fit the experiment's shortest length, unless the entry says otherwise.
    const qaFilter = 'questionFilterLength' in task.defaults ? { questionFilterLength: slot.questionFilterLength } : {};
    const params = { ...qaFilter, ...slot.taskParams };
    let ex: TaskExample;
    try {
      [ex] = task.generate({ tokenizer: ctx.ckpt.tokenizer, length, count: 1, firstIndex: i, seed, dataDir: this.options.dataDir, params });
      this.db.clearBuildFailure(modelName, taskLabel, length, i);
    } catch (e) {
      const error = (e as Error).message;
      events.buildFailure({ model: modelName, task: taskLabel, length, index: i, error });
      this.db.recordBuildFailure({ model: modelName, task: taskLabel, length, exampleIndex: i, error });
      events.log(`${modelName} ${taskLabel} n=${length} example ${i}: cannot be built: ${error}`);
      events.finished(slot.configs.length, true);
      return true;
    }
    const due = slot.configs.map((c) => ({ c, plan: planFor(c) }));
    const sharing = this.options.sharePrefill && !ctx.device ? due.filter((d) => sharesDensePrefill(d.plan)) : [];
    let shared: PrefilledSequence | null = null;
    for (const { c, plan } of due) {
      events.start(c.key);
      await yieldToEventLoop();
      if (events.shouldStop()) return false;
      let res: SequenceResult;
      if (ctx.device) {
        res = generateOnDevice(ctx.device, c, ex.inputIds, ctx.stopTokenIds);
      } else if (sharing.some((d) => d.c === c)) {
        shared ??= sharedDensePrefill(ctx, ex.inputIds, c.chunkSize, Math.max(0, ...sharing.map((d) => d.plan.decode.observationWindow)));
        res = continueFromShared(ctx, shared, plan, c);
      } else {
        [res] = generateTokens(cpuModel(ctx), [ex.inputIds], { plan, maxNewTokens: c.maxNewTokens, stopTokenIds: ctx.stopTokenIds, chunkSize: c.chunkSize });
      }
      this.db.record(exampleRecord(ctx, c, i, ex, res, this.runId));
      events.finished(1, false);
    }
    return true;
  }
}

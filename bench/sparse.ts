/**
 * Sparse attention on the GPU against our dense kernels (issue 9): every method of the GPU method
 * registry (src/backends/cuda/methods), driven through the method contract only — factory.create on
 * a Llama-3.1-8B head shape (32 query heads, 8 KV heads, D = 128), random bf16 q/k/v made on the
 * device, one layer's DeviceLayerKvCache of n rows — at each target sparsity s and length n, next to
 * the dense method of the same phase on the same inputs.
 *
 *   prefill: the whole prompt in one call (queries 0 .. n − 1). Reported: achieved sparsity (from the
 *            method's pair counts), the estimation's device time (EstimationTiming, when the method
 *            has it), the rest of the call ("attention"), dense flash prefill, and the ratio of
 *            attention to the ideal (1 − s) · dense.
 *   decode:  afterPrefill with random window queries first (methods with an observation window),
 *            then one-token steps at positions n, n + 1, ... Each step goes to the next of several
 *            layers (one cache copy each, enough that the rows a step reads are not in L2 from the
 *            previous visit); every layer is visited once before timing starts. Reported: step time,
 *            dense step, ratio to (1 − s) · dense, and the bandwidth on the bytes read — K and V
 *            rows of the largest selection of each GQA group (from the counts) — next to a
 *            device-to-device copy of the same bytes (GB/s read + written, as bench attention).
 * Times are device time between events around each call, host launch gaps included (a method may
 * read small lists back between its kernels, so calls are not captured into graphs); medians.
 * The first call of every case also checks sampled output rows for NaN (outputs are poisoned).
 *
 * Usage: npm run bench -- sparse [--lengths 16384,32768,65536,131072] [--sparsities 0.5,0.8,0.9,0.95]
 *        [--methods a,b] [--phases prefill,decode] [--repeats N] [--time-budget S] [--out FILE]
 *        [--block-sparse-chunks 16,64]
 * --block-sparse-chunks: block_sparse once per chunk size c (default 16, the SPEC's); rows of another c
 * are labelled `block_sparse c=<c>` (c = 64: the 64 rows of a wgmma warpgroup share one list).
 * Lengths whose buffers would not fit the free device memory, and cases past the time budget
 * (default 480 s, inside the device's 10-minute limit), are skipped and listed. Prints a skip line
 * where there is no CUDA device.
 */
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { BF16_NAN_BITS } from '../src/backends/cuda/bf16.js';
import type { DevicePtr } from '../src/backends/cuda/context.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type {
  DeviceAttentionShape, DeviceDecodeMethod, DevicePrefillMethod,
} from '../src/backends/cuda/methods/contract.js';
import { denseDecodeDeviceFactory, densePrefillDeviceFactory } from '../src/backends/cuda/methods/dense.js';
import { type DeviceMethodEntry, checkDeviceMethod, listDeviceMethods } from '../src/backends/cuda/methods/index.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import type { HeadCounts } from '../src/engine/attention.js';
import { parseModelConfig } from '../src/engine/config.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { timeGraphStep } from './decode-graph-step.js';
import { MODEL_SHAPES } from './model.js';
import {
  type PrefillMeasurement, achievedOf, estimationOf, fmt, freeBytes, hasNaN, measurePrefill, median,
} from './sparse-prefill-measure.js';
import { defineBenchArgs, int, intList, labels, num, sparsityList, text } from './bench-args.js';
import { RunLedger, benchEntry, pickByIds, printRunEnd, runIfDirect, writeJsonReport } from './bench-run.js';

type Phase = 'prefill' | 'decode';

interface Options {
  lengths: number[];
  sparsities: number[];
  methods: string[] | null;
  phases: Phase[];
  repeats: number;
  timeBudgetS: number;
  out: string | null;
  /** Chunk sizes block_sparse runs with (multiples of 16); [16] by default. */
  blockSparseChunks: number[];
}

export const DEFAULT_LENGTHS = [16384, 32768, 65536, 131072];
/** Random window queries given to afterPrefill (observation windows up to this many tokens). */
const WINDOW_QUERIES = 1024;
export const DEFAULT_SPARSITIES = [0.5, 0.8, 0.9, 0.95];
/** block_sparse's chunk size in the SPEC (and its registry default): rows of it keep the plain method label. */
const SPEC_BLOCK_SPARSE_CHUNK = 16;

/** The command line (`--help` prints it). */
export const SPARSE_BENCH_ARGS = defineBenchArgs('bench sparse', 'Every GPU sparse method through the method contract against the dense method of its phase (Llama-3.1-8B heads, random q/k/v; GPU only).', {
  lengths: intList({ describe: 'prompt / cache lengths', default: DEFAULT_LENGTHS, atLeast: 64, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: DEFAULT_SPARSITIES }),
  methods: labels({ describe: 'GPU methods (default all)' }),
  phases: labels({ describe: 'phases', choices: ['prefill', 'decode'], default: ['prefill', 'decode'] }),
  repeats: int({ describe: 'timed calls per case (at most 3 above 32K)', default: 5, atLeast: 1, noun: 'repeat count' }),
  'time-budget': num({ describe: 'seconds after which the remaining cases are skipped', placeholder: 'S', default: 480, above: 0, noun: 'number of seconds' }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
  'block-sparse-chunks': intList({ describe: 'block_sparse once per chunk size', default: [SPEC_BLOCK_SPARSE_CHUNK], multipleOf: 16, noun: 'chunk size' }),
});

export function parseSparseBenchArgs(argv: string[]): Options {
  const { timeBudget, blockSparseChunks, ...rest } = SPARSE_BENCH_ARGS.parse(argv);
  return { ...rest, timeBudgetS: timeBudget, blockSparseChunks: [...new Set(blockSparseChunks)] };
}

/** One configuration of a method the bench runs: its row label and the parameters it is created with. */
export interface MethodConfiguration { label: string; params?: Record<string, unknown> }

/**
 * The configurations a prefill method runs in: block_sparse once per --block-sparse-chunks size (the
 * SPEC's c = 16 under the plain method id, another c as `block_sparse c=<c>`); every other method once,
 * with its defaults.
 */
export function prefillConfigurations(methodId: string, o: Pick<Options, 'blockSparseChunks'>): MethodConfiguration[] {
  if (methodId !== 'block_sparse') return [{ label: methodId }];
  return o.blockSparseChunks.map((c) => (c === SPEC_BLOCK_SPARSE_CHUNK ? { label: methodId } : { label: `${methodId} c=${c}`, params: { chunkSize: c } }));
}

/** The Llama-3.1-8B shape the grid runs on (H 32, Hkv 8, D 128). */
function benchConfig(): ModelConfig {
  return parseModelConfig(MODEL_SHAPES['llama3.1-8b'], 'llama3.1-8b');
}

export interface PrefillCase {
  method: string; n: number; s: number; achieved: number; estimationMs: number | null; totalMs: number; attentionMs: number;
  denseMs: number; idealMs: number; ratio: number;
  /** attention / ((1 − achieved)·dense): the kernel against the pairs it actually skipped. */
  ratioAchieved: number;
}
export interface DecodeCase {
  method: string; n: number; s: number; achieved: number; estimationMs: number | null; hookMs: number | null; stepMs: number;
  denseMs: number; idealMs: number; ratio: number; ratioAchieved: number; bytes: number; gbps: number; copyGbps: number; copyRatio: number; layers: number;
  /**
   * The step less its own per-step estimation (Quest's page selection; = stepMs for methods that
   * estimate once after prefill or not at all), and the read rate over it: the decode over the selection
   * against a copy of the same bytes, like with like.
   */
  attentionMs: number; attentionGbps: number; attentionCopyRatio: number;
  /**
   * The method's graph-replayed step per layer (DeviceDecodeMethod.graphSteps, the model's path; null where
   * it has none): the eager step also pays the host's launches (bench/decode-graph-step.ts).
   */
  graphStepMs: number | null;
}
export interface Skipped { phase: Phase; n: number; method: string | null; s: number | null; reason: string }

/** The run: its failures, skips and time budget (RunLedger), and how it measures each phase. */
class Bench extends RunLedger<Skipped> {
  readonly config = benchConfig();
  readonly shape: DeviceAttentionShape;
  readonly prefill: PrefillCase[] = [];
  readonly decode: DecodeCase[] = [];
  private readonly ops: ModelOpsKernels;
  private seed = 1;

  constructor(readonly rt: CudaRuntime, readonly o: Options, readonly methods: DeviceMethodEntry[]) {
    super(o.timeBudgetS);
    const c = this.config;
    this.shape = { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, scale: c.attentionScale };
    this.ops = new ModelOpsKernels(rt);
  }

  private random(buf: DevicePtr, count: number, halfWidth = 1): void {
    this.ops.fillUniform({ x: buf, n: count, seed: this.seed++, mean: 0, halfWidth });
  }

  /** A cache of `capacity` rows per KV head, every row random, holding n rows. */
  private randomCache(capacity: number, n: number): DeviceLayerKvCache {
    const c = this.config;
    const cache = new DeviceLayerKvCache(this.rt, c.numKvHeads, c.headDim, capacity);
    this.random(cache.keys.ptr, c.numKvHeads * capacity * c.headDim);
    this.random(cache.values.ptr, c.numKvHeads * capacity * c.headDim);
    cache.length = n; // rows were written directly, not appended
    return cache;
  }

  skipCase(phase: Phase, n: number, method: string | null, s: number | null, reason: string): void {
    this.skip({ phase, n, method, s, reason }, `${phase} n=${n}${method ? ` ${method}` : ''}${s !== null ? ` s=${s}` : ''}: ${reason}`);
  }

  private methodsOf(phase: Phase): DeviceMethodEntry[] {
    return this.methods.filter((m) => m.phase === phase);
  }

  /** Checks (CPU registry options, shape) and creates the method, or records why not. */
  private create(
    entry: DeviceMethodEntry, n: number, s: number, config: MethodConfiguration = { label: entry.factory.methodId },
  ): DevicePrefillMethod | DeviceDecodeMethod | null {
    const id = entry.factory.methodId;
    const options = { sparsity: s, ...(config.params ? { params: config.params } : {}) };
    try {
      checkDeviceMethod(this.config, id, options);
      return entry.factory.create(this.rt, this.config, options);
    } catch (e) {
      this.fail(`${entry.phase} ${config.label} n=${n} s=${s} (create)`, e);
      return null;
    }
  }

  runPrefill(n: number): void {
    const { numHeads: H, headDim: D } = this.shape;
    const rowElements = H * D;
    const entries = this.methodsOf('prefill');
    // q, out, one cache; the methods' own scratch (estimation scores) is of the order of q.
    const need = 2 * n * rowElements * 2 + 2 * this.config.numKvHeads * n * D * 2;
    if (2.5 * need > freeBytes(this.rt)) return this.skipCase('prefill', n, null, null, `needs ~${(need / 2 ** 30).toFixed(1)} GiB plus method scratch, ${(freeBytes(this.rt) / 2 ** 30).toFixed(1)} GiB free`);
    const rt = this.rt;
    const q = rt.pool.acquire(n * rowElements * 2);
    const out = rt.pool.acquire(n * rowElements * 2);
    const cache = this.randomCache(n, n);
    this.random(q.ptr, n * rowElements);
    const repeats = n > 32768 ? Math.max(1, Math.min(this.o.repeats, 3)) : this.o.repeats;
    const call = { layer: 0, shape: this.shape, q: q.ptr, qRowStride: rowElements, numQueries: n, queryStart: 0, cache, out: out.ptr, isLastChunk: true };
    const measure = (method: DevicePrefillMethod, label: string): PrefillMeasurement | null => {
      try {
        return measurePrefill(rt, method, call, repeats);
      } catch (e) {
        this.fail(`prefill ${label} n=${n}`, e);
        return null;
      }
    };
    try {
      const dense = densePrefillDeviceFactory.create(rt, this.config, {});
      const denseRun = measure(dense, 'dense');
      if (!denseRun) return;
      console.log(`prefill n=${n} dense: ${denseRun.ms.toFixed(2)} ms`);
      for (const entry of entries) {
        for (const configuration of prefillConfigurations(entry.factory.methodId, this.o)) {
          for (const s of this.o.sparsities) {
            const id = configuration.label;
            if (this.overBudget()) {
              this.skipCase('prefill', n, id, s, this.budgetReason);
              continue;
            }
            const method = this.create(entry, n, s, configuration) as DevicePrefillMethod | null;
            if (!method) continue;
            const run = measure(method, `${id} s=${s}`);
            method.reset?.();
            if (!run) continue;
            const { estimationMs: est, attentionMs } = run;
            const idealMs = (1 - s) * denseRun.ms;
            const achieved = achievedOf(run.counts);
            const r: PrefillCase = {
              method: id, n, s, achieved, estimationMs: est, totalMs: run.ms, attentionMs, denseMs: denseRun.ms, idealMs,
              ratio: attentionMs / idealMs, ratioAchieved: attentionMs / ((1 - achieved) * denseRun.ms),
            };
            this.prefill.push(r);
            console.log(`prefill ${id} n=${n} s=${s}: achieved ${r.achieved.toFixed(3)}, estimation ${fmt(est)} ms, attention ${attentionMs.toFixed(2)} ms, ` +
              `dense ${denseRun.ms.toFixed(2)} ms, ${r.ratio.toFixed(2)}x ideal`);
          }
        }
      }
    } finally {
      rt.synchronize();
      cache.release();
      rt.pool.release(q);
      rt.pool.release(out);
      rt.pool.trim(); // the next length's buffers are of other sizes: give these back to the driver
    }
  }

  runDecode(n: number): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const rt = this.rt;
    const cacheBytes = 2 * Hkv * (n + 64) * D * 2;
    // Layers (cache copies): enough that a step's rows left L2 (50 MB) before the layer comes round again.
    const layers = Math.max(2, Math.min(64, Math.floor(6e9 / cacheBytes)));
    const stepsPerCase = Math.max(layers, 4 * this.o.repeats);
    // Steps per case: one per layer, the timed ones, then up to as many again read one by one.
    const capacity = n + Math.ceil((layers + 2 * stepsPerCase) / layers) + 1;
    const need = layers * 2 * Hkv * capacity * D * 2;
    if (2 * need > freeBytes(rt)) return this.skipCase('decode', n, null, null, `needs ~${(need / 2 ** 30).toFixed(1)} GiB of caches, ${(freeBytes(rt) / 2 ** 30).toFixed(1)} GiB free`);
    const caches = Array.from({ length: layers }, () => this.randomCache(capacity, n));
    const q = rt.pool.acquire(H * D * 2);
    const out = rt.pool.acquire(H * D * 2);
    this.random(q.ptr, H * D);
    const copyDst = rt.pool.acquire(cacheBytes);
    const entries = this.methodsOf('decode');
    const windowRows = Math.min(n, WINDOW_QUERIES);
    const window: DeviceBuffer = rt.pool.acquire(windowRows * H * D * 2);
    this.random(window.ptr, windowRows * H * D);

    const restart = (): void => {
      for (const c of caches) c.length = n;
    };
    /** One step on layer i % layers, at that cache's next position. */
    const step = (method: DeviceDecodeMethod, i: number, counts?: HeadCounts[]): void => {
      const layer = i % layers;
      const cache = caches[layer];
      const position = cache.length;
      cache.length += 1; // the new token's k/v: its row is random already
      const c = method.decode({ layer, shape: this.shape, q: q.ptr, position, cache, out: out.ptr });
      counts?.push(c);
    };
    const measure = (method: DeviceDecodeMethod, label: string): {
      counts: HeadCounts; ms: number; hookMs: number | null; hookEst: number | null; stepEstMs: number | null; graphMs: number | null;
    } | null => {
      try {
        restart();
        let hookMs: number | null = null, hookEst: number | null = null;
        const W = method.observationWindow;
        if (W > 0 && method.afterPrefill) {
          if (Math.min(W, n) > windowRows) throw new Error(`observation window ${W} exceeds the bench's ${windowRows} random queries`);
          const hook = (layer: number) => method.afterPrefill!({
            layer, shape: this.shape, windowQueries: window.ptr, windowLength: Math.min(W, n), promptLength: n, cache: caches[layer],
          });
          // Layer 0's hook compiles the kernels; the last layer's is the one timed.
          for (let l = 0; l < layers - 1; l++) hook(l);
          hookMs = timeOnDevice(rt, () => hook(layers - 1), { warmup: 0, repeats: 1 }).medianMs;
          hookEst = estimationOf(method);
        }
        const counts: HeadCounts[] = [];
        rt.cuda.fill16Async(out.ptr, BF16_NAN_BITS, H * D, rt.stream);
        for (let i = 0; i < layers; i++) step(method, i, counts); // every layer once: lazily built state stays out of the timing
        if (hasNaN(rt, out.ptr, 0, 1, H * D)) throw new Error('NaN in the output');
        let i = layers;
        const t = timeOnDevice(rt, () => step(method, i++), { warmup: 0, repeats: stepsPerCase });
        // A per-step estimation (its clock restarts each step) is read after steps of its own: reading it
        // waits for the step, which must stay out of the back-to-back timing above.
        let stepEstMs: number | null = null;
        if (hookMs === null && estimationOf(method) !== null) {
          const ests: number[] = [];
          for (let r = 0; r < Math.min(stepsPerCase, 2 * this.o.repeats); r++) {
            step(method, i++);
            ests.push(estimationOf(method)!);
          }
          stepEstMs = median(ests);
        }
        // The model's path: the method's graph step (null where it has none), after the eager steps above;
        // it levels the layers with eager steps and uses the cache's spare row.
        const graphUs = timeGraphStep(rt, method, {
          shape: this.shape, caches, q: q.ptr, out: out.ptr, eagerStep: (layer) => step(method, layer), repeats: this.o.repeats,
        });
        return { counts: counts[0], ms: t.medianMs, hookMs, hookEst, stepEstMs, graphMs: graphUs === null ? null : graphUs / 1e3 };
      } catch (e) {
        this.fail(`decode ${label} n=${n}`, e);
        return null;
      }
    };
    /** Bytes a step reads: K and V rows of the largest selection of each GQA group. */
    const bytesRead = (c: HeadCounts): number => {
      const g = H / Hkv;
      let rows = 0;
      for (let kvh = 0; kvh < Hkv; kvh++) {
        let m = 0;
        for (let j = 0; j < g; j++) m = Math.max(m, c.attended[kvh * g + j]);
        rows += m;
      }
      return rows * 2 * D * 2;
    };
    /** GB/s (read + written) of a device-to-device copy of `bytes`, sources rotating over the layers. */
    const copyGbps = (bytes: number): number => {
      let i = 0;
      const t = timeOnDevice(rt, () => {
        const c = caches[i++ % layers];
        rt.cuda.copyDeviceAsync(copyDst.ptr, c.keys.ptr, bytes / 2, rt.stream);
        rt.cuda.copyDeviceAsync(copyDst.ptr + BigInt(bytes / 2), c.values.ptr, bytes / 2, rt.stream);
      }, { warmup: 2, repeats: stepsPerCase });
      return (2 * bytes) / (t.medianMs * 1e-3) / 1e9;
    };
    try {
      const dense = denseDecodeDeviceFactory.create(rt, this.config, {});
      const denseRun = measure(dense, 'dense');
      if (!denseRun) return;
      const denseBytes = bytesRead(denseRun.counts);
      console.log(`decode n=${n} dense: ${(denseRun.ms * 1e3).toFixed(1)} us/step, ${(denseBytes / (denseRun.ms * 1e-3) / 1e9).toFixed(0)} GB/s ` +
        `(copy ${copyGbps(denseBytes).toFixed(0)} GB/s r+w); ${layers} layers`);
      for (const entry of entries) {
        for (const s of this.o.sparsities) {
          const id = entry.factory.methodId;
          if (this.overBudget()) {
            this.skipCase('decode', n, id, s, this.budgetReason);
            continue;
          }
          const method = this.create(entry, n, s) as DeviceDecodeMethod | null;
          if (!method) continue;
          const run = measure(method, `${id} s=${s}`);
          // With a hook, the estimation is the hook's (read right after it); without, the last step's.
          const est = run ? (run.hookMs !== null ? run.hookEst : estimationOf(method)) : null;
          method.reset?.();
          if (!run) continue;
          const bytes = bytesRead(run.counts);
          const gbps = bytes / (run.ms * 1e-3) / 1e9;
          const copy = bytes > 0 ? copyGbps(bytes) : 0;
          const idealMs = (1 - s) * denseRun.ms;
          const achieved = achievedOf(run.counts);
          const attentionMs = run.stepEstMs === null ? run.ms : run.ms - run.stepEstMs;
          const attentionGbps = attentionMs > 0 ? bytes / (attentionMs * 1e-3) / 1e9 : 0;
          const r: DecodeCase = {
            method: id, n, s, achieved, estimationMs: est, hookMs: run.hookMs, stepMs: run.ms, denseMs: denseRun.ms, idealMs,
            ratio: run.ms / idealMs, ratioAchieved: run.ms / ((1 - achieved) * denseRun.ms), bytes, gbps, copyGbps: copy, copyRatio: copy > 0 ? gbps / copy : 0, layers,
            attentionMs, attentionGbps, attentionCopyRatio: copy > 0 ? attentionGbps / copy : 0, graphStepMs: run.graphMs,
          };
          this.decode.push(r);
          console.log(`decode ${id} n=${n} s=${s}: achieved ${r.achieved.toFixed(3)}, estimation ${fmt(est)} ms${run.hookMs !== null ? ` (afterPrefill ${run.hookMs.toFixed(2)} ms)` : ''}, ` +
            `step ${(run.ms * 1e3).toFixed(1)} us, dense ${(denseRun.ms * 1e3).toFixed(1)} us, ${r.ratio.toFixed(2)}x ideal, ` +
            `${gbps.toFixed(0)} GB/s (${(100 * r.copyRatio).toFixed(0)}% of copy ${copy.toFixed(0)} GB/s)` +
            (run.stepEstMs === null ? '' : `; without the per-step estimation ${(attentionMs * 1e3).toFixed(1)} us, ${(100 * r.attentionCopyRatio).toFixed(0)}% of copy`) +
            (run.graphMs === null ? '' : `; graph step ${(run.graphMs * 1e3).toFixed(1)} us`));
        }
      }
    } finally {
      rt.synchronize();
      for (const c of caches) c.release();
      for (const b of [q, out, copyDst, window]) rt.pool.release(b);
      rt.pool.trim();
    }
  }
}

/** The two result tables as markdown (docs/perf.md takes them as they are). */
export function resultTables(prefill: PrefillCase[], decode: DecodeCase[]): string {
  const lines: string[] = [];
  if (prefill.length) {
    lines.push('| prefill method | n | s | achieved s | estimation ms | attention ms | dense ms | attention / ((1 − s)·dense) | at achieved s |',
      '| --- | --: | --: | --: | --: | --: | --: | --: | --: |');
    for (const r of prefill) {
      lines.push(`| ${r.method} | ${r.n} | ${r.s} | ${r.achieved.toFixed(3)} | ${fmt(r.estimationMs)} | ${r.attentionMs.toFixed(2)} | ${r.denseMs.toFixed(2)} | ` +
        `${r.ratio.toFixed(2)} | ${r.ratioAchieved.toFixed(2)} |`);
    }
  }
  if (decode.length) {
    if (lines.length) lines.push('');
    lines.push('| decode method | n | s | achieved s | estimation ms | step µs | dense µs | step / ((1 − s)·dense) | GB/s read | copy GB/s (r+w) | % of copy | attention µs | % of copy (attention) | graph step µs |',
      '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |');
    for (const r of decode) {
      lines.push(`| ${r.method} | ${r.n} | ${r.s} | ${r.achieved.toFixed(3)} | ${fmt(r.estimationMs)} | ${(r.stepMs * 1e3).toFixed(1)} | ${(r.denseMs * 1e3).toFixed(1)} | ` +
        `${r.ratio.toFixed(2)} | ${r.gbps.toFixed(0)} | ${r.copyGbps.toFixed(0)} | ${(100 * r.copyRatio).toFixed(0)} | ` +
        `${(r.attentionMs * 1e3).toFixed(1)} | ${(100 * r.attentionCopyRatio).toFixed(0)} | ${r.graphStepMs === null ? '' : (r.graphStepMs * 1e3).toFixed(1)} |`);
    }
  }
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const o = parseSparseBenchArgs(argv);
  // The registry needs no GPU: an unknown --methods is refused here too.
  const methods = pickByIds(listDeviceMethods(), o.methods, (e) => e.factory.methodId, { flag: '--methods', missing: 'no GPU implementation of', known: 'GPU methods' });
  if (!isCudaAvailable()) {
    console.log(`sparse benchmark skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return 0;
  }
  const rt = new CudaRuntime();
  const info = rt.cuda.info;
  console.log(`device: ${info.name} (${info.arch}, ${info.multiprocessors} SMs); methods: ${methods.map((m) => `${m.factory.methodId} (${m.phase})`).join(', ') || 'none registered'}`);
  const bench = new Bench(rt, o, methods);
  try {
    for (const phase of o.phases) {
      for (const n of o.lengths) {
        if (bench.overBudget()) {
          bench.skipCase(phase, n, null, null, bench.budgetReason);
          continue;
        }
        if (phase === 'prefill') bench.runPrefill(n);
        else bench.runDecode(n);
      }
    }
  } finally {
    rt.synchronize();
  }
  printRunEnd(bench, resultTables(bench.prefill, bench.decode), `total ${bench.elapsedS.toFixed(1)} s`,
    (s) => `${s.phase} n=${s.n}${s.method ? ` ${s.method}` : ''}${s.s !== null ? ` s=${s.s}` : ''} (${s.reason})`);
  writeJsonReport(o.out, {
    device: info, shape: { ...bench.shape, model: 'llama3.1-8b' }, options: o, prefill: bench.prefill, decode: bench.decode,
    skipped: bench.skipped, failures: bench.failures, seconds: bench.elapsedS, compile: rt.compileStats,
  });
  rt.dispose();
  return bench.exitCode;
}

/** Entry for bench/main.ts (`npm run bench -- sparse [args]`). */
export const runSparseBench = benchEntry(main);

runIfDirect(import.meta.url, main);

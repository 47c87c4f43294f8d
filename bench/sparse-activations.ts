/**
 * Sparse prefill on a trained model's activations (issue 9). bench/sparse.ts times every GPU method on
 * random q/k/v, which (a) gives Block-Sparse the worst selection structure there is (every 16-row
 * chunk picks its key chunks independently, so a 64-row product computes up to 4× the pairs it
 * attends) and (b) makes FlexPrefill's adaptive budget miss its target (near-uniform attention).
 * This bench measures the same methods on what a trained model's attention actually looks like:
 *
 *   1. Task prompts from the project's own generators (src/tasks: niah, vt, story_retrieval, cwe, ...)
 *      at n = 4K, 8K, 16K (the organism trained to 16K; 32K runs but is beyond its training: say so),
 *      a few examples each (example i seeded with seed + i, as every run).
 *   2. One dense prefill of the model (default models/organism: 6 layers, H 4, Hkv 2, D 64) on the GPU
 *      in one chunk, with a RecordingDeviceAttention (bench/attention-recorder.ts) copying every
 *      full-attention layer's post-RoPE queries and K/V cache into bench-owned buffers.
 *   3. Per layer, exactly as bench/sparse.ts times a method (bench/sparse-prefill-measure.ts): every
 *      GPU prefill method at each target s, and dense, on those captured tensors; and the same on
 *      random q/k/v of the same shape (bench sparse's data, uniform in [-1, 1)) in the same process,
 *      so the two read side by side.
 *
 * Reported per (data, task, n, method, s), summed over the layers (mean over examples of each
 * example's sum): achieved sparsity (from HeadCounts) with its spread over the layers, estimation
 * ms, attention ms (call − estimation), dense ms, attention / ((1 − achieved)·dense) with its spread
 * over layers, and for block_sparse computed / attended pairs of its 64-row products and of the
 * automatic wgmma tiling's steps (bench/block-sparse-product-union.ts, from the device's own chunk
 * lists read back after each layer; on random lists at 16K these are ≈ 1.78 / 1.80 at s = 0.5, the
 * work model's 1.80 of docs/perf.md).
 *
 * --replicate R (optional second part): every captured layer's heads repeated R times (H·R query
 * heads, Hkv·R KV heads, the GQA group unchanged: query head h of copy r reads KV head
 * r·Hkv + ⌊h / g⌋), rows labelled "replicated ×R" — e.g. R 8 gives the organism H 32 / Hkv 8 / D 64,
 * a Llama-8B-like head count with D 64. Its attention is the organism's, repeated: not a Llama's.
 *
 * Usage: npm run bench -- sparse-activations [--model models/organism] [--tasks niah,vt,story_retrieval,cwe]
 *        [--examples 2] [--lengths 4096,8192,16384] [--sparsities 0.5,0.8,0.9,0.95] [--methods a,b]
 *        [--repeats 5] [--seed 43] [--no-random] [--replicate R] [--warmup 1.5] [--time-budget S] [--out FILE]
 *        (--help: SPARSE_ACTIVATIONS_ARGS below)
 * Prints a skip line where there is no CUDA device.
 */
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import type { DevicePtr } from '../src/backends/cuda/context.js';
import { DenseDeviceAttention } from '../src/backends/cuda/device-attention.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type { DeviceAttentionShape, DevicePrefillCall, DevicePrefillFactory, DevicePrefillMethod } from '../src/backends/cuda/methods/contract.js';
import { densePrefillDeviceFactory } from '../src/backends/cuda/methods/dense.js';
import { checkDeviceMethod, listDeviceMethods } from '../src/backends/cuda/methods/index.js';
import { Cublas } from '../src/backends/cuda/cublas.js';
import { CudaTransformerModel } from '../src/backends/cuda/model.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { StoreWeightSource } from '../src/backends/cuda/weight-source.js';
import type { ChunkLists } from '../src/backends/cuda/block-sparse-layout.js';
import { loadCheckpoint } from '../src/engine/checkpoint.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { getTask } from '../src/tasks/index.js';
import { type CapturedLayer, RecordingDeviceAttention } from './attention-recorder.js';
import { autoTilingWork, productUnionCount } from './block-sparse-product-union.js';
import { type CaseSummary, type DataKind, type LayerResult, sideBySide, summarizeCase, summaryTable } from './sparse-activations-report.js';
import { achievedOf, fmt, freeBytes, measurePrefill } from './sparse-prefill-measure.js';
import { defineBenchArgs, flag, int, intList, labels, num, sparsityList, text } from './bench-args.js';
import { RunLedger, benchEntry, pickByIds, printRunEnd, runIfDirect, writeJsonReport } from './bench-run.js';

export interface SparseActivationsOptions {
  model: string;
  tasks: string[];
  examples: number;
  lengths: number[];
  sparsities: number[];
  methods: string[] | null;
  repeats: number;
  seed: number;
  random: boolean;
  /** Head replication factor of the optional second part (1: none). */
  replicate: number;
  /** Seconds of dense calls before the first measurement (GPU clocks up from idle). */
  warmupS: number;
  timeBudgetS: number;
  out: string | null;
}

/** The command line (`--help` prints it). */
export const SPARSE_ACTIVATIONS_ARGS = defineBenchArgs('bench sparse-activations', 'GPU sparse prefill methods on a trained model\'s captured q/k/v (task prompts) beside random q/k/v of the same shape (GPU only).', {
  model: text({ describe: 'checkpoint folder', placeholder: 'DIR', default: 'models/organism' }),
  tasks: labels({ describe: 'task generators of the prompts', default: ['niah', 'vt', 'story_retrieval', 'cwe'] }),
  examples: int({ describe: 'prompts per task and length', default: 2, atLeast: 1, noun: 'example count' }),
  lengths: intList({ describe: 'prompt lengths (the organism trained to 16K)', default: [4096, 8192, 16384], atLeast: 1024, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.8, 0.9, 0.95] }),
  methods: labels({ describe: 'GPU prefill methods (default all)' }),
  repeats: int({ describe: 'timed calls per layer and case', default: 5, atLeast: 1, noun: 'repeat count' }),
  seed: int({ describe: 'task seed (example i uses seed + i)', default: 43, atLeast: 0, noun: 'seed' }),
  'no-random': flag('leave out the random q/k/v rows'),
  replicate: int({ describe: 'also run every captured layer with its heads repeated R times (1: not)', placeholder: 'R', default: 1, atLeast: 1, noun: 'replication factor' }),
  warmup: num({ describe: 'seconds of dense calls before the first measurement', placeholder: 'S', default: 1.5, atLeast: 0, noun: 'number of seconds' }),
  'time-budget': num({ describe: 'seconds after which the remaining cases are skipped', placeholder: 'S', default: 480, above: 0, noun: 'number of seconds' }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
});

export function parseSparseActivationsArgs(argv: string[]): SparseActivationsOptions {
  const { noRandom, warmup, timeBudget, ...rest } = SPARSE_ACTIVATIONS_ARGS.parse(argv);
  for (const t of rest.tasks) getTask(t); // an unknown task fails here, naming the known ones
  return { ...rest, random: !noRandom, warmupS: warmup, timeBudgetS: timeBudget };
}

/** One layer's prefill inputs as the methods read them. */
interface LayerInput {
  layer: number;
  q: DevicePtr;
  qRowStride: number;
  numQueries: number;
  cache: DeviceLayerKvCache;
}

/** A set of layer inputs (one example's capture, or random) with the shape they have. */
interface InputSet {
  data: DataKind;
  task: string;
  example: number;
  config: ModelConfig;
  layers: LayerInput[];
  /**
   * Whether block_sparse's lists are read back and counted: not for repeated heads (a replicated
   * capture repeats its base's lists; random ×r is random's distribution, at r times the host work).
   */
  countLists: boolean;
  release(): void;
}

/** The block_sparse method's lists of its last call, when the method can give them. */
function lastListsOf(method: DevicePrefillMethod): ChunkLists | null {
  const m = method as Partial<{ downloadLastLists(): ChunkLists }>;
  return typeof m.downloadLastLists === 'function' ? m.downloadLastLists() : null;
}

/** bf16 1.0. */
const BF16_ONE = 0x3f80;

/**
 * The selection matrix that repeats heads through one GEMM: [H·r·D, K] bf16, row (j·H + h)·D + d holding
 * a single 1 at column h·D + d. With X the captured rows [n, K] (K = the fused qkv row, its first H·D
 * columns the queries), X·Wᵀ = [n, H·r·D] is the queries with every head repeated r times, copy j's head
 * h at j·H + h — exactly (each output is one bf16 value times 1 plus zeros, accumulated in fp32).
 */
export function replicationMatrix(H: number, D: number, r: number, K: number): Uint16Array {
  if (![H, D, r, K].every((x) => Number.isInteger(x) && x > 0) || K < H * D) {
    throw new Error(`replication matrix: need positive integers and K >= H·D (got H ${H}, D ${D}, r ${r}, K ${K})`);
  }
  const w = new Uint16Array(H * r * D * K);
  for (let j = 0; j < r; j++) {
    for (let i = 0; i < H * D; i++) w[(j * H * D + i) * K + i] = BF16_ONE;
  }
  return w;
}

/** The config with every layer's heads repeated `r` times (GQA group unchanged). */
function replicatedConfig(c: ModelConfig, r: number): ModelConfig {
  return { ...c, numHeads: c.numHeads * r, numKvHeads: c.numKvHeads * r };
}

/** Throws unless the first and last rows of the replicated q [n, H·r, D] repeat the captured rows' heads bit for bit. */
function checkReplicated(rt: CudaRuntime, c: CapturedLayer, q: DevicePtr, H: number, D: number, r: number): void {
  rt.synchronize();
  for (const t of [0, c.numQueries - 1]) {
    const base = new Uint16Array(H * D), copy = new Uint16Array(H * r * D);
    rt.cuda.download(base, c.q.ptr + BigInt(t * c.qRowStride * 2));
    rt.cuda.download(copy, q + BigInt(t * H * r * D * 2));
    for (let i = 0; i < copy.length; i++) {
      if (copy[i] !== base[i % (H * D)]) throw new Error(`replicate: layer ${c.layer} row ${t} element ${i} is ${copy[i]}, the captured head's is ${base[i % (H * D)]}`);
    }
  }
}

/** The run: its failures, skips and time budget (RunLedger), and how it measures an input set. */
class ActivationsBench extends RunLedger {
  readonly rows: CaseSummary[] = [];
  readonly perLayer: (LayerResult & { data: DataKind; task: string; nominal: number; method: string; s: number })[] = [];
  private readonly ops: ModelOpsKernels;
  private seed = 1;
  private warmedUp = false;

  constructor(readonly rt: CudaRuntime, readonly o: SparseActivationsOptions, readonly methods: DevicePrefillFactory[]) {
    super(o.timeBudgetS);
    this.ops = new ModelOpsKernels(rt);
  }

  /** Random q (packed [n, H, D]) and caches of n rows for each of `layers`, uniform in [-1, 1) as bench sparse's. */
  randomInputs(config: ModelConfig, n: number, layers: number[], task: string, countLists: boolean): InputSet {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = config;
    const rt = this.rt;
    const buffers: DeviceBuffer[] = [];
    const caches: DeviceLayerKvCache[] = [];
    const fill = (ptr: DevicePtr, count: number): void => this.ops.fillUniform({ x: ptr, n: count, seed: this.seed++, mean: 0, halfWidth: 1 });
    const inputs = layers.map((layer) => {
      const q = rt.pool.acquire(n * H * D * 2);
      buffers.push(q);
      fill(q.ptr, n * H * D);
      const cache = new DeviceLayerKvCache(rt, Hkv, D, n);
      caches.push(cache);
      fill(cache.keys.ptr, Hkv * n * D);
      fill(cache.values.ptr, Hkv * n * D);
      cache.length = n; // rows were written directly, not appended
      return { layer, q: q.ptr, qRowStride: H * D, numQueries: n, cache };
    });
    return {
      data: 'random', task, example: 0, config, layers: inputs, countLists,
      release: () => {
        rt.synchronize();
        for (const b of buffers) rt.pool.release(b);
        for (const c of caches) c.release();
      },
    };
  }

  /**
   * The captured layers with each head repeated r times: q packed [n, H·r, D] (copy j's head h at
   * j·H + h; one GEMM with replicationMatrix, first and last rows checked bit for bit) and caches
   * [Hkv·r, n, D] (copy j's KV head k at j·Hkv + k, one copy per head), so query head j·H + h reads
   * KV head ⌊(j·H + h) / g⌋ = j·Hkv + ⌊h / g⌋, copy j's own.
   */
  replicatedInputs(captured: CapturedLayer[], base: ModelConfig, r: number, task: string, example: number): InputSet {
    const config = replicatedConfig(base, r);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = base;
    const rt = this.rt;
    const buffers: DeviceBuffer[] = [];
    const caches: DeviceLayerKvCache[] = [];
    const K = captured[0].qRowStride;
    const selection = rt.pool.acquire(H * r * D * K * 2);
    buffers.push(selection);
    rt.cuda.upload(selection.ptr, replicationMatrix(H, D, r, K));
    const blas = new Cublas(rt.stream);
    const inputs = captured.map((c) => {
      const n = c.numQueries;
      if (c.qRowStride !== K) throw new Error(`replicate: layer ${c.layer} has q rows of ${c.qRowStride} elements, layer ${captured[0].layer} of ${K}`);
      const q = rt.pool.acquire(n * H * r * D * 2);
      buffers.push(q);
      blas.linear({ x: c.q.ptr, w: selection.ptr, y: q.ptr, tokens: n, inFeatures: K, outFeatures: H * r * D });
      checkReplicated(rt, c, q.ptr, H, D, r);
      const cache = new DeviceLayerKvCache(rt, Hkv * r, D, n);
      caches.push(cache);
      const capacity = c.cache.capacity;
      for (let j = 0; j < r; j++) {
        for (let k = 0; k < Hkv; k++) {
          const dst = BigInt(((j * Hkv + k) * n) * D * 2), src = BigInt(k * capacity * D * 2);
          rt.cuda.copyDeviceAsync(cache.keys.ptr + dst, c.cache.keys.ptr + src, n * D * 2, rt.stream);
          rt.cuda.copyDeviceAsync(cache.values.ptr + dst, c.cache.values.ptr + src, n * D * 2, rt.stream);
        }
      }
      cache.length = n;
      return { layer: c.layer, q: q.ptr, qRowStride: H * r * D, numQueries: n, cache };
    });
    rt.synchronize();
    blas.dispose();
    return {
      data: `replicated x${r}`, task, example, config, layers: inputs, countLists: false,
      release: () => {
        rt.synchronize();
        for (const b of buffers) rt.pool.release(b);
        for (const c of caches) c.release();
      },
    };
  }

  /** Times dense and every method × s on each layer of `set`; returns the per-layer results by case. */
  measureSet(set: InputSet, nominal: number, into: Map<string, LayerResult[]>): void {
    const rt = this.rt;
    const c = set.config;
    const shape: DeviceAttentionShape = { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, scale: c.attentionScale };
    const n = set.layers[0].numQueries;
    const out = rt.pool.acquire(n * c.numHeads * c.headDim * 2);
    const label = `${set.data} ${set.task}#${set.example} n=${n}`;
    const callOf = (l: LayerInput): DevicePrefillCall => ({
      layer: l.layer, shape, q: l.q, qRowStride: l.qRowStride, numQueries: l.numQueries, queryStart: 0, cache: l.cache, out: out.ptr, isLastChunk: true,
    });
    const record = (method: string, s: number, r: LayerResult): void => {
      const key = JSON.stringify([set.data, set.task, nominal, method, s]);
      const list = into.get(key) ?? [];
      list.push(r);
      into.set(key, list);
      this.perLayer.push({ ...r, data: set.data, task: set.task, nominal, method, s });
    };
    try {
      const denseMs = new Map<number, number>();
      const dense = densePrefillDeviceFactory.create(rt, c, {});
      if (!this.warmedUp) {
        // The first set would otherwise run while the GPU's clocks still ramp up from idle.
        const t0 = performance.now();
        let calls = 0;
        while (performance.now() - t0 < this.o.warmupS * 1000) {
          dense.prefill(callOf(set.layers[0]));
          if (++calls % 16 === 0) rt.synchronize();
        }
        rt.synchronize();
        this.warmedUp = true;
        console.log(`warm-up: ${calls} dense calls in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
      for (const l of set.layers) {
        try {
          denseMs.set(l.layer, measurePrefill(rt, dense, callOf(l), this.o.repeats).ms);
        } catch (e) {
          this.fail(`${label} dense layer ${l.layer}`, e);
          return;
        }
      }
      dense.reset?.();
      for (const factory of this.methods) {
        const id = factory.methodId;
        for (const s of this.o.sparsities) {
          if (this.overBudget()) {
            this.skip(`${label} ${id} s=${s}: ${this.budgetReason}`);
            continue;
          }
          let method: DevicePrefillMethod;
          try {
            checkDeviceMethod(c, id, { sparsity: s });
            method = factory.create(rt, c, { sparsity: s });
          } catch (e) {
            this.fail(`${label} ${id} s=${s} (create)`, e);
            continue;
          }
          try {
            // Lists are read back per layer (the method reuses its buffer) but counted after the last
            // layer: host work between timed layers would leave the GPU idle and its clocks lower.
            const measured: { result: LayerResult; lists: ChunkLists | null }[] = [];
            for (const l of set.layers) {
              const m = measurePrefill(rt, method, callOf(l), this.o.repeats);
              const lists = id === 'block_sparse' && set.countLists ? lastListsOf(method) : null;
              let attended = 0, denseCount = 0;
              for (let h = 0; h < m.counts.attended.length; h++) {
                attended += m.counts.attended[h];
                denseCount += m.counts.dense[h];
              }
              measured.push({
                lists,
                result: {
                  example: set.example, layer: l.layer, n, attended, dense: denseCount, estimationMs: m.estimationMs, attentionMs: m.attentionMs,
                  denseMs: denseMs.get(l.layer)!, union: null, tiling: null,
                },
              });
              if (l === set.layers[set.layers.length - 1]) {
                console.log(`${label} ${id} s=${s} layer ${l.layer}: achieved ${achievedOf(m.counts).toFixed(3)}, estimation ${fmt(m.estimationMs)} ms, ` +
                  `attention ${m.attentionMs.toFixed(3)} ms, dense ${denseMs.get(l.layer)!.toFixed(3)} ms [${this.elapsedS.toFixed(1)} s]`);
              }
            }
            for (const { result, lists } of measured) {
              record(id, s, lists ? { ...result, union: productUnionCount(lists), tiling: autoTilingWork(lists, this.rt.cuda.info.multiprocessors) } : result);
            }
          } catch (e) {
            this.fail(`${label} ${id} s=${s}`, e);
          } finally {
            method.reset?.();
          }
        }
      }
    } finally {
      rt.synchronize();
      rt.pool.release(out);
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const o = parseSparseActivationsArgs(argv);
  // The registry needs no GPU: an unknown --methods is refused here too.
  const prefillMethods = listDeviceMethods().flatMap((e) => (e.phase === 'prefill' ? [e.factory] : []));
  const methods = pickByIds(prefillMethods, o.methods, (f) => f.methodId, { flag: '--methods', missing: 'no GPU prefill method', known: 'GPU prefill methods' });
  if (!isCudaAvailable()) {
    console.log(`sparse-activations benchmark skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return 0;
  }
  const ckpt = loadCheckpoint(o.model);
  const config = ckpt.config;
  const fullLayers = config.layerTypes.flatMap((t, l) => (t === 'full' ? [l] : []));
  const rt = new CudaRuntime();
  const info = rt.cuda.info;
  console.log(`device: ${info.name} (${info.arch}, ${info.multiprocessors} SMs); model ${ckpt.dir}: ${config.numLayers} layers (${fullLayers.length} full attention), ` +
    `H ${config.numHeads}, Hkv ${config.numKvHeads}, D ${config.headDim}; methods: ${methods.map((f) => f.methodId).join(', ')}`);
  const recorder = new RecordingDeviceAttention(new DenseDeviceAttention(rt, config), {
    acquire: (bytes) => rt.pool.acquire(bytes),
    release: (buf) => rt.pool.release(buf),
    copy: (dst, src, bytes) => rt.cuda.copyDeviceAsync(dst, src, bytes, rt.stream),
    newCache: (Hkv, D, capacity) => new DeviceLayerKvCache(rt, Hkv, D, capacity),
  });
  const model = new CudaTransformerModel(rt, config, new StoreWeightSource(rt, ckpt.weights), recorder);
  const bench = new ActivationsBench(rt, o, methods);
  const results = new Map<string, LayerResult[]>();
  const lengthsOf = new Map<string, number[]>();
  const noteLength = (data: DataKind, task: string, n: number, length: number): void => {
    const key = JSON.stringify([data, task, n]);
    lengthsOf.set(key, [...(lengthsOf.get(key) ?? []), length]);
  };
  try {
    for (const n of o.lengths) {
      if (n > 16384) console.log(`note: n=${n} is beyond the organism's training length (16K): its attention there is extrapolated`);
      let randomLength: number | null = null;
      for (const task of o.tasks) {
        if (bench.overBudget()) {
          bench.skip(`${task} n=${n}: ${bench.budgetReason}`);
          continue;
        }
        let examples;
        try {
          examples = getTask(task).generate({ tokenizer: ckpt.tokenizer, length: n, count: o.examples, seed: o.seed });
        } catch (e) {
          bench.fail(`${task} n=${n} (generate)`, e);
          continue;
        }
        for (const ex of examples) {
          if (bench.overBudget()) {
            bench.skip(`${task}#${ex.index} n=${n}: ${bench.budgetReason}`);
            continue;
          }
          const len = ex.inputIds.length;
          randomLength ??= len;
          const need = fullLayers.length * len * ((config.numHeads + 2 * config.numKvHeads) * config.headDim * 2 + 2 * config.numKvHeads * config.headDim * 2) * (1 + o.replicate);
          if (2 * need > freeBytes(rt)) {
            bench.skip(`${task}#${ex.index} n=${n}: needs ~${(need / 2 ** 30).toFixed(1)} GiB of captures, ${(freeBytes(rt) / 2 ** 30).toFixed(1)} GiB free`);
            continue;
          }
          const seq = model.newSequence(len);
          let prefillError: unknown = null;
          try {
            const t0 = performance.now();
            recorder.arm();
            const logits = model.prefill(seq, ex.inputIds, len);
            rt.pool.release(logits);
            rt.synchronize();
            console.log(`captured ${task}#${ex.index} n=${len} (target ${n}): dense prefill with the recorder ${(performance.now() - t0).toFixed(1)} ms`);
          } catch (e) {
            prefillError = e;
          }
          const captured = recorder.take();
          seq.release();
          try {
            if (prefillError !== null) throw prefillError;
            if (captured.length !== fullLayers.length) throw new Error(`recorded ${captured.length} layers, the model has ${fullLayers.length} full-attention layers`);
            noteLength('activations', task, n, len);
            bench.measureSet({
              data: 'activations', task, example: ex.index, config, countLists: true, release: () => {},
              layers: captured.map((c) => ({ layer: c.layer, q: c.q.ptr, qRowStride: c.qRowStride, numQueries: c.numQueries, cache: c.cache })),
            }, n, results);
            if (o.replicate > 1 && !bench.overBudget()) {
              const set = bench.replicatedInputs(captured, config, o.replicate, task, ex.index);
              try {
                noteLength(set.data, task, n, len);
                bench.measureSet(set, n, results);
              } finally {
                set.release();
              }
            }
          } catch (e) {
            bench.fail(`${task}#${ex.index} n=${n}`, e);
          } finally {
            rt.synchronize();
            recorder.releaseAll(captured);
          }
        }
      }
      // Random q/k/v at the first example's length: at the model's heads, and at the replicated heads too.
      const randomShapes = o.replicate > 1 ? [[config, 'random'], [replicatedConfig(config, o.replicate), `random x${o.replicate}`]] as const : [[config, 'random']] as const;
      for (const [shape, label] of randomShapes) {
        if (!o.random || bench.overBudget()) break;
        const len = randomLength ?? n;
        const set = bench.randomInputs(shape, len, fullLayers, label, shape === config);
        try {
          noteLength('random', label, n, len);
          bench.measureSet(set, n, results);
        } finally {
          set.release();
        }
      }
      rt.pool.trim();
    }
  } finally {
    rt.synchronize();
  }
  for (const [key, list] of results) {
    const [data, task, n, method, s] = JSON.parse(key) as [DataKind, string, number, string, number];
    bench.rows.push(summarizeCase({ data, task, n, method, s }, lengthsOf.get(JSON.stringify([data, task, n])) ?? [], list));
  }
  bench.rows.sort(sideBySide(methods.map((f) => f.methodId), o.tasks));
  printRunEnd(bench, summaryTable(bench.rows), `compile: ${JSON.stringify(rt.compileStats)}; total ${bench.elapsedS.toFixed(1)} s`);
  writeJsonReport(o.out, {
    device: info, model: { dir: ckpt.dir, numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim, layers: fullLayers },
    options: o, rows: bench.rows, perLayer: bench.perLayer, skipped: bench.skipped, failures: bench.failures, seconds: bench.elapsedS, compile: rt.compileStats,
  });
  model.dispose();
  rt.dispose();
  return bench.exitCode;
}

/** Entry for bench/main.ts (`npm run bench -- sparse-activations [args]`). */
export const runSparseActivationsBench = benchEntry(main);

runIfDirect(import.meta.url, main);

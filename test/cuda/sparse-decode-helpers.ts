/**
 * Shared by the sparse-decode GPU tests: a CPU LayerKvCache and a DeviceLayerKvCache holding the
 * same bf16-rounded rows, the CPU reference of one decode query over per-head row ranges, one
 * decode step of a device method checked against the CPU method, and our dense decode kernel's output.
 */
import assert from 'node:assert/strict';
import { RangeList, SparseAttentionScratch, attendSparseRows } from '../../src/backends/cpu/sparse-attention.js';
import type { DevicePtr } from '../../src/backends/cuda/context.js';
import { DecodeAttentionKernel } from '../../src/backends/cuda/kernels/decode-attention.js';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import type { DeviceDecodeMethod } from '../../src/backends/cuda/methods/contract.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import type { AttentionShape, DecodeAttention, HeadCounts } from '../../src/engine/attention.js';
import type { ModelConfig } from '../../src/engine/model-config.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { countNaN, randomBf16Values, relativeError } from './helpers.js';

export interface TwinCaches {
  cpu: LayerKvCache;
  device: DeviceLayerKvCache;
}

export function cpuShape(H: number, Hkv: number, D: number): AttentionShape {
  return { numHeads: H, numKvHeads: Hkv, headDim: D, scale: 1 / Math.sqrt(D), slidingWindow: null, logitSoftcap: null };
}

export function twinCaches(rt: CudaRuntime, Hkv: number, D: number, capacity: number): TwinCaches {
  return { cpu: new LayerKvCache(Hkv, D, capacity), device: new DeviceLayerKvCache(rt, Hkv, D, capacity) };
}

/**
 * Appends T random tokens (keys with amplitude kAmp) to both caches; returns the [T, Hkv, D] keys
 * and values appended.
 */
export function appendRandom(rt: CudaRuntime, c: TwinCaches, T: number, rand: () => number, kAmp = 2): { k: Float32Array; v: Float32Array } {
  const Hkv = c.cpu.numKvHeads, D = c.cpu.headDim;
  const k = randomBf16Values(T * Hkv * D, rand, kAmp);
  const v = randomBf16Values(T * Hkv * D, rand);
  // Positions are device rows (the device cache never moves rows); the CPU cache may hold fewer rows after eviction.
  const start = c.device.length;
  c.cpu.append(k, v, T, start);
  const dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
  c.device.appendTokens({ k: dk.ptr, v: dv.ptr, rowStride: Hkv * D }, T);
  rt.synchronize();
  rt.pool.release(dk);
  rt.pool.release(dv);
  return { k, v };
}

export interface CheckedDecodeStep {
  /** The step's position (the device row of the new token). */
  p: number;
  q: Float32Array; // [H, D]
  /** The CPU method's output, [H, D]. */
  ref: Float32Array;
  counts: HeadCounts;
  err: number;
}

/**
 * One decode step on both sides: a random token appended to both caches, then the CPU method and the
 * device method (output poisoned first) on the same random query (amplitude 2). Asserts every output
 * element written, equal counts and a relative error under `tolerance`.
 */
export function checkDecodeStep(
  rt: CudaRuntime, caches: TwinCaches, cpu: DecodeAttention, gpu: DeviceDecodeMethod,
  H: number, Hkv: number, D: number, layer: number, rand: () => number, tolerance: number,
): CheckedDecodeStep {
  const shape = cpuShape(H, Hkv, D);
  const p = caches.device.length;
  appendRandom(rt, caches, 1, rand);
  const q = randomBf16Values(H * D, rand, 2);
  const ref = new Float32Array(H * D);
  const cpuCounts = cpu.decode({ layer, shape, query: q, position: p, cache: caches.cpu, out: ref });
  const dq = uploadAsBf16(rt, q);
  const dout = poisonedBf16(rt, H * D);
  const counts = gpu.decode({ layer, shape, q: dq.ptr, position: p, cache: caches.device, out: dout.ptr });
  const out = downloadBf16(rt, dout, H * D);
  rt.pool.release(dq);
  rt.pool.release(dout);
  assert.equal(countNaN(out), 0, 'every output element must be written');
  assert.deepEqual(counts, cpuCounts, `step at ${p}: counts`);
  const err = relativeError(out, ref);
  assert.ok(err < tolerance, `step at ${p}: relative error ${err}`);
  return { p, q, ref, counts, err };
}

/** Our dense decode kernel's output [H, D] for the device query q ([H, D]) over the cache rows [0, kvLen). */
export function denseDecodeOutput(
  rt: CudaRuntime, H: number, Hkv: number, D: number, q: DevicePtr, cache: DeviceLayerKvCache, kvLen: number,
): Float32Array {
  const out = poisonedBf16(rt, H * D);
  new DecodeAttentionKernel(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }).run({
    q, k: cache.keys.ptr, v: cache.values.ptr, out: out.ptr, kvLen, kvStride: cache.capacity, scale: 1 / Math.sqrt(D),
  });
  const result = downloadBf16(rt, out, H * D);
  rt.pool.release(out);
  return result;
}

/**
 * Reference decode: query head h reads, of KV head h / g, the rows in ranges(unit) where unit is the
 * KV head (or the query head when perQueryHead). keys/values: per KV head [rows, D]. Returns [H, D].
 */
export function referenceRangeDecode(
  q: Float32Array, keys: Float32Array[], values: Float32Array[], H: number, Hkv: number, D: number, scale: number,
  ranges: (unit: number) => Array<[number, number]>, perQueryHead = false,
): Float32Array {
  const out = new Float32Array(H * D);
  const g = H / Hkv;
  const list = new RangeList();
  const scratch = new SparseAttentionScratch();
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / g);
    list.clear();
    for (const [a, b] of ranges(perQueryHead ? h : kvh)) list.push(a, b);
    attendSparseRows(q, h * D, keys[kvh], values[kvh], D, list.data, list.count, null, 0, scale, null, out, h * D, scratch);
  }
  return out;
}

/**
 * A llama-shaped ModelConfig with the given attention shape (only the attention fields matter to the
 * device methods). Written out here so that these tests load no config parser (the GPU machine's
 * slim node_modules has koffi alone).
 */
export function attentionConfig(H: number, Hkv: number, D: number): ModelConfig {
  return {
    architecture: 'llama', hfArchitecture: 'LlamaForCausalLM', vocabSize: 64, hiddenSize: H * D, intermediateSize: 4 * H * D, numLayers: 4,
    numHeads: H, numKvHeads: Hkv, headDim: D, maxPositionEmbeddings: 1 << 17, rmsNormEps: 1e-5, tieWordEmbeddings: false,
    attentionBias: false, qkNorm: false, normPlusOne: false, sandwichNorms: false, embeddingScale: 1, mlpActivation: 'silu',
    attentionScale: 1 / Math.sqrt(D), finalLogitSoftcap: null, attnLogitSoftcap: null, layerTypes: ['full', 'full', 'full', 'full'],
    slidingWindow: null, rope: { theta: 500000, scaling: { kind: 'none' } }, ropeLocal: { theta: 500000, scaling: { kind: 'none' } },
    bosTokenId: 1, eosTokenIds: [2], torchDtype: 'bfloat16',
  };
}

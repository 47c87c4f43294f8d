/**
 * Random inputs of the block-sparse prefill GPU tests (mma.sync and wgmma kernels) and the engine's CPU
 * cache holding the same rows, for the CPU method that serves as their reference.
 */
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { randomBf16Values, randomGenerator } from './helpers.js';

export interface BlockSparseInputs {
  n: number; H: number; Hkv: number; D: number; kvStride: number;
  q: Float32Array; // [n, H, D]
  k: Float32Array; // [Hkv, kvStride, D]
  v: Float32Array; // [Hkv, kvStride, D]
}

/** bf16-representable q, k, v; the cache has `extraRows` rows past the prompt (the kernel must not read them). */
export function randomBlockSparseInputs(n: number, H: number, Hkv: number, D: number, extraRows: number, seed: number): BlockSparseInputs {
  const rand = randomGenerator(seed);
  const kvStride = n + extraRows;
  return {
    n, H, Hkv, D, kvStride,
    q: randomBf16Values(n * H * D, rand, 2),
    k: randomBf16Values(Hkv * kvStride * D, rand, 2),
    v: randomBf16Values(Hkv * kvStride * D, rand),
  };
}

/** The engine's CPU cache of the same rows (append takes [n, Hkv, D]). */
export function cpuCacheOf(x: BlockSparseInputs): LayerKvCache {
  const { n, Hkv, D, kvStride } = x;
  const kt = new Float32Array(n * Hkv * D), vt = new Float32Array(n * Hkv * D);
  for (let kvh = 0; kvh < Hkv; kvh++) {
    for (let r = 0; r < n; r++) {
      kt.set(x.k.subarray((kvh * kvStride + r) * D, (kvh * kvStride + r + 1) * D), (r * Hkv + kvh) * D);
      vt.set(x.v.subarray((kvh * kvStride + r) * D, (kvh * kvStride + r + 1) * D), (r * Hkv + kvh) * D);
    }
  }
  const cache = new LayerKvCache(Hkv, D, n);
  cache.append(kt, vt, n, 0);
  return cache;
}

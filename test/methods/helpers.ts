/**
 * Test helpers for the attention methods: seeded synthetic q/k/v, caches built directly, and an
 * explicit-mask dense reference (the mask exists only here, on small n).
 */
import type { AttentionShape, HeadCounts, PrefillAttention, DecodeAttention } from '../../src/engine/attention.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { mulberry32 } from '../helpers/tiny-checkpoint.js';

/** mulberry32 (the tiny-checkpoint writer's generator): small, seedable, good enough for tests. */
export const rng = mulberry32;

/** Approximately standard-normal values (sum of uniforms). */
export function randomArray(length: number, random: () => number, scale = 1): Float32Array {
  const a = new Float32Array(length);
  for (let i = 0; i < length; i++) a[i] = (random() + random() + random() - 1.5) * 2 * scale;
  return a;
}

export function shapeOf(H: number, Hkv: number, D: number): AttentionShape {
  return { numHeads: H, numKvHeads: Hkv, headDim: D, scale: 1 / Math.sqrt(D), slidingWindow: null, logitSoftcap: null };
}

export interface Synthetic {
  shape: AttentionShape;
  n: number;
  queries: Float32Array; // [n, H, D]
  keys: Float32Array; // [n, Hkv, D]
  values: Float32Array; // [n, Hkv, D]
}

export function synthetic(n: number, H: number, Hkv: number, D: number, seed: number, qkScale = 1): Synthetic {
  const r = rng(seed);
  return {
    shape: shapeOf(H, Hkv, D),
    n,
    queries: randomArray(n * H * D, r, qkScale),
    keys: randomArray(n * Hkv * D, r, qkScale),
    values: randomArray(n * Hkv * D, r),
  };
}

/**
 * Brute-force attention probabilities of query q (head h) over keys 0..q, straight from the
 * synthetic q/k: the reference the importance estimates are checked against.
 */
export function causalSoftmaxRow(data: Synthetic, h: number, q: number): number[] {
  const { numHeads: H, numKvHeads: Hkv, headDim: D, scale } = data.shape;
  const kvh = Math.floor(h / (H / Hkv));
  const s: number[] = [];
  for (let k = 0; k <= q; k++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += data.queries[(q * H + h) * D + d] * data.keys[(k * Hkv + kvh) * D + d];
    s.push(dot * scale);
  }
  const max = Math.max(...s);
  const e = s.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((w) => w / sum);
}

export function cacheOf(data: Synthetic, rows = data.n): LayerKvCache {
  const { numKvHeads: Hkv, headDim: D } = data.shape;
  const cache = new LayerKvCache(Hkv, D, rows);
  cache.append(data.keys.subarray(0, rows * Hkv * D), data.values.subarray(0, rows * Hkv * D), rows, 0);
  return cache;
}

/** Run a prefill method on the whole prompt. Returns [n, H, D] output and its counts. */
export function runPrefill(method: PrefillAttention, data: Synthetic, layer = 0): { out: Float32Array; counts: HeadCounts } {
  const { n, shape } = data;
  const out = new Float32Array(n * shape.numHeads * shape.headDim);
  const counts = method.prefill({
    layer, shape, queries: data.queries, numQueries: n, queryStart: 0, cache: cacheOf(data), out, isLastChunk: true,
  });
  return { out, counts };
}

/**
 * Explicit-mask reference for prefill: allowed(h, q, k) decides each pair. keys/values: [n, Hkv, D].
 * Returns [n, H, D] and the number of allowed pairs per head.
 */
export function maskedReference(data: Synthetic, allowed: (h: number, q: number, k: number) => boolean): { out: Float32Array; pairs: number[] } {
  const { n, shape } = data;
  const { numHeads: H, numKvHeads: Hkv, headDim: D, scale } = shape;
  const g = H / Hkv;
  const out = new Float32Array(n * H * D);
  const pairs = new Array<number>(H).fill(0);
  const s = new Float64Array(n);
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / g);
    for (let q = 0; q < n; q++) {
      let max = -Infinity;
      for (let k = 0; k < n; k++) {
        if (!allowed(h, q, k)) {
          s[k] = -Infinity;
          continue;
        }
        pairs[h]++;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += data.queries[(q * H + h) * D + d] * data.keys[(k * Hkv + kvh) * D + d];
        s[k] = dot * scale;
        if (s[k] > max) max = s[k];
      }
      let sum = 0;
      const acc = new Float64Array(D);
      for (let k = 0; k < n; k++) {
        if (s[k] === -Infinity) continue;
        const e = Math.exp(s[k] - max);
        sum += e;
        for (let d = 0; d < D; d++) acc[d] += e * data.values[(k * Hkv + kvh) * D + d];
      }
      for (let d = 0; d < D; d++) out[(q * H + h) * D + d] = sum > 0 ? acc[d] / sum : 0;
    }
  }
  return { out, pairs };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Aggregate sparsity 1 - attended / dense over heads. */
export function achievedSparsity(counts: HeadCounts): number {
  let a = 0, d = 0;
  for (let h = 0; h < counts.attended.length; h++) {
    a += counts.attended[h];
    d += counts.dense[h];
  }
  return 1 - a / d;
}

/**
 * Decode driver: a cache holding the prompt (data rows 0..n-1), the afterPrefill hook with the last
 * W prompt queries, then `steps` decode steps with fresh random q/k/v. Returns per-step outputs/counts.
 */
export function runDecode(
  method: DecodeAttention, data: Synthetic, steps: number, seed: number,
): { outs: Float32Array[]; counts: HeadCounts[]; cache: LayerKvCache } {
  const { n, shape } = data;
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
  const cache = cacheOf(data);
  if (method.observationWindow > 0 && method.afterPrefill) {
    const W = Math.min(method.observationWindow, n);
    method.afterPrefill({
      layer: 0, shape, windowQueries: data.queries.subarray((n - W) * H * D, n * H * D), windowLength: W, windowStart: n - W, cache,
    });
  }
  const r = rng(seed);
  const outs: Float32Array[] = [];
  const counts: HeadCounts[] = [];
  for (let step = 0; step < steps; step++) {
    const position = n + step;
    cache.append(randomArray(Hkv * D, r), randomArray(Hkv * D, r), 1, position);
    const query = randomArray(H * D, r);
    const out = new Float32Array(H * D);
    counts.push(method.decode({ layer: 0, shape, query, position, cache, out }));
    outs.push(out);
  }
  return { outs, counts, cache };
}

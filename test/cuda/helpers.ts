/**
 * Shared pieces of the CUDA tests: seeded random bf16-representable data, the CPU reference
 * attention (src/backends/cpu/attention-kernels.ts, float64 accumulation) applied to the same rounded
 * inputs, and the relative error ‖out − ref‖ / ‖ref‖.
 */
import { ScoreScratch, attendRowRange } from '../../src/backends/cpu/attention-kernels.js';
import { roundToBf16InPlace } from '../../src/backends/cuda/bf16.js';
import { symmetricUniform } from '../../bench/seeded-random.js';

/** Deterministic uniform [-1, 1) generator (mulberry32). */
export const randomGenerator = symmetricUniform;

/** [n] random values already rounded to bf16, scaled by `amplitude`. */
export function randomBf16Values(n: number, rand: () => number, amplitude = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rand() * amplitude;
  return roundToBf16InPlace(x);
}

export function relativeError(out: Float32Array, ref: Float32Array): number {
  if (out.length !== ref.length) throw new Error(`length mismatch ${out.length} vs ${ref.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < out.length; i++) {
    const d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return Math.sqrt(num / den);
}

/** A logits row's argmax (lowest index on ties), the gap to the runner-up, and the largest |logit|. */
export function top2(row: Float32Array | number[]): { best: number; margin: number; scale: number } {
  let best = 0, b1 = -Infinity, b2 = -Infinity, scale = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    scale = Math.max(scale, Math.abs(v));
    if (v > b1) {
      b2 = b1;
      b1 = v;
      best = i;
    } else if (v > b2) b2 = v;
  }
  return { best, margin: b1 - b2, scale };
}

export function countNaN(x: Float32Array): number {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (Number.isNaN(x[i])) n++;
  return n;
}

/** [Hkv][rows*D] per-head views of a [Hkv, kvStride, D] cache buffer. */
function headSlices(cache: Float32Array, Hkv: number, kvStride: number, D: number): Float32Array[] {
  return Array.from({ length: Hkv }, (_, h) => cache.subarray(h * kvStride * D, (h + 1) * kvStride * D));
}

/**
 * Reference attention where query t of KV head kvh attends the rows rows(t, kvh) = [lo, hi).
 * q: [T, H, D]; k, v: [Hkv, kvStride, D]. Returns [T, H, D].
 */
export function referenceAttention(
  q: Float32Array, k: Float32Array, v: Float32Array, T: number, H: number, Hkv: number, D: number, kvStride: number,
  scale: number, rows: (t: number, kvh: number) => [number, number],
): Float32Array {
  const out = new Float32Array(T * H * D);
  const ks = headSlices(k, Hkv, kvStride, D);
  const vs = headSlices(v, Hkv, kvStride, D);
  const g = H / Hkv;
  const scratch = new ScoreScratch();
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / g);
      const [lo, hi] = rows(t, kvh);
      attendRowRange(q, (t * H + h) * D, ks[kvh], vs[kvh], D, lo, hi, scale, null, out, (t * H + h) * D, scratch);
    }
  }
  return out;
}

/**
 * Reference causal attention: query t at queryStart + t sees rows [0, min(kvLen, queryStart + t + 1)),
 * and with a sliding window W only rows > position - W.
 */
export function referenceCausalAttention(
  q: Float32Array, k: Float32Array, v: Float32Array,
  T: number, H: number, Hkv: number, D: number, kvStride: number, queryStart: number, kvLen: number, scale: number,
  window: number | null = null,
): Float32Array {
  return referenceAttention(q, k, v, T, H, Hkv, D, kvStride, scale, (t) => {
    const p = queryStart + t;
    return [window === null ? 0 : Math.max(0, p - window + 1), Math.min(kvLen, p + 1)];
  });
}

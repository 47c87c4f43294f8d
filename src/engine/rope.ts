/**
 * Rotary position embeddings with Hugging Face semantics.
 *
 * Layout ("rotate_half"): a head vector x[0..D) is split into halves x1 = x[0..D/2), x2 = x[D/2..D);
 * frequency i rotates the pair (x1[i], x2[i]) by angle position·invFreq[i]:
 *   out[i]       = x1[i]·cos − x2[i]·sin
 *   out[i + D/2] = x2[i]·cos + x1[i]·sin
 * Inverse frequencies, angles and cos/sin are rounded to float32 as transformers computes them in
 * float32 (autocast off), so long positions round the same way.
 */
import type { RopeParameters } from './model-config.js';

const f32 = Math.fround;

/** [D/2] inverse frequencies of the default RoPE: 1 / theta^(2i/D). */
export function defaultInverseFrequencies(theta: number, headDim: number): Float64Array {
  if (headDim % 2 !== 0) throw new Error(`RoPE needs an even head dim, got ${headDim}`);
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(Math.pow(theta, f32((2 * i) / headDim))));
  return inv;
}

/**
 * [D/2] inverse frequencies after the configured scaling.
 * linear: all divided by factor. llama3 (transformers' _compute_llama3_parameters): wavelengths longer
 * than original_max/low_freq_factor are divided by factor, shorter than original_max/high_freq_factor
 * are kept, and those between blend the two with weight smooth = (original_max/wavelen − low)/(high − low).
 */
export function inverseFrequencies(rope: RopeParameters, headDim: number): Float64Array {
  const inv = defaultInverseFrequencies(rope.theta, headDim);
  const s = rope.scaling;
  if (s.kind === 'none') return inv;
  if (s.kind === 'linear') return inv.map((v) => f32(v / s.factor));
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((v) => {
    const wavelen = (2 * Math.PI) / v;
    if (wavelen > lowFreqWavelen) return f32(v / s.factor);
    if (wavelen < highFreqWavelen) return v;
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return f32((1 - smooth) * (v / s.factor) + smooth * v);
  });
}

/** cos/sin per position, computed on demand and cached (positions only grow during generation). */
export class RopeTable {
  readonly half: number;
  private readonly inv: Float64Array;
  private cos = new Float32Array(0);
  private sin = new Float32Array(0);
  private positions = 0;

  constructor(rope: RopeParameters, readonly headDim: number) {
    this.inv = inverseFrequencies(rope, headDim);
    this.half = headDim / 2;
  }

  /** Make sure positions [0, n) are tabulated. */
  private ensure(n: number): void {
    if (n <= this.positions) return;
    const cap = Math.max(n, this.positions * 2, 64);
    const half = this.half;
    const cos = new Float32Array(cap * half);
    const sin = new Float32Array(cap * half);
    cos.set(this.cos);
    sin.set(this.sin);
    for (let p = this.positions; p < cap; p++) {
      for (let i = 0; i < half; i++) {
        const angle = f32(p * this.inv[i]);
        cos[p * half + i] = Math.cos(angle);
        sin[p * half + i] = Math.sin(angle);
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.positions = cap;
  }

  /**
   * Rotate in place x: [T, numHeads, D] where token t is at absolute position positions[t].
   */
  apply(x: Float32Array, numTokens: number, numHeads: number, positions: ArrayLike<number>): void {
    const D = this.headDim;
    const half = this.half;
    let maxPos = 0;
    for (let t = 0; t < numTokens; t++) maxPos = Math.max(maxPos, positions[t]);
    this.ensure(maxPos + 1);
    const cos = this.cos, sin = this.sin;
    for (let t = 0; t < numTokens; t++) {
      const tab = positions[t] * half;
      for (let h = 0; h < numHeads; h++) {
        const base = (t * numHeads + h) * D;
        for (let i = 0; i < half; i++) {
          const c = cos[tab + i], s = sin[tab + i];
          const x1 = x[base + i], x2 = x[base + half + i];
          x[base + i] = x1 * c - x2 * s;
          x[base + half + i] = x2 * c + x1 * s;
        }
      }
    }
  }
}

/**
 * Element-wise and row-wise CPU ops of the transformer (everything except matmul and attention).
 * Rows are contiguous: x is [rows, width] row-major. Reductions accumulate in float64.
 */

/**
 * RMSNorm of each row of x [rows, width] into out (may alias x):
 * out = x / sqrt(mean(x²) + eps) · weight. `weight` already holds the effective multiplier
 * (Gemma's (1 + w) is folded in at load).
 */
export function rmsNormRows(
  x: Float32Array, rows: number, width: number, weight: Float32Array, eps: number, out: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    let ss = 0;
    for (let i = 0; i < width; i++) ss += x[o + i] * x[o + i];
    // float32 like torch.rsqrt on a float32 tensor, so the scale factor rounds as in transformers.
    const inv = Math.fround(1 / Math.sqrt(Math.fround(ss / width) + eps));
    for (let i = 0; i < width; i++) out[o + i] = Math.fround(x[o + i] * inv) * weight[i];
  }
}

/** x += y over the first n elements. */
export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** gelu with the tanh approximation (PyTorch's gelu(approximate='tanh'), HF "gelu_pytorch_tanh"). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/**
 * Gated MLP activation: gateUp is [rows, 2·I] (gate in the first I columns, up in the last I, as the
 * fused projection writes them); out[rows, I] = act(gate) · up.
 */
export function gatedActivation(
  gateUp: Float32Array, rows: number, inter: number, act: (v: number) => number, out: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const g = r * 2 * inter;
    const u = g + inter;
    const o = r * inter;
    for (let i = 0; i < inter; i++) out[o + i] = act(gateUp[g + i]) * gateUp[u + i];
  }
}

/** Round a number to the nearest value representable in the given dtype (round half to even). */
export function roundToDtype(v: number, dtype: 'float32' | 'float16' | 'bfloat16'): number {
  const f = Math.fround(v);
  if (dtype === 'float32') return f;
  if (dtype === 'bfloat16') {
    const buf = new DataView(new ArrayBuffer(4));
    buf.setFloat32(0, f);
    const bits = buf.getUint32(0);
    const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
    buf.setUint32(0, rounded >>> 0);
    return buf.getFloat32(0);
  }
  // float16: 11 significant bits for normal numbers (the only case a scale factor hits).
  if (f === 0 || !Number.isFinite(f)) return f;
  const e = Math.floor(Math.log2(Math.abs(f)));
  const ulp = Math.pow(2, e - 10);
  const q = f / ulp;
  const r = Math.round(q);
  const even = Math.abs(q - Math.trunc(q)) === 0.5 ? 2 * Math.round(q / 2) : r;
  return even * ulp;
}

/** Index of the largest value in x[off .. off+n) (first one on ties, like torch.argmax). */
export function argmax(x: Float32Array, off = 0, n = x.length - off): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[off + i];
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

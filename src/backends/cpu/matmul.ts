/**
 * Linear-layer matmul on the CPU: y[T, O] = x[T, I] · W[O, I]ᵀ (+ b[O]), W row-major as HF stores
 * Linear weights ([out_features, in_features]). Every row of y is a dot product of a weight row with an
 * activation row, so both operands are read along contiguous memory.
 *
 * Two kernels with one contract: `referenceMatmul` (plain loops, the oracle in tests) and
 * `BlockedJsKernel` (4×4 register tiles over token/output rows, so each weight row loaded from memory
 * feeds four tokens and each activation row four outputs). A WebAssembly SIMD kernel with the same
 * contract lives in wasm-matmul.ts.
 */

/** A weight matrix in whatever form a kernel wants to keep it (copied once at load). */
export interface PreparedMatrix {
  readonly rows: number; // O
  readonly cols: number; // I
}

export interface MatmulKernel {
  readonly name: string;
  /** Take ownership of a [rows, cols] f32 matrix (and optional [rows] bias) for later products. */
  prepare(data: Float32Array, rows: number, cols: number, bias?: Float32Array): PreparedMatrix;
  /** out[T, O] = x[T, I] · Wᵀ (+ b). x and out are plain row-major arrays of at least T·I / T·O floats. */
  matmul(x: Float32Array, numRows: number, w: PreparedMatrix, out: Float32Array): void;
}

/** The oracle: one float64 dot product per output element. */
export function referenceMatmul(
  x: Float32Array, T: number, w: Float32Array, O: number, I: number, out: Float32Array, bias?: Float32Array,
): void {
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < O; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < I; i++) s += x[t * I + i] * w[o * I + i];
      out[t * O + o] = s;
    }
  }
}

class JsMatrix implements PreparedMatrix {
  constructor(
    readonly data: Float32Array,
    readonly rows: number,
    readonly cols: number,
    readonly bias: Float32Array | undefined,
  ) {}
}

export function checkMatrix(data: Float32Array, rows: number, cols: number, bias?: Float32Array): void {
  if (data.length !== rows * cols) {
    throw new Error(`matmul: weight has ${data.length} floats, expected [${rows}, ${cols}] = ${rows * cols}`);
  }
  if (bias && bias.length !== rows) throw new Error(`matmul: bias has ${bias.length} floats, expected ${rows}`);
}

export function checkOperands(x: Float32Array, T: number, w: PreparedMatrix, out: Float32Array): void {
  if (x.length < T * w.cols) throw new Error(`matmul: input holds ${x.length} floats, need [${T}, ${w.cols}]`);
  if (out.length < T * w.rows) throw new Error(`matmul: output holds ${out.length} floats, need [${T}, ${w.rows}]`);
}

/**
 * Blocked JS kernel. Loop order: a block of TOKEN_BLOCK activation rows (kept hot in cache) against
 * all weight rows, four weight rows × four tokens at a time with 16 scalar accumulators. V8 keeps the
 * accumulators in registers; the 4+4 loads per 16 multiply-adds is what makes it ~3-4× a naive loop.
 */
export class BlockedJsKernel implements MatmulKernel {
  readonly name = 'js-blocked';
  static readonly TOKEN_BLOCK = 32;

  prepare(data: Float32Array, rows: number, cols: number, bias?: Float32Array): PreparedMatrix {
    checkMatrix(data, rows, cols, bias);
    return new JsMatrix(data, rows, cols, bias);
  }

  matmul(x: Float32Array, T: number, prepared: PreparedMatrix, out: Float32Array): void {
    checkOperands(x, T, prepared, out);
    const m = prepared as JsMatrix;
    const { data: w, rows: O, cols: I, bias } = m;
    const TB = BlockedJsKernel.TOKEN_BLOCK;
    for (let t0 = 0; t0 < T; t0 += TB) {
      const t1 = Math.min(T, t0 + TB);
      let o = 0;
      for (; o + 4 <= O; o += 4) {
        let t = t0;
        for (; t + 4 <= t1; t += 4) tile4x4(x, w, out, t, o, I, O);
        for (; t < t1; t++) tile1x4(x, w, out, t, o, I, O);
      }
      for (; o < O; o++) {
        for (let t = t0; t < t1; t++) {
          let s = 0;
          const xo = t * I, wo = o * I;
          for (let i = 0; i < I; i++) s += x[xo + i] * w[wo + i];
          out[t * O + o] = s;
        }
      }
    }
    if (bias) {
      for (let t = 0; t < T; t++) for (let o2 = 0; o2 < O; o2++) out[t * O + o2] += bias[o2];
    }
  }
}

function tile4x4(x: Float32Array, w: Float32Array, out: Float32Array, t: number, o: number, I: number, O: number): void {
  const x0 = t * I, x1 = x0 + I, x2 = x1 + I, x3 = x2 + I;
  const w0 = o * I, w1 = w0 + I, w2 = w1 + I, w3 = w2 + I;
  let a00 = 0, a01 = 0, a02 = 0, a03 = 0;
  let a10 = 0, a11 = 0, a12 = 0, a13 = 0;
  let a20 = 0, a21 = 0, a22 = 0, a23 = 0;
  let a30 = 0, a31 = 0, a32 = 0, a33 = 0;
  for (let i = 0; i < I; i++) {
    const b0 = w[w0 + i], b1 = w[w1 + i], b2 = w[w2 + i], b3 = w[w3 + i];
    const v0 = x[x0 + i];
    a00 += v0 * b0; a01 += v0 * b1; a02 += v0 * b2; a03 += v0 * b3;
    const v1 = x[x1 + i];
    a10 += v1 * b0; a11 += v1 * b1; a12 += v1 * b2; a13 += v1 * b3;
    const v2 = x[x2 + i];
    a20 += v2 * b0; a21 += v2 * b1; a22 += v2 * b2; a23 += v2 * b3;
    const v3 = x[x3 + i];
    a30 += v3 * b0; a31 += v3 * b1; a32 += v3 * b2; a33 += v3 * b3;
  }
  let r = t * O + o;
  out[r] = a00; out[r + 1] = a01; out[r + 2] = a02; out[r + 3] = a03;
  r += O;
  out[r] = a10; out[r + 1] = a11; out[r + 2] = a12; out[r + 3] = a13;
  r += O;
  out[r] = a20; out[r + 1] = a21; out[r + 2] = a22; out[r + 3] = a23;
  r += O;
  out[r] = a30; out[r + 1] = a31; out[r + 2] = a32; out[r + 3] = a33;
}

function tile1x4(x: Float32Array, w: Float32Array, out: Float32Array, t: number, o: number, I: number, O: number): void {
  const x0 = t * I;
  const w0 = o * I, w1 = w0 + I, w2 = w1 + I, w3 = w2 + I;
  let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (let i = 0; i < I; i++) {
    const v = x[x0 + i];
    a0 += v * w[w0 + i]; a1 += v * w[w1 + i]; a2 += v * w[w2 + i]; a3 += v * w[w3 + i];
  }
  const r = t * O + o;
  out[r] = a0; out[r + 1] = a1; out[r + 2] = a2; out[r + 3] = a3;
}

/**
 * Ordinary least squares by Householder QR (no normal equations, so a badly scaled design loses
 * less precision). X is [rows, cols] row-major as arrays; rows ≥ cols and full column rank.
 */

export interface LeastSquaresFit {
  coefficients: number[];
  /** X·β for the training rows. */
  fitted: number[];
  /** 1 − SS_res / SS_tot; 1 when y is constant and fitted exactly. */
  r2: number;
  rmse: number;
}

/** Solves min ‖Xβ − y‖₂. Throws when X is rank deficient (a column is a combination of others). */
export function leastSquares(X: readonly (readonly number[])[], y: readonly number[]): LeastSquaresFit {
  const rows = X.length;
  if (rows === 0) throw new Error('leastSquares: no rows');
  const cols = X[0].length;
  if (rows < cols) throw new Error(`leastSquares: ${rows} rows cannot determine ${cols} coefficients`);
  if (y.length !== rows) throw new Error('leastSquares: X and y differ in length');
  const A = X.map((r) => Float64Array.from(r));
  const b = Float64Array.from(y);
  const scale = Math.max(1e-300, ...A.flatMap((r) => Array.from(r, Math.abs)));
  for (let k = 0; k < cols; k++) {
    let norm = 0;
    for (let i = k; i < rows; i++) norm += A[i][k] * A[i][k];
    norm = Math.sqrt(norm);
    if (norm <= 1e-12 * scale * Math.sqrt(rows)) throw new Error(`leastSquares: the design is rank deficient at column ${k}`);
    const alpha = A[k][k] > 0 ? -norm : norm;
    // v = x − α e₁, stored in place of column k below the diagonal.
    const v = new Float64Array(rows - k);
    for (let i = k; i < rows; i++) v[i - k] = A[i][k];
    v[0] -= alpha;
    let vv = 0;
    for (const e of v) vv += e * e;
    if (vv === 0) continue;
    for (let j = k; j < cols; j++) {
      let dot = 0;
      for (let i = k; i < rows; i++) dot += v[i - k] * A[i][j];
      const f = (2 * dot) / vv;
      for (let i = k; i < rows; i++) A[i][j] -= f * v[i - k];
    }
    let dot = 0;
    for (let i = k; i < rows; i++) dot += v[i - k] * b[i];
    const f = (2 * dot) / vv;
    for (let i = k; i < rows; i++) b[i] -= f * v[i - k];
  }
  // Back substitution on the upper triangle R β = (Qᵀy)[0..cols).
  const beta = new Array<number>(cols).fill(0);
  for (let k = cols - 1; k >= 0; k--) {
    let s = b[k];
    for (let j = k + 1; j < cols; j++) s -= A[k][j] * beta[j];
    beta[k] = s / A[k][k];
  }
  const fitted = X.map((r) => r.reduce((s, x, j) => s + x * beta[j], 0));
  return { coefficients: beta, fitted, ...goodnessOfFit(y, fitted) };
}

export function goodnessOfFit(observed: readonly number[], predicted: readonly number[]): { r2: number; rmse: number } {
  const n = observed.length;
  const m = observed.reduce((s, v) => s + v, 0) / n;
  let ssRes = 0, ssTot = 0;
  for (let i = 0; i < n; i++) {
    ssRes += (observed[i] - predicted[i]) ** 2;
    ssTot += (observed[i] - m) ** 2;
  }
  const r2 = ssTot === 0 ? (ssRes < 1e-24 ? 1 : 0) : 1 - ssRes / ssTot;
  return { r2, rmse: Math.sqrt(ssRes / n) };
}

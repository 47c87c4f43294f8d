/**
 * Least squares for a logistic-linear model, score ≈ σ(X·β), σ(z) = 1/(1 + e^(−z)): Gauss–Newton
 * with step halving, started from the linear fit of logit(score) (scores clipped to [0.01, 0.99]
 * for the start only). Minimises Σ (y − σ(Xβ))² on the score scale, so the fitted curve stays in
 * [0, 1] and the coefficients live on the logit scale.
 */
import { leastSquares } from './least-squares.js';

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

function linear(X: readonly (readonly number[])[], beta: readonly number[]): number[] {
  return X.map((r) => r.reduce((s, x, j) => s + x * beta[j], 0));
}

function sse(X: readonly (readonly number[])[], y: readonly number[], beta: readonly number[]): number {
  return linear(X, beta).reduce((s, z, i) => s + (y[i] - sigmoid(z)) ** 2, 0);
}

export interface SigmoidFit {
  coefficients: number[];
  iterations: number;
  converged: boolean;
}

/** Throws when the design is rank deficient (as `leastSquares`). */
export function sigmoidLeastSquares(X: readonly (readonly number[])[], y: readonly number[], maxIterations = 200): SigmoidFit {
  const clipped = y.map((v) => Math.min(0.99, Math.max(0.01, v)));
  let beta = leastSquares(X, clipped.map((p) => Math.log(p / (1 - p)))).coefficients;
  let current = sse(X, y, beta);
  for (let it = 1; it <= maxIterations; it++) {
    const z = linear(X, beta);
    const p = z.map(sigmoid);
    // Jacobian of σ(Xβ) is diag(σ'(z))·X; a floor on σ' keeps saturated rows from making it singular.
    const J = X.map((r, i) => r.map((x) => x * Math.max(1e-9, p[i] * (1 - p[i]))));
    const residual = y.map((v, i) => v - p[i]);
    const step = leastSquares(J, residual).coefficients;
    let scale = 1;
    let improved = false;
    for (let h = 0; h < 30; h++) {
      const candidate = beta.map((b, j) => b + scale * step[j]);
      const value = sse(X, y, candidate);
      if (value <= current) {
        const gain = current - value;
        beta = candidate;
        current = value;
        improved = true;
        if (gain <= 1e-15 * Math.max(1, current) || gain === 0) return { coefficients: beta, iterations: it, converged: true };
        break;
      }
      scale /= 2;
    }
    if (!improved) return { coefficients: beta, iterations: it, converged: true };
  }
  return { coefficients: beta, iterations: maxIterations, converged: false };
}

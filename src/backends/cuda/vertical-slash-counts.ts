/**
 * Vertical-Slash's count rule for a target sparsity, as the CPU method applies it
 * (src/methods/vertical-slash.ts, VerticalSlashPrefill.chooseCounts), with the layer's exact pairs
 * coming from a probe, so the GPU method can answer each probe on the device: one common count k for
 * columns and diagonals (the original's ratio), the largest k whose layer pairs stay within
 * (1 - s) of the dense causal pairs, then more columns alone to land closest to that target.
 * Every head of the layer gets the same counts.
 *
 * This is the host twin of the device search (kernels/vertical-slash-search.cu, mode 0), which the GPU
 * method runs: the search depends on the scores (each probe's pairs come from the selection they
 * make), so it is estimation and runs where the scores are. The tests hold the two to the same
 * answers with this one's probes answered by VerticalSlashIndexBuilder.countPairs.
 */
import { causalPairs } from '../../methods/options.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../methods/vertical-slash-prefill.js';

export interface VerticalSlashCountChoice {
  verticalSize: number;
  slashSize: number;
  /** Why the budget could not be met (the forced pattern alone exceeds it). */
  note?: string;
}

/** Why the forced pattern alone misses the budget. */
export const FLOOR_EXCEEDED_NOTE = (n: number): string =>
  `forced sink columns 0..3 and the 64 nearest diagonals (run as 64-wide blocks) exceed the budget at n=${n}`;

/**
 * layerPairs(kv, ks): exact attended pairs of the whole layer (all H heads) with kv columns and ks
 * diagonals per head; must grow with both counts.
 */
export function chooseVerticalSlashCounts(
  n: number, numHeads: number, sparsity: number, layerPairs: (kv: number, ks: number) => number,
): VerticalSlashCountChoice {
  const target = (1 - sparsity) * numHeads * causalPairs(n);
  const minV = Math.min(FORCED_COLUMNS, n), minS = Math.min(FORCED_DIAGONALS, n);
  const floorPairs = layerPairs(minV, minS);
  if (floorPairs >= target) {
    const choice: VerticalSlashCountChoice = { verticalSize: minV, slashSize: minS };
    if (floorPairs > target) {
      choice.note = FLOOR_EXCEEDED_NOTE(n);
    }
    return choice;
  }
  if (layerPairs(minS, minS) > target) return closestColumns(minV, minS, minS, target, layerPairs);
  // Largest common count k with pairs(k, k) <= target.
  let lo = minS, hi = n;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (layerPairs(mid, mid) <= target) lo = mid; else hi = mid - 1;
  }
  if (lo >= n) return { verticalSize: n, slashSize: n };
  return closestColumns(lo, n, lo, target, layerPairs);
}

/** Column count in [vLo, vHi] (ks fixed) whose layer pairs land closest to the target (lower on a tie). */
function closestColumns(
  vLo: number, vHi: number, ks: number, target: number, layerPairs: (kv: number, ks: number) => number,
): VerticalSlashCountChoice {
  let lo = vLo, hi = vHi;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (layerPairs(mid, ks) <= target) lo = mid; else hi = mid - 1;
  }
  let best = lo;
  if (lo < vHi) {
    const below = target - layerPairs(lo, ks);
    const above = layerPairs(lo + 1, ks) - target;
    if (above < below) best = lo + 1;
  }
  return { verticalSize: best, slashSize: ks };
}

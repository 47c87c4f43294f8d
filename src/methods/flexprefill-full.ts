/**
 * FlexPrefill as its own paper and code describe it (Lai et al. 2025), an extension beside the
 * study's variant (`flexprefill`). Everything works on blocks of b = 128 tokens:
 *
 * 1. The last block of queries scores all keys (causal in the last corner, softmax). Per key the
 *    column mean, per diagonal the sum / b, as in the study's variant.
 * 2. Each head takes the smallest number of columns / diagonals whose mass reaches gamma (sorted
 *    prefix sums <= gamma, plus one), turns it into blocks (floor(count / b) + 1) and clamps it to
 *    [minBudget, maxBudget] blocks.
 * 3. The pattern switch: the softmax of (mean of those last queries) . (block-mean keys) over all
 *    key blocks is compared with the block-summed column scores by the square-root Jensen-Shannon
 *    divergence; below tau the head is "query-aware": its vertical and slash counts drop to the
 *    minimum and it adds the block pairs (i, j <= i) of the pooled estimate softmax(mean q_i . mean
 *    k_j) over j, taken in descending order while their cumulative mass stays <= gamma x (blocks).
 * 4. Key block 0 and the diagonal block are always kept; the top vertical blocks j are read by every
 *    query block i >= j, the top slash blocks s by every i >= s (key block i - s). The union of block
 *    pairs runs as block-sparse attention with key <= query inside.
 * Prompts up to max(2b, ceil(minBudget / b) b) tokens run dense, as in the original.
 *
 * Budget: sparsity is an outcome of gamma; a target s is reached by a bisection over gamma per
 * layer, like the study's variant. Slash blocks follow the original's pooling of the diagonal-sum
 * vector, which is aligned to the end of the prompt rather than to the block grid when b does not
 * divide n.
 */
import { type HeadCounts, type PrefillAttention, type PrefillCall, emptyCounts } from '../engine/attention.js';
import { QueryRunScratch, RangeList, attendQueryRun } from '../backends/cpu/sparse-attention.js';
import { assertWholePromptCall, causalPairs, intParam, optionalIntParam } from './options.js';
import { IndexScratch, rankDescending } from './select.js';
import { coverCount, sortedPrefixSums, thresholdNearestTarget } from './flexprefill.js';
import { lastQueryScores } from './vertical-slash-pattern.js';
import type { BudgetDecision, BudgetDescription, MethodDescriptor, ResolvedOptions } from './types.js';

export interface FlexPrefillFullSettings {
  blockSize: number;
  tau: number;
  minBudget: number; // tokens
  maxBudget: number | null; // tokens
  gamma: number | null;
  sparsity: number | null;
}

/** sqrt(JS(p, q)) with natural logs, as the original computes it; p and q: [len], each summing to 1. */
export function sqrtJensenShannon(p: Float64Array, q: Float64Array, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i++) {
    const m = (p[i] + q[i]) / 2;
    if (p[i] > 0) s += 0.5 * p[i] * Math.log(p[i] / m);
    if (q[i] > 0) s += 0.5 * q[i] * Math.log(q[i] / m);
  }
  return Math.sqrt(Math.max(0, s));
}

/** Everything about one query head that does not depend on gamma. */
interface HeadPlan {
  verticalPrefix: Float64Array; // [n] sorted prefix sums of column means
  slashPrefix: Float64Array; // [n] sorted prefix sums of diagonal sums / b
  verticalRank: Int32Array; // [nb] rank of key block j (block 0 first)
  slashRank: Int32Array; // [nb] rank of pooled slash entry t (entry nb-1, the main diagonal, first)
  divergence: number;
  queryAware: boolean;
  /** Query-aware heads: flat block pairs i * nb + j by descending pooled probability, and cumsum. */
  pairOrder: Int32Array | null;
  pairCumsum: Float64Array | null;
}

/** Mean of rows [r0, r1) of a [rows, stride] buffer (head slice at offset, D wide) into out[o ..]. */
function meanRows(src: Float32Array, r0: number, r1: number, stride: number, offset: number, D: number, out: Float64Array, o: number): void {
  for (let d = 0; d < D; d++) out[o + d] = 0;
  for (let r = r0; r < r1; r++) for (let d = 0; d < D; d++) out[o + d] += src[r * stride + offset + d];
  const inv = 1 / (r1 - r0);
  for (let d = 0; d < D; d++) out[o + d] *= inv;
}

function softmaxRow(x: Float64Array, off: number, len: number): void {
  let max = -Infinity;
  for (let j = 0; j < len; j++) if (x[off + j] > max) max = x[off + j];
  let sum = 0;
  for (let j = 0; j < len; j++) {
    x[off + j] = Math.exp(x[off + j] - max);
    sum += x[off + j];
  }
  for (let j = 0; j < len; j++) x[off + j] /= sum;
}

export class FlexPrefillFullPrefill implements PrefillAttention {
  readonly id = 'flexprefill_full';
  readonly requiresWholePrompt = true;
  readonly lastDecisions = new Map<number, BudgetDecision>();
  /** When true, the block masks of the last call are kept ([nb, nb] per query head), for inspection. */
  keepMasks = false;
  lastMasks: Uint8Array[] = [];
  private run = new QueryRunScratch();
  private ranges = new RangeList();
  private idx = new IndexScratch();

  constructor(readonly settings: FlexPrefillFullSettings) {}

  /** Prompts this short run dense, as the original does. */
  static runsDense(n: number, blockSize: number, minBudget: number): boolean {
    return n <= Math.max(2 * blockSize, Math.ceil(minBudget / blockSize) * blockSize);
  }

  private planHead(call: PrefillCall, h: number, keyBlocks: Float64Array, n: number): HeadPlan {
    const { shape, queries } = call;
    const { numHeads: H, headDim: D } = shape;
    const kvh = Math.floor(h / (H / shape.numKvHeads));
    const b = this.settings.blockSize;
    const nb = Math.ceil(n / b);
    const A = Math.min(b, n);
    const vertical = new Float64Array(n), slash = new Float64Array(n);
    const rows = [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    lastQueryScores(queries, n, H, D, h, call.cache.keys[kvh], A, shape.scale, shape.logitSoftcap, vertical, slash, rows);
    const verticalPrefix = sortedPrefixSums(vertical, n, 1 / A);
    const slashPrefix = sortedPrefixSums(slash, n, 1 / A);
    // Block sums: columns on the block grid; diagonals pooled over x = n - 1 - offset from x = 0.
    const vBlock = new Float64Array(nb), sBlock = new Float64Array(nb);
    for (let k = 0; k < n; k++) vBlock[Math.floor(k / b)] += vertical[k] / A;
    for (let x = 0; x < n; x++) sBlock[Math.floor(x / b)] += slash[n - 1 - x] / A;
    // Pattern switch: pooled estimate of the last query block against the block-summed columns.
    const qMean = new Float64Array(D);
    meanRows(queries, n - A, n, H * D, h * D, D, qMean, 0);
    const pooled = new Float64Array(nb);
    for (let j = 0; j < nb; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += qMean[d] * keyBlocks[j * D + d];
      pooled[j] = dot * shape.scale;
    }
    softmaxRow(pooled, 0, nb);
    const divergence = sqrtJensenShannon(pooled, vBlock, nb);
    const queryAware = divergence < this.settings.tau;
    // Ranks with the forced entries first: key block 0, and the pooled diagonal entry of offset 0.
    const verticalRank = new Int32Array(nb), slashRank = new Int32Array(nb);
    const vScores = Float64Array.from(vBlock);
    vScores[0] = Infinity;
    rankDescending(vScores, nb, this.idx).forEach((item, r) => { verticalRank[item] = r; });
    const sScores = Float64Array.from(sBlock);
    sScores[nb - 1] = Infinity;
    rankDescending(sScores, nb, this.idx).forEach((item, r) => { slashRank[item] = r; });
    let pairOrder: Int32Array | null = null, pairCumsum: Float64Array | null = null;
    if (queryAware) {
      const qBlocks = new Float64Array(nb * D);
      for (let i = 0; i < nb; i++) meanRows(queries, i * b, Math.min(n, (i + 1) * b), H * D, h * D, D, qBlocks, i * D);
      const probs = new Float64Array(nb * nb).fill(0);
      const logits = new Float64Array(nb);
      for (let i = 0; i < nb; i++) {
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qBlocks[i * D + d] * keyBlocks[j * D + d];
          logits[j] = dot * shape.scale;
        }
        softmaxRow(logits, 0, i + 1);
        for (let j = 0; j <= i; j++) probs[i * nb + j] = logits[j];
      }
      pairOrder = Int32Array.from(rankDescending(probs, nb * nb, this.idx));
      pairCumsum = new Float64Array(nb * nb);
      let acc = 0;
      for (let r = 0; r < nb * nb; r++) {
        acc += probs[pairOrder[r]];
        pairCumsum[r] = acc;
      }
    }
    return { verticalPrefix, slashPrefix, verticalRank, slashRank, divergence, queryAware, pairOrder, pairCumsum };
  }

  /** Block counts of one head for gamma (vertical, slash), in blocks. */
  private blockCounts(plan: HeadPlan, n: number, gamma: number): [number, number] {
    const b = this.settings.blockSize, nb = Math.ceil(n / b);
    const minB = Math.ceil(this.settings.minBudget / b);
    const maxB = this.settings.maxBudget === null ? nb : Math.ceil(this.settings.maxBudget / b);
    const clamp = (x: number) => Math.min(nb, Math.max(minB, Math.min(maxB, x)));
    if (plan.queryAware) return [Math.min(nb, minB), Math.min(nb, minB)];
    const v = Math.floor(coverCount(plan.verticalPrefix, n, gamma) / b) + 1;
    const s = Math.floor(coverCount(plan.slashPrefix, n, gamma) / b) + 1;
    return [clamp(v), clamp(s)];
  }

  /** Block mask [nb, nb] (query block i, key block j <= i) of one head for gamma. */
  blockMask(plan: HeadPlan, n: number, gamma: number, mask: Uint8Array): void {
    const nb = Math.ceil(n / this.settings.blockSize);
    mask.fill(0, 0, nb * nb);
    const [nv, ns] = this.blockCounts(plan, n, gamma);
    for (let j = 0; j < nb; j++) {
      if (plan.verticalRank[j] >= nv) continue;
      for (let i = j; i < nb; i++) mask[i * nb + j] = 1;
    }
    for (let t = 0; t < nb; t++) {
      if (plan.slashRank[t] >= ns) continue;
      const s = nb - 1 - t;
      for (let i = s; i < nb; i++) mask[i * nb + i - s] = 1;
    }
    if (plan.queryAware && plan.pairOrder && plan.pairCumsum) {
      const limit = gamma * nb;
      for (let r = 0; r < nb * nb && plan.pairCumsum[r] <= limit; r++) mask[plan.pairOrder[r]] = 1;
    }
  }

  /** Exact causal pairs of a block mask. */
  maskPairs(mask: Uint8Array, n: number): number {
    const b = this.settings.blockSize, nb = Math.ceil(n / b);
    let pairs = 0;
    for (let i = 0; i < nb; i++) {
      const rows = Math.min(b, n - i * b);
      for (let j = 0; j < i; j++) if (mask[i * nb + j]) pairs += rows * b;
      if (mask[i * nb + i]) pairs += (rows * (rows + 1)) / 2;
    }
    return pairs;
  }

  prefill(call: PrefillCall): HeadCounts {
    const { shape, queries, numQueries: n, cache, out, layer } = call;
    assertWholePromptCall(this.id, call);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    const g = H / Hkv;
    const b = this.settings.blockSize, nb = Math.ceil(n / b);
    const counts = emptyCounts(H);
    for (let h = 0; h < H; h++) counts.dense[h] = causalPairs(n);
    const dense = FlexPrefillFullPrefill.runsDense(n, b, this.settings.minBudget) || this.settings.sparsity === 0;
    const masks = Array.from({ length: H }, () => new Uint8Array(nb * nb));
    let decision: BudgetDecision;
    if (dense) {
      for (const m of masks) for (let i = 0; i < nb; i++) for (let j = 0; j <= i; j++) m[i * nb + j] = 1;
      decision = { layer, counts: { blockSize: b }, note: this.settings.sparsity === 0 ? 'sparsity 0: dense' : `prompt of ${n} tokens runs dense (as the original, up to max(2b, minBudget))` };
    } else {
      const keyBlocks = Array.from({ length: Hkv }, (_, kvh) => {
        const pool = new Float64Array(nb * D);
        for (let j = 0; j < nb; j++) meanRows(cache.keys[kvh], j * b, Math.min(n, (j + 1) * b), D, 0, D, pool, j * D);
        return pool;
      });
      const plans = Array.from({ length: H }, (_, h) => this.planHead(call, h, keyBlocks[Math.floor(h / g)], n));
      const layerPairs = (gamma: number) => {
        let total = 0;
        for (let h = 0; h < H; h++) {
          this.blockMask(plans[h], n, gamma, masks[h]);
          total += this.maskPairs(masks[h], n);
        }
        return total;
      };
      let gamma = this.settings.gamma ?? 0.9;
      let note: string | undefined;
      if (this.settings.sparsity !== null) {
        const target = (1 - this.settings.sparsity) * H * causalPairs(n);
        const floor = layerPairs(0);
        if (floor >= target) {
          gamma = 0;
          if (floor > target) note = `the forced blocks and minBudget=${this.settings.minBudget} tokens exceed the budget at n=${n}`;
        } else {
          gamma = thresholdNearestTarget(layerPairs, target, floor);
        }
      }
      layerPairs(gamma);
      const queryAware = plans.filter((p) => p.queryAware).length;
      decision = { layer, counts: { blockSize: b, gamma: Number(gamma.toFixed(6)), queryAwareHeads: `${queryAware}/${H}` }, ...(note ? { note } : {}) };
    }
    this.lastDecisions.set(layer, decision);
    this.lastMasks = this.keepMasks ? masks : [];
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / g);
      const mask = masks[h];
      for (let i = 0; i < nb; i++) {
        this.ranges.clear();
        for (let j = 0; j <= i; j++) if (mask[i * nb + j]) this.ranges.push(j * b, Math.min(n, (j + 1) * b));
        counts.attended[h] += attendQueryRun(
          queries, out, H, h, D, i * b, Math.min(n, (i + 1) * b), 0, null, cache.keys[kvh], cache.values[kvh],
          this.ranges.data, this.ranges.count, null, 0, shape.scale, shape.logitSoftcap, this.run,
        );
      }
    }
    return counts;
  }
}

function parse(options: ResolvedOptions): FlexPrefillFullSettings {
  const gamma = options.params.gamma;
  return {
    blockSize: intParam(options.params, 'blockSize'),
    tau: options.params.tau as number,
    minBudget: intParam(options.params, 'minBudget'),
    maxBudget: optionalIntParam(options.params, 'maxBudget'),
    gamma: typeof gamma === 'number' ? gamma : null,
    sparsity: options.sparsity,
  };
}

export const flexPrefillFullMethod: MethodDescriptor = {
  id: 'flexprefill_full',
  title: 'FlexPrefill (its paper: query-aware blocks and JS switch)',
  phase: 'prefill',
  taxonomy: { unit: 'blocks', importance: 'last query block, pooled blocks, JS-divergence switch', budget: 'adaptive per head', kvCache: 'full' },
  summary: 'per head, vertical-slash blocks or query-aware pooled blocks (chosen by JS divergence) covering gamma of the attention',
  params: [
    { name: 'gamma', kind: 'number', min: 0, max: 1, originalDefault: 0.9, description: 'attention mass each head must cover; replaces sparsity' },
    { name: 'tau', kind: 'number', default: 0.1, min: 0, max: 1, description: 'JS-divergence threshold below which a head is query-aware' },
    { name: 'blockSize', kind: 'integer', default: 128, min: 1, description: 'block size b (queries and keys)' },
    { name: 'minBudget', kind: 'integer', default: 1024, min: 1, description: 'least tokens of columns and of diagonals per head (in blocks of b)' },
    { name: 'maxBudget', kind: 'integer', min: 1, description: 'most tokens of columns and of diagonals per head (default: no limit)' },
  ],
  budgetParams: ['gamma'],
  create(options) {
    return { prefill: new FlexPrefillFullPrefill(parse(options)) };
  },
  estimationFlops(shape, n, params) {
    const b = Number(params.blockSize);
    const A = Math.min(b, n), nb = Math.ceil(n / b), D = shape.headDim;
    const lastBlock = shape.numHeads * (A * n - (A * (A - 1)) / 2) * (2 * D + 7);
    const pooling = (shape.numHeads + shape.numKvHeads) * n * D;
    // Upper bound: every head evaluates the pooled block estimate (only query-aware heads do).
    const pooledScores = shape.numHeads * ((nb * (nb + 1)) / 2 + nb) * (2 * D + 5);
    return { atPrefill: lastBlock + pooling + pooledScores, perDecodeToken: 0 };
  },
  describeBudget(n, options): BudgetDescription {
    const s = parse(options);
    if (FlexPrefillFullPrefill.runsDense(n, s.blockSize, s.minBudget)) {
      return {
        requested: options.sparsity, counts: { blockSize: s.blockSize }, expectedSparsity: 0, tolerance: 1e-9, resolution: 1,
        note: `prompts up to max(2 x ${s.blockSize}, minBudget=${s.minBudget}) tokens run dense, as in the original`,
      };
    }
    if (options.sparsity === null) {
      return { requested: null, counts: { blockSize: s.blockSize, gamma: s.gamma ?? 0.9, tau: s.tau }, expectedSparsity: null, tolerance: 1, resolution: 1, note: 'gamma given: sparsity is an outcome of the content' };
    }
    return {
      requested: options.sparsity,
      counts: { blockSize: s.blockSize, gamma: 'searched per layer', tau: s.tau },
      expectedSparsity: null,
      tolerance: 1,
      resolution: 1,
      note: `whole ${s.blockSize}-token blocks and minBudget=${s.minBudget} tokens per head bound the reachable sparsity; the achieved one is reported per layer`,
    };
  },
};

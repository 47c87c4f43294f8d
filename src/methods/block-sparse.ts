/**
 * Block-Sparse prefill (block-to-block, after MInference's block_sparse_attention as the paper's code
 * runs it). Queries and keys are cut into chunks of c = 16 tokens and mean-pooled; each query chunk m
 * scores the key chunks j <= m with pooled q_m . pooled k_j, always keeps chunk 0, chunk m - 1 and its
 * own chunk m, and fills up to t = top_chunks chunks with the best-scoring rest. Inside the kept chunks
 * the causal mask is exact (key <= query); chunk m is the only one that reaches past the diagonal.
 *
 * Selection is per query head (q head h reads KV head h / g), as the original runs head by head.
 * The number of attended pairs does not depend on content: query chunk m reads min(m + 1, t) chunks,
 * all but the diagonal one in full. So the achieved sparsity is known before running.
 */
import { type HeadCounts, type PrefillAttention, type PrefillCall, emptyCounts } from '../engine/attention.js';
import { QueryRunScratch, RangeList, attendQueryRun } from '../backends/cpu/sparse-attention.js';
import { assertWholePromptCall, causalPairs, intParam, optionalIntParam } from './options.js';
import { IndexScratch, rankDescending, sortAscending } from './select.js';
import type { BudgetDecision, BudgetDescription, MethodDescriptor, ResolvedOptions } from './types.js';

/** The original's closed form (whole blocks): s = 1 - selected / total with B chunks. */
export function closedFormSparsity(numChunks: number, topChunks: number): number {
  const B = numChunks;
  const t = Math.min(topChunks, B);
  const selected = (t * (t + 1)) / 2 + (B - t) * t;
  const total = (B * (B + 1)) / 2;
  return 1 - selected / total;
}

/** t >= 3 (fewer when fewer chunks exist) whose closed-form sparsity is closest to s; ties: denser. */
export function topChunksForSparsity(n: number, chunkSize: number, s: number): number {
  const B = Math.ceil(n / chunkSize);
  if (B <= 3) return B;
  let best = B, bestDiff = Infinity;
  for (let t = B; t >= 3; t--) {
    const diff = Math.abs(closedFormSparsity(B, t) - s);
    if (diff < bestDiff) {
      best = t;
      bestDiff = diff;
    }
  }
  return best;
}

/** Exact attended (query, key) pairs over the causal triangle for t kept chunks per query chunk. */
export function exactBlockSparsePairs(n: number, chunkSize: number, topChunks: number): number {
  const B = Math.ceil(n / chunkSize);
  let pairs = 0;
  for (let m = 0; m < B; m++) {
    const rows = Math.min(chunkSize, n - m * chunkSize);
    const kept = Math.min(m + 1, topChunks);
    pairs += (kept - 1) * chunkSize * rows + (rows * (rows + 1)) / 2;
  }
  return pairs;
}

/**
 * Mean-pool rows of [T, stride] data (head slice at `offset`, D wide) into chunks of c rows:
 * out [B, D]. The last partial chunk is zero-padded and still divided by c, as the original pads.
 */
function meanPool(
  src: Float32Array, numRows: number, stride: number, offset: number, D: number, c: number, out: Float64Array,
): void {
  const B = Math.ceil(numRows / c);
  out.fill(0, 0, B * D);
  for (let r = 0; r < numRows; r++) {
    const o = Math.floor(r / c) * D;
    const s = r * stride + offset;
    for (let d = 0; d < D; d++) out[o + d] += src[s + d];
  }
  const inv = 1 / c;
  for (let i = 0; i < B * D; i++) out[i] *= inv;
}

export class BlockSparsePrefill implements PrefillAttention {
  readonly id = 'block_sparse';
  readonly requiresWholePrompt = true;
  readonly lastDecisions = new Map<number, BudgetDecision>();
  private run = new QueryRunScratch();
  private ranges = new RangeList();
  private rank = new IndexScratch();

  constructor(readonly chunkSize: number, readonly sparsity: number | null, readonly topChunks: number | null) {}

  /** t for a prompt of n tokens. */
  topChunksFor(n: number): number {
    const B = Math.ceil(n / this.chunkSize);
    if (this.topChunks !== null) return Math.min(this.topChunks, B);
    return topChunksForSparsity(n, this.chunkSize, this.sparsity ?? 0);
  }

  /**
   * Kept key chunks of every query chunk for one query head: selected [B, t] (ascending per row),
   * counts [B]. queries: [n, H, D]; keyPool: [B, D] of the head's KV head.
   */
  selectChunks(
    queries: Float32Array, n: number, H: number, D: number, head: number, keyPool: Float64Array, t: number,
    selected: Int32Array, counts: Int32Array,
  ): void {
    const c = this.chunkSize;
    const B = Math.ceil(n / c);
    const qPool = new Float64Array(B * D);
    meanPool(queries, n, H * D, head * D, D, c, qPool);
    const scores = new Float64Array(B);
    for (let m = 0; m < B; m++) {
      const row = m * t;
      if (m + 1 <= t) {
        for (let j = 0; j <= m; j++) selected[row + j] = j;
        counts[m] = m + 1;
        continue;
      }
      // Forced: chunk 0 (sinks), m - 1 and m (local). Candidates for the rest: 1 .. m - 2.
      let k = 0;
      selected[row + k++] = 0;
      selected[row + k++] = m - 1;
      selected[row + k++] = m;
      const candidates = m - 2; // chunks 1 .. m-2
      const extra = t - 3;
      if (extra > 0 && candidates > 0) {
        for (let j = 1; j <= candidates; j++) {
          let dot = 0;
          const qo = m * D, ko = j * D;
          for (let d = 0; d < D; d++) dot += qPool[qo + d] * keyPool[ko + d];
          scores[j - 1] = dot;
        }
        const order = rankDescending(scores, candidates, this.rank);
        for (let i = 0; i < extra && i < candidates; i++) selected[row + k++] = order[i] + 1;
      }
      sortAscending(selected.subarray(row), k);
      counts[m] = k;
    }
  }

  prefill(call: PrefillCall): HeadCounts {
    const { shape, queries, numQueries: n, cache, out, layer } = call;
    assertWholePromptCall(this.id, call);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    const g = H / Hkv;
    const c = this.chunkSize;
    const B = Math.ceil(n / c);
    const t = this.topChunksFor(n);
    this.lastDecisions.set(layer, { layer, counts: { chunkSize: c, topChunks: t } });
    const counts = emptyCounts(H);
    const selected = new Int32Array(B * t);
    const kept = new Int32Array(B);
    const keyPools: Float64Array[] = [];
    for (let kvh = 0; kvh < Hkv; kvh++) {
      const pool = new Float64Array(B * D);
      meanPool(cache.keys[kvh], n, D, 0, D, c, pool);
      keyPools.push(pool);
    }
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / g);
      this.selectChunks(queries, n, H, D, h, keyPools[kvh], t, selected, kept);
      const keys = cache.keys[kvh], values = cache.values[kvh];
      for (let m = 0; m < B; m++) {
        const rowEnd = Math.min(n, (m + 1) * c);
        // The chunk's rows share its kept chunks; the kernel applies key <= query per row.
        this.ranges.clear();
        for (let i = 0; i < kept[m]; i++) {
          const j = selected[m * t + i];
          this.ranges.push(j * c, Math.min((j + 1) * c, n));
        }
        counts.attended[h] += attendQueryRun(
          queries, out, H, h, D, m * c, rowEnd, 0, null, keys, values, this.ranges.data, this.ranges.count, null, 0,
          shape.scale, shape.logitSoftcap, this.run,
        );
        for (let r = m * c; r < rowEnd; r++) counts.dense[h] += r + 1;
      }
    }
    return counts;
  }
}

function parse(options: ResolvedOptions): { chunkSize: number; topChunks: number | null } {
  return { chunkSize: intParam(options.params, 'chunkSize'), topChunks: optionalIntParam(options.params, 'topChunks') };
}

export const blockSparseMethod: MethodDescriptor = {
  id: 'block_sparse',
  title: 'Block-Sparse (block-to-block)',
  phase: 'prefill',
  taxonomy: { unit: 'blocks', importance: 'mean-pooled blocks', budget: 'uniform', kvCache: 'full' },
  summary: 'each 16-token query chunk keeps its top-t key chunks by mean-pooled q.k (plus sink and diagonal chunks)',
  params: [
    { name: 'chunkSize', kind: 'integer', default: 16, min: 1, description: 'query/key chunk size c' },
    { name: 'topChunks', kind: 'integer', min: 3, originalDefault: 64, description: 'key chunks kept per query chunk (t); replaces sparsity' },
  ],
  budgetParams: ['topChunks'],
  create(options) {
    const { chunkSize, topChunks } = parse(options);
    return { prefill: new BlockSparsePrefill(chunkSize, options.sparsity, topChunks) };
  },
  estimationFlops(shape, n, params) {
    const c = Number(params.chunkSize);
    const B = Math.ceil(n / c);
    const D = shape.headDim;
    // Pooling: one add per element of q (per query head) and k (per KV head); pooled scores over the
    // causal chunk triangle: 2D per pair per query head.
    const pooling = (shape.numHeads + shape.numKvHeads) * n * D;
    const scores = shape.numHeads * (B * (B + 1)) / 2 * 2 * D;
    return { atPrefill: pooling + scores, perDecodeToken: 0 };
  },
  describeBudget(n, options): BudgetDescription {
    const { chunkSize, topChunks } = parse(options);
    const B = Math.ceil(n / chunkSize);
    const t = topChunks !== null ? Math.min(topChunks, B) : topChunksForSparsity(n, chunkSize, options.sparsity ?? 0);
    const expected = 1 - exactBlockSparsePairs(n, chunkSize, t) / causalPairs(n);
    // t is an integer chosen on the original's whole-block closed form: half a step of t either
    // way, plus the upper halves of the diagonal blocks that the closed form counts and we do not.
    const neighbours = [t - 1, t + 1].filter((x) => x >= 3 && x <= B).map((x) => Math.abs(closedFormSparsity(B, x) - closedFormSparsity(B, t)));
    const granularity = neighbours.length > 0 ? Math.max(...neighbours) / 2 : 0;
    const diagonal = Math.abs(expected - closedFormSparsity(B, t));
    const desc: BudgetDescription = {
      requested: options.sparsity,
      counts: { chunkSize, topChunks: t, closedFormSparsity: Number(closedFormSparsity(B, t).toFixed(4)) },
      expectedSparsity: expected,
      tolerance: 1e-9,
      resolution: granularity + diagonal + 1e-9,
    };
    if (options.sparsity !== null && Math.abs(expected - options.sparsity) > desc.resolution) {
      desc.note = `the forced sink, previous and diagonal chunks (t >= 3) exceed the budget at n=${n}`;
    }
    return desc;
  },
};

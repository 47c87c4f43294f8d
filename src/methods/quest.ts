/**
 * Quest decoding: the cache stays whole, cut into pages of 16 tokens; each page keeps the element-wise
 * min and max of its keys, updated as decoding appends tokens. A decode query scores every page
 * before the current one with the upper bound sum_d max(q_d min_d, q_d max_d) of q.k over the page,
 * keeps the top pages, and always reads the current page up to the new token. With share_pages
 * (default) the bound is summed over the query heads of a KV group, so the group reads one page set.
 *
 * Budget: the original's fixed `tokenBudget` (1024, a multiple of the page size) gives
 * tokenBudget / 16 pages besides the current one. A target sparsity s instead gives, at every step,
 * round(((1 - s)(p + 1) - current page tokens) / 16) pages, so that reads follow (1 - s) of the
 * growing context, and s = 0 reads everything (the original cannot express a whole-context budget).
 *
 * The page bounds live in cache.methodState under 'quest', built lazily at the first decode step from
 * the prompt rows and then extended by each appended row.
 */
import { type DecodeAttention, type DecodeCall, type HeadCounts, emptyCounts } from '../engine/attention.js';
import type { LayerKvCache } from '../engine/kv-cache.js';
import { RangeList, SparseAttentionScratch, attendSparseRows } from '../backends/cpu/sparse-attention.js';
import { assertFullAttentionLayer, boolParam, intParam, optionalIntParam } from './options.js';
import { IndexScratch, rankDescending, sortAscending } from './select.js';
import type { BudgetDecision, BudgetDescription, MethodDescriptor, ResolvedOptions } from './types.js';

const STATE_KEY = 'quest';

/** Per layer cache: page bounds per KV head, [pages, D] each, and how many rows they cover. */
export class QuestPageBounds {
  pageMin: Float32Array[];
  pageMax: Float32Array[];
  coveredRows = 0;
  private capacityPages: number;

  constructor(readonly numKvHeads: number, readonly headDim: number, readonly pageSize: number) {
    this.capacityPages = 64;
    this.pageMin = Array.from({ length: numKvHeads }, () => new Float32Array(this.capacityPages * headDim));
    this.pageMax = Array.from({ length: numKvHeads }, () => new Float32Array(this.capacityPages * headDim));
  }

  private grow(pages: number): void {
    if (pages <= this.capacityPages) return;
    let cap = this.capacityPages;
    while (cap < pages) cap *= 2;
    for (let h = 0; h < this.numKvHeads; h++) {
      const mn = new Float32Array(cap * this.headDim);
      mn.set(this.pageMin[h]);
      const mx = new Float32Array(cap * this.headDim);
      mx.set(this.pageMax[h]);
      this.pageMin[h] = mn;
      this.pageMax[h] = mx;
    }
    this.capacityPages = cap;
  }

  /** Fold rows coveredRows .. rows-1 of the cache into the bounds (rows are positions here). */
  extend(cache: LayerKvCache, rows: number): void {
    const D = this.headDim, P = this.pageSize;
    this.grow(Math.ceil(rows / P));
    for (let h = 0; h < this.numKvHeads; h++) {
      const keys = cache.keys[h], mn = this.pageMin[h], mx = this.pageMax[h];
      for (let r = this.coveredRows; r < rows; r++) {
        const o = Math.floor(r / P) * D, k = r * D;
        if (r % P === 0) {
          for (let d = 0; d < D; d++) mn[o + d] = mx[o + d] = keys[k + d];
        } else {
          for (let d = 0; d < D; d++) {
            const v = keys[k + d];
            if (v < mn[o + d]) mn[o + d] = v;
            if (v > mx[o + d]) mx[o + d] = v;
          }
        }
      }
    }
    this.coveredRows = rows;
  }
}

/**
 * Quest's bound on q.k for every key of a page: sum_d max(q_d min_d, q_d max_d).
 * q: [.. D] at qOff; min/max: the page's bounds at off.
 */
export function pageUpperBound(q: Float32Array, qOff: number, min: Float32Array, max: Float32Array, off: number, D: number): number {
  let s = 0;
  for (let d = 0; d < D; d++) {
    const a = q[qOff + d] * min[off + d], b = q[qOff + d] * max[off + d];
    s += a > b ? a : b;
  }
  return s;
}

/** Pages (besides the current one) a step at position p reads. */
export function questPagesFor(position: number, pageSize: number, sparsity: number | null, tokenBudget: number | null): number {
  const current = Math.floor(position / pageSize);
  const currentFill = position - current * pageSize + 1;
  const wanted = tokenBudget !== null
    ? Math.floor(tokenBudget / pageSize)
    : Math.round(((1 - (sparsity ?? 0)) * (position + 1) - currentFill) / pageSize);
  return Math.max(0, Math.min(current, wanted));
}

export class QuestDecode implements DecodeAttention {
  readonly id = 'quest';
  readonly observationWindow = 0;
  readonly lastDecisions = new Map<number, BudgetDecision>();
  private scratch = new SparseAttentionScratch();
  private ranges = new RangeList();
  private rank = new IndexScratch();
  private scores = new Float64Array(64);
  private chosen = new Int32Array(64);

  constructor(
    readonly pageSize: number,
    readonly sparsity: number | null,
    readonly tokenBudget: number | null,
    readonly sharePages: boolean,
  ) {}

  private boundsOf(cache: LayerKvCache, D: number): QuestPageBounds {
    let state = cache.methodState.get(STATE_KEY) as QuestPageBounds | undefined;
    if (!state) {
      state = new QuestPageBounds(cache.numKvHeads, D, this.pageSize);
      cache.methodState.set(STATE_KEY, state);
    }
    return state;
  }

  /**
   * Choose `k` of the first `pages` pages for query heads [h0, h0 + heads) of one KV head by the
   * summed upper bound; returns them ascending in the first k entries (a reused buffer).
   * query: [H, D].
   */
  choosePages(
    query: Float32Array, h0: number, heads: number, D: number, bounds: QuestPageBounds, kvh: number, pages: number, k: number,
  ): Int32Array {
    if (this.scores.length < pages) this.scores = new Float64Array(pages * 2);
    if (this.chosen.length < pages) this.chosen = new Int32Array(pages * 2);
    const mn = bounds.pageMin[kvh], mx = bounds.pageMax[kvh];
    for (let page = 0; page < pages; page++) {
      let s = 0;
      for (let j = 0; j < heads; j++) s += pageUpperBound(query, (h0 + j) * D, mn, mx, page * D, D);
      this.scores[page] = s;
    }
    const order = rankDescending(this.scores, pages, this.rank);
    for (let i = 0; i < k; i++) this.chosen[i] = order[i];
    sortAscending(this.chosen, k);
    return this.chosen;
  }

  decode(call: DecodeCall): HeadCounts {
    const { shape, query, position: p, cache, out, layer } = call;
    assertFullAttentionLayer(this.id, shape.slidingWindow);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    const g = H / Hkv;
    for (let kvh = 0; kvh < Hkv; kvh++) {
      if (cache.lengths[kvh] !== p + 1 || cache.positions[kvh][p] !== p) {
        throw new Error(`${this.id}: expects a full cache holding positions 0..${p} (no eviction)`);
      }
    }
    const bounds = this.boundsOf(cache, D);
    bounds.extend(cache, p + 1);
    const P = this.pageSize;
    const current = Math.floor(p / P);
    const k = questPagesFor(p, P, this.sparsity, this.tokenBudget);
    this.lastDecisions.set(layer, { layer, counts: { pageSize: P, pages: k, tokens: k * P + (p - current * P + 1) } });
    const counts = emptyCounts(H);
    for (let kvh = 0; kvh < Hkv; kvh++) {
      const keys = cache.keys[kvh], values = cache.values[kvh];
      for (let j = 0; j < g; j++) {
        const h = kvh * g + j;
        if (j === 0 || !this.sharePages) {
          this.ranges.clear();
          if (k >= current) {
            this.ranges.push(0, current * P);
          } else if (k > 0) {
            const chosen = this.sharePages
              ? this.choosePages(query, kvh * g, g, D, bounds, kvh, current, k)
              : this.choosePages(query, h, 1, D, bounds, kvh, current, k);
            for (let i = 0; i < k; i++) this.ranges.push(chosen[i] * P, chosen[i] * P + P);
          }
          this.ranges.push(current * P, p + 1);
        }
        counts.attended[h] = attendSparseRows(
          query, h * D, keys, values, D, this.ranges.data, this.ranges.count, null, 0, shape.scale, shape.logitSoftcap, out, h * D, this.scratch,
        );
        counts.dense[h] = p + 1;
      }
    }
    return counts;
  }
}

function parse(options: ResolvedOptions) {
  const pageSize = intParam(options.params, 'pageSize');
  const tokenBudget = optionalIntParam(options.params, 'tokenBudget');
  if (tokenBudget !== null && tokenBudget % pageSize !== 0) {
    throw new Error(`quest: tokenBudget (${tokenBudget}) must be a multiple of pageSize (${pageSize})`);
  }
  return { pageSize, tokenBudget, sharePages: boolParam(options.params, 'sharePages') };
}

export const questMethod: MethodDescriptor = {
  id: 'quest',
  title: 'Quest',
  phase: 'decode',
  taxonomy: { unit: 'pages', importance: 'page key min/max upper bound', budget: 'uniform', kvCache: 'full, pages selected' },
  summary: 'each decode step reads the KV pages with the highest q.k upper bound from per-page key min/max',
  params: [
    { name: 'pageSize', kind: 'integer', default: 16, min: 1, description: 'tokens per page' },
    { name: 'tokenBudget', kind: 'integer', min: 1, originalDefault: 1024, description: 'tokens read besides the current page (fixed); replaces sparsity' },
    { name: 'sharePages', kind: 'boolean', default: true, description: 'sum page scores over a KV group so the group reads one page set' },
  ],
  budgetParams: ['tokenBudget'],
  create(options) {
    const p = parse(options);
    return { decode: new QuestDecode(p.pageSize, options.sparsity, p.tokenBudget, p.sharePages) };
  },
  estimationFlops(shape, n, params) {
    const P = Number(params.pageSize);
    const D = shape.headDim;
    // Bounds: one compare for min and one for max per key element; scoring: two products, a max and
    // an add per page element per query head.
    return { atPrefill: 2 * shape.numKvHeads * n * D, perDecodeToken: 4 * shape.numHeads * Math.floor(n / P) * D + 2 * shape.numKvHeads * D };
  },
  describeBudget(n, options): BudgetDescription {
    const p = parse(options);
    // The first generated token sits at position n.
    const k = questPagesFor(n, p.pageSize, options.sparsity, p.tokenBudget);
    const read = k * p.pageSize + (n % p.pageSize) + 1;
    const expected = 1 - read / (n + 1);
    const desc: BudgetDescription = {
      requested: options.sparsity,
      counts: { pageSize: p.pageSize, pagesAtFirstStep: k, tokensAtFirstStep: read },
      expectedSparsity: expected,
      tolerance: 1e-9,
      // Whole pages: half a page either way.
      resolution: (p.pageSize / 2) / (n + 1) + 1e-9,
    };
    if (options.sparsity !== null && Math.abs(expected - options.sparsity) > desc.resolution) {
      desc.note = `the current page is always read (up to ${p.pageSize} tokens), more than the budget at n=${n}`;
    }
    return desc;
  },
};

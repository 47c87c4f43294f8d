/**
 * Block-Sparse's selection against the work its kernel does (docs/perf.md, "where the rest of the
 * factor goes"). The method selects per 16-row query chunk, but a tensor-core product covers 64 rows
 * (one warpgroup's m64): the kernel computes a 64-row × c-key product for every key chunk that ANY of
 * the product's query chunks selected, and masks the rest. So the product computes the union of its
 * chunks' selections; when the chunks choose alike (shared structure in a trained model's attention)
 * the union is close to one chunk's list, when they choose independently (random q/k) it is up to
 * productRows / c times larger.
 *
 * computed / attended = Σ over heads and products of |∪ selections| · productRows · c
 *                       ÷ exact attended (query, key) pairs (what HeadCounts.attended reports).
 * Every product counts productRows rows, also the last, partial one: the kernel computes whole
 * products and masks rows past n, keys right of the diagonal and unselected chunks.
 *
 * autoTilingWork counts the same for the Hopper kernel's automatic tiling as it runs: per CTA, key
 * tiles grouped by the set of warpgroups using them, each group in steps of blockN keys
 * (groupedCtaWork, the step lists' own rule), and a warpgroup computes 64 rows × blockN keys for every
 * step of its groups. On top of the 64-row union this adds the 16-key tiles a step carries unused.
 */
import { type ChunkLists, selectionFromLists, selectionPairCount } from '../src/backends/cuda/block-sparse-layout.js';
import { ctaTileMasksForSlots, groupedCtaWork } from '../src/backends/cuda/block-sparse-wgmma-layout.js';
import {
  AUTO_BLOCK_SPARSE_WGMMA_TILING, AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, autoTakes192RowTiling,
} from '../src/backends/cuda/kernels/block-sparse-prefill.js';

export interface ProductUnionCount {
  /** (query, key) pairs the 64-row products compute (selection unions, masked cells included). */
  computedPairs: number;
  /** Exact attended pairs of the selection (causal, n-bounded). */
  attendedPairs: number;
}

/** computed / attended of one or more counts added up (NaN when nothing was attended). */
export function unionFactor(...counts: ProductUnionCount[]): number {
  let computed = 0, attended = 0;
  for (const c of counts) {
    computed += c.computedPairs;
    attended += c.attendedPairs;
  }
  return attended === 0 ? NaN : computed / attended;
}

/** Counts lists [H, B, stride] (device format, host copy) in products of `productRows` query rows. */
export function productUnionCount(l: ChunkLists, productRows = 64): ProductUnionCount {
  const { numHeads: H, numChunks: B, chunkSize: c, stride } = l;
  if (!Number.isInteger(productRows) || productRows < c || productRows % c !== 0) {
    throw new Error(`product union: product rows ${productRows} must be a positive multiple of the chunk size ${c}`);
  }
  const chunksPerProduct = productRows / c;
  const seen = new Int32Array(B).fill(-1); // key chunk → last product id that counted it
  let computedPairs = 0, product = 0;
  for (let h = 0; h < H; h++) {
    for (let first = 0; first < B; first += chunksPerProduct, product++) {
      let union = 0;
      for (let m = first; m < Math.min(B, first + chunksPerProduct); m++) {
        const kept = l.counts[h * B + m];
        for (let i = 0; i < kept; i++) {
          const j = l.lists[(h * B + m) * stride + i];
          if (j < 0 || j >= B) throw new Error(`product union: head ${h} chunk ${m} lists key chunk ${j}, outside 0..${B - 1}`);
          if (seen[j] !== product) {
            seen[j] = product;
            union++;
          }
        }
      }
      computedPairs += union * productRows * c;
    }
  }
  const sel = selectionFromLists(l);
  let attendedPairs = 0;
  for (let h = 0; h < H; h++) attendedPairs += selectionPairCount(sel, h);
  return { computedPairs, attendedPairs };
}

/** The Hopper kernel's automatic tilings by the name the benches use. */
export type AutoTilingName = 'n128-s2' | 'c3-n64-s3';

export interface TilingWork extends ProductUnionCount {
  tiling: AutoTilingName;
}

/**
 * computed / attended work of the tiling the automatic choice runs on these lists on a GPU of
 * `multiprocessors` SMs (autoTakes192RowTiling: 192-row CTAs with 64-key steps for lists of at most a
 * fifth of the chunks or large grids, else 128-row CTAs with 128-key steps). kvLen = n (a whole prompt).
 */
export function autoTilingWork(l: ChunkLists, multiprocessors: number): TilingWork {
  const sparse = autoTakes192RowTiling(l, l.numHeads, multiprocessors);
  const { consumers, blockN } = sparse ? AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING : AUTO_BLOCK_SPARSE_WGMMA_TILING;
  const slots = 4 * consumers;
  const ctaRows = Math.ceil(Math.ceil(l.numTokens / 16) / slots);
  let steps = 0;
  for (let h = 0; h < l.numHeads; h++) {
    for (let cr = 0; cr < ctaRows; cr++) {
      for (const s of groupedCtaWork(ctaTileMasksForSlots(l, l.numTokens, h, cr, slots), consumers, blockN / 16).computed) steps += s;
    }
  }
  const sel = selectionFromLists(l);
  let attendedPairs = 0;
  for (let h = 0; h < l.numHeads; h++) attendedPairs += selectionPairCount(sel, h);
  return { tiling: sparse ? 'c3-n64-s3' : 'n128-s2', computedPairs: steps * 64 * blockN, attendedPairs };
}

/**
 * The work of the sink + local window kernel (flash-prefill-wgmma.cu with SINK_LOCAL, launcher
 * src/backends/cuda/kernels/flash-prefill-wgmma-sink-local.ts), counted on the host: which key tiles
 * each 128-row block visits, by the kernel's own rule, against the pairs its rows attend. With
 * foldSinks (SINK_FOLD) the sinks ride in the first window tile's masked head where they fit, so that
 * block visits no sink tile. persistent (SINK_PERSIST) visits the same tiles; only the time model
 * prices its blocks (work items) differently.
 *
 * The time model prices a block as a fixed cost plus its tiles, a tile that needs the mask loop dearer
 * than one that does not: per-SM µs fitted on the H100 to session 7's bench sparse rows of this kernel
 * at 16K-64K with the fixed part taken from the block-sparse kernel's fit (docs/perf.md, "Session 7:
 * sink + local"; /work/notes/s8/perf-sl.md). It predicts ratios between variants, not absolute times.
 */
import { type SinkLocalRule, sinkLocalKeys } from '../src/methods/sink-local.js';

/** Query rows per block of the wgmma prefill kernel, and per warpgroup. */
const BLOCK_ROWS = 128;
const WARPGROUP_ROWS = 64;

export interface WindowKernelVariant {
  /** Keys per K/V tile (the kernel's BLOCK_N). */
  blockN: 64 | 128;
  foldSinks: boolean;
  /** Work items walked by persistent blocks: the same tiles, a smaller fixed cost per item (time model only). */
  persistent?: boolean;
}

/** The tiles one block visits, in the kernel's order, and how its sinks are reached. */
export interface BlockTiles {
  /** Key tile indices: the sink tiles, then the window tiles from the first row's window start to the diagonal. */
  tiles: number[];
  /** Sinks carried in the first window tile's head (0: not folded). */
  foldCols: number;
  /** Leading entries of `tiles` visited for sinks alone. */
  sinkTiles: number;
  /** Per visited tile: does either warpgroup run the mask loop on it? */
  masked: boolean[];
}

function windowStart(p: number, rule: SinkLocalRule, keys: Int32Array): number {
  sinkLocalKeys(p, rule, keys);
  return keys[1];
}

/**
 * The tiles of the block whose rows are positions firstPos .. lastPos (at most 128), the cache holding
 * keys [0, kvLen): the kernel's rule (firstTile, foldCols, sinkTiles, tileAt, maskScores' tile test).
 */
export function blockTiles(rule: SinkLocalRule, firstPos: number, lastPos: number, kvLen: number, v: WindowKernelVariant): BlockTiles {
  if (!(lastPos >= firstPos && lastPos - firstPos < BLOCK_ROWS && lastPos < kvLen)) {
    throw new Error(`sink-local model: a block holds 1-${BLOCK_ROWS} positions below kvLen (got ${firstPos}..${lastPos}, kvLen ${kvLen})`);
  }
  const BN = v.blockN, S = rule.sinkTokens;
  const keys = new Int32Array(2);
  const firstLow = windowStart(firstPos, rule, keys);
  const firstTile = Math.floor(firstLow / BN);
  const foldCols = v.foldSinks && S > 0 && firstTile > 0 && firstLow - firstTile * BN >= S ? S : 0;
  const sinkTiles = S > 0 && foldCols === 0 ? Math.min(Math.ceil(S / BN), firstTile) : 0;
  const nTiles = Math.ceil((lastPos + 1) / BN);
  const tiles: number[] = [];
  for (let i = 0; i < sinkTiles; i++) tiles.push(i);
  for (let j = firstTile; j < nTiles; j++) tiles.push(j);
  const masked = tiles.map((j) => {
    const n0 = j * BN;
    for (let wgFirst = firstPos; wgFirst <= lastPos; wgFirst += WARPGROUP_ROWS) {
      // The kernel's warpgroup spans 64 rows whether or not they are all real (rows past T are padding).
      const wgLastLow = windowStart(wgFirst + WARPGROUP_ROWS - 1, rule, keys);
      if (n0 + BN - 1 > wgFirst || n0 + BN > kvLen || n0 < wgLastLow) return true;
    }
    return false;
  });
  return { tiles, foldCols, sinkTiles, masked };
}

export interface WindowKernelWork {
  variant: WindowKernelVariant;
  blocks: number;
  /** Key tiles visited, summed over the blocks of one head. */
  tiles: number;
  maskedTiles: number;
  /** Tiles visited for sinks alone. */
  sinkTiles: number;
  /** Blocks whose sinks ride in their first window tile. */
  foldedBlocks: number;
  /** Query-key products computed (tiles × BLOCK_N × the block's real rows) and attended, one head. */
  computedPairs: number;
  attendedPairs: number;
}

/** One head's work for queries queryStart .. queryStart + T - 1 against the cache [0, queryStart + T). */
export function windowKernelWork(rule: SinkLocalRule, queryStart: number, T: number, v: WindowKernelVariant): WindowKernelWork {
  if (!(Number.isInteger(queryStart) && queryStart >= 0 && Number.isInteger(T) && T >= 1)) {
    throw new Error(`sink-local model: need queryStart >= 0 and T >= 1 (got ${queryStart}, ${T})`);
  }
  const kvLen = queryStart + T;
  const keys = new Int32Array(2);
  const w: WindowKernelWork = { variant: v, blocks: 0, tiles: 0, maskedTiles: 0, sinkTiles: 0, foldedBlocks: 0, computedPairs: 0, attendedPairs: 0 };
  for (let m0 = 0; m0 < T; m0 += BLOCK_ROWS) {
    const first = queryStart + m0, last = queryStart + Math.min(T, m0 + BLOCK_ROWS) - 1;
    const b = blockTiles(rule, first, last, kvLen, v);
    w.blocks++;
    w.tiles += b.tiles.length;
    w.maskedTiles += b.masked.filter(Boolean).length;
    w.sinkTiles += b.sinkTiles;
    if (b.foldCols > 0) w.foldedBlocks++;
    w.computedPairs += b.tiles.length * v.blockN * (last - first + 1);
    for (let p = first; p <= last; p++) {
      sinkLocalKeys(p, rule, keys);
      w.attendedPairs += keys[0] + (p + 1 - keys[1]);
    }
  }
  return w;
}

/**
 * Per-SM µs of the time model on the H100 (128-key tiles): a block's fixed cost, a tile without and
 * with the mask loop. A 64-key tile costs 0.5 / 0.89 of a 128-key one (dense v3 ran 64-key tiles at
 * 0.89 of the 128-key rate, docs/perf.md). A persistent work item's fixed cost is a guess written before
 * its first measurement: the next item's Q and first K/V loads run under the current item's last tile
 * and store, leaving the item's setup and its last P·V.
 */
export const H100_WINDOW_KERNEL_COSTS = { blockUs: 3.0, persistentItemUs: 1.0, tileUs: 1.87, maskedTileUs: 2.44, sms: 132 } as const;

/** Predicted kernel ms for `heads` query heads from the work of one head. */
export function predictedWindowKernelMs(w: WindowKernelWork, heads: number, c = H100_WINDOW_KERNEL_COSTS): number {
  const tileScale = w.variant.blockN === 128 ? 1 : 0.5 / 0.89;
  const fixedUs = w.variant.persistent ? c.persistentItemUs : c.blockUs;
  const perHeadUs = w.blocks * fixedUs + tileScale * ((w.tiles - w.maskedTiles) * c.tileUs + w.maskedTiles * c.maskedTileUs);
  return (perHeadUs * heads) / c.sms / 1000;
}

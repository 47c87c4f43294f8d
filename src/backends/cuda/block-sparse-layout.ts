/**
 * Host side of the GPU block-sparse prefill: the index format the kernels read, its validation and
 * the host references the tests hold the kernels to. No GPU needed here.
 *
 * Selection (the Block-Sparse method's own form, src/methods/block-sparse.ts): per query head h and
 * query chunk m of c rows (queries [m·c, min(n, (m+1)·c))), the ascending key chunks j ≤ m it keeps;
 * a kept chunk covers keys [j·c, min(n, (j+1)·c)) and the causal mask key ≤ query applies inside it.
 *
 * Device chunk lists (what the GPU estimation writes and block_sparse_union reads): lists
 * [H, B, stride] int32 and counts [H, B] int32; chunk m of head h keeps lists[(h·B + m)·stride + i]
 * for i < counts[h·B + m]. stride is the method's t (top chunks), so the estimation writes straight
 * into it.
 *
 * CTA unions (block_sparse_union → block_sparse_prefill): a CTA is 4 warps of mTiles 16-row query
 * tiles each, slots = 4·mTiles tiles: headsPerCta query heads of one KV group × (slots / headsPerCta)
 * consecutive tiles (slot s: head s / (slots / headsPerCta), tile s % (slots / headsPerCta)). Its union
 * lists the 16-key tiles any slot attends, ascending, each with the mask of the slots that do.
 * Chunk sizes must be multiples of 16 (a chunk is c / 16 tiles both ways).
 */

/** Rows per query tile and keys per key tile of the kernel. */
export const DEVICE_TILE = 16;
/** Warps per attention CTA. */
export const CTA_WARPS = 4;

/** One query head's selection: chunk m keeps selected[m·stride .. m·stride + counts[m]). */
export interface HeadChunkSelection {
  selected: Int32Array; // [B, stride]
  counts: Int32Array; // [B]
  stride: number;
}

export interface ChunkSelection {
  chunkSize: number; // c
  numTokens: number; // n: prompt length (queries = keys = positions 0 .. n-1)
  heads: HeadChunkSelection[]; // [H]
}

/** The device chunk lists on the host (see the file comment). */
export interface ChunkLists {
  numHeads: number; // H
  numTokens: number; // n
  chunkSize: number; // c
  numChunks: number; // B = ceil(n / c)
  stride: number;
  lists: Int32Array; // [H, B, stride]
  counts: Int32Array; // [H, B]
}

export function assertDeviceChunkSize(c: number): void {
  if (!Number.isInteger(c) || c < DEVICE_TILE || c % DEVICE_TILE !== 0) {
    throw new Error(`block-sparse (GPU): chunk size ${c} is not a positive multiple of ${DEVICE_TILE} (the kernel's tile)`);
  }
}

/** Packs a selection into the device format, checking every list is ascending and causal. */
export function packChunkLists(sel: ChunkSelection): ChunkLists {
  const { chunkSize: c, numTokens: n, heads } = sel;
  assertDeviceChunkSize(c);
  if (!Number.isInteger(n) || n < 1) throw new Error(`block-sparse layout: token count must be a positive integer (got ${n})`);
  if (heads.length === 0) throw new Error('block-sparse layout: no heads');
  const B = Math.ceil(n / c);
  const stride = Math.max(1, ...heads.map((x) => x.stride));
  const lists = new Int32Array(heads.length * B * stride);
  const counts = new Int32Array(heads.length * B);
  heads.forEach((head, h) => {
    if (head.counts.length < B) throw new Error(`block-sparse layout: head ${h} has ${head.counts.length} chunk counts, need ${B}`);
    for (let m = 0; m < B; m++) {
      const kept = head.counts[m];
      if (kept < 0 || kept > head.stride || m * head.stride + kept > head.selected.length) {
        throw new Error(`block-sparse layout: head ${h} chunk ${m} keeps ${kept} chunks (stride ${head.stride}, ${head.selected.length} entries)`);
      }
      for (let i = 0; i < kept; i++) {
        const j = head.selected[m * head.stride + i];
        if (j < 0 || j > m) throw new Error(`block-sparse layout: head ${h} chunk ${m} keeps key chunk ${j}, outside 0..${m} (causal)`);
        if (i > 0 && j <= head.selected[m * head.stride + i - 1]) throw new Error(`block-sparse layout: head ${h} chunk ${m}: key chunks not strictly ascending`);
        lists[(h * B + m) * stride + i] = j;
      }
      counts[h * B + m] = kept;
    }
  });
  return { numHeads: heads.length, numTokens: n, chunkSize: c, numChunks: B, stride, lists, counts };
}

/** The lists back in the method's per-head form (to compare a GPU selection with the CPU's). */
export function selectionFromLists(l: ChunkLists): ChunkSelection {
  const heads: HeadChunkSelection[] = [];
  for (let h = 0; h < l.numHeads; h++) {
    heads.push({
      selected: l.lists.slice(h * l.numChunks * l.stride, (h + 1) * l.numChunks * l.stride),
      counts: l.counts.slice(h * l.numChunks, (h + 1) * l.numChunks),
      stride: l.stride,
    });
  }
  return { chunkSize: l.chunkSize, numTokens: l.numTokens, heads };
}

/** Keys query `query` of head h attends under the selection, ascending (key ≤ query, key < n). */
export function selectedKeysOf(sel: ChunkSelection, h: number, query: number): number[] {
  const { chunkSize: c, numTokens: n } = sel;
  const { selected, counts, stride } = sel.heads[h];
  const m = Math.floor(query / c);
  const keys: number[] = [];
  for (let i = 0; i < counts[m]; i++) {
    const j = selected[m * stride + i];
    for (let key = j * c; key < Math.min((j + 1) * c, n, query + 1); key++) keys.push(key);
  }
  return keys;
}

/** Attended (query, key) pairs of head h (what HeadCounts.attended reports), chunk by chunk. */
export function selectionPairCount(sel: ChunkSelection, h: number): number {
  const { chunkSize: c, numTokens: n } = sel;
  const { selected, counts, stride } = sel.heads[h];
  const B = Math.ceil(n / c);
  let pairs = 0;
  for (let m = 0; m < B; m++) {
    const rows = Math.min(c, n - m * c);
    for (let i = 0; i < counts[m]; i++) {
      const j = selected[m * stride + i];
      // Chunks left of the diagonal are whole (only the last chunk can be partial, and it is m's own).
      pairs += j < m ? rows * c : (rows * (rows + 1)) / 2;
    }
  }
  return pairs;
}

/** How the attention kernel tiles the heads and queries into CTAs, and the union buffer it needs. */
export interface CtaGeometry {
  headsPerCta: number;
  mTiles: number; // query tiles per warp
  slots: number; // query tiles per CTA (4 · mTiles)
  queryTilesPerCta: number; // per head: slots / headsPerCta
  numQueryTiles: number;
  numCtaRows: number; // CTAs along the queries, per head group
  numHeadGroups: number; // H / headsPerCta
  /** Entries per CTA union: no more than the key tiles, nor than the slots' lists' worth of tiles. */
  unionStride: number;
}

export interface CtaGeometryInput {
  numTokens: number;
  numHeads: number;
  numKvHeads: number;
  headsPerCta: number;
  mTiles: number;
  listStride: number;
  chunkSize: number;
}

export function ctaGeometry(a: CtaGeometryInput): CtaGeometry {
  const { headsPerCta, mTiles } = a;
  if (![1, 2, 4].includes(headsPerCta)) throw new Error(`block-sparse (GPU): heads per CTA must be 1, 2 or 4 (got ${headsPerCta})`);
  if (![1, 2].includes(mTiles)) throw new Error(`block-sparse (GPU): query tiles per warp must be 1 or 2 (got ${mTiles})`);
  const group = a.numHeads / a.numKvHeads;
  if (!Number.isInteger(group) || group % headsPerCta !== 0) {
    throw new Error(`block-sparse (GPU): ${headsPerCta} heads per CTA must divide the GQA group (${a.numHeads} query heads, ${a.numKvHeads} KV heads)`);
  }
  const numQueryTiles = Math.ceil(a.numTokens / DEVICE_TILE);
  const slots = CTA_WARPS * mTiles;
  const queryTilesPerCta = slots / headsPerCta;
  const chunkTiles = a.chunkSize / DEVICE_TILE;
  return {
    headsPerCta,
    mTiles,
    slots,
    queryTilesPerCta,
    numQueryTiles,
    numCtaRows: Math.ceil(numQueryTiles / queryTilesPerCta),
    numHeadGroups: a.numHeads / headsPerCta,
    unionStride: Math.max(1, Math.min(numQueryTiles, slots * a.listStride * chunkTiles)),
  };
}

/**
 * Host reference of block_sparse_union for one CTA (head group hg, CTA row cr): entries
 * keyTile | slotMask << 24 (as the kernel's int32, so a mask with bit 7 set reads negative), ascending.
 */
export function ctaUnion(l: ChunkLists, geo: CtaGeometry, hg: number, cr: number): number[] {
  const f = l.chunkSize / DEVICE_TILE;
  const masks = new Map<number, number>();
  for (let w = 0; w < geo.slots; w++) {
    const h = hg * geo.headsPerCta + Math.floor(w / geo.queryTilesPerCta);
    const qt = cr * geo.queryTilesPerCta + (w % geo.queryTilesPerCta);
    if (qt >= geo.numQueryTiles) continue;
    const m = Math.floor(qt / f);
    const row = h * l.numChunks + m;
    for (let i = 0; i < l.counts[row]; i++) {
      for (let u = 0; u < f; u++) {
        const kt = l.lists[row * l.stride + i] * f + u;
        if (kt * DEVICE_TILE > qt * DEVICE_TILE + DEVICE_TILE - 1 || kt * DEVICE_TILE >= l.numTokens) continue;
        masks.set(kt, (masks.get(kt) ?? 0) | (1 << w));
      }
    }
  }
  return [...masks.keys()].sort((a, b) => a - b).map((kt) => kt | (masks.get(kt)! << 24)); // JS | gives int32, as the kernel stores
}

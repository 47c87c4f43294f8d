/**
 * Host side of the GPU block-sparse prefill: the Block-Sparse method's chunk selection
 * (src/methods/block-sparse.ts) turned into the kernel's index format. No GPU needed here.
 *
 * Selection (the method's own form): per query head h and query chunk m of c rows (queries
 * [m·c, min(n, (m+1)·c))), the ascending key chunks j ≤ m it keeps; a kept chunk covers keys
 * [j·c, min(n, (j+1)·c)) and the causal mask key ≤ query applies inside it.
 *
 * Device layout (kernels/block-sparse-prefill.cu): CSR lists of 16-key tiles per (head, 16-row query
 * tile), row index h·numQueryTiles + m16. With c = 16 (the method's default) tiles are chunks and the
 * lists are the selection itself. With c = 16·f every query chunk splits into f query tiles that each
 * inherit the chunk's key chunks, each expanded to its f key tiles; key tiles that start past a query
 * tile's last row are dropped (causality masks them whole, so the attended pairs are unchanged) and so
 * are tiles past the last key. Chunk sizes that are not multiples of 16 are refused.
 */

/** Rows per query tile and keys per key tile of the kernel. */
export const DEVICE_TILE = 16;

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

export interface BlockSparseLayout {
  numHeads: number; // H
  numTokens: number; // n
  numQueryTiles: number; // ceil(n / 16)
  /** [H·numQueryTiles + 1] CSR row starts into keyTiles. */
  tileOffsets: Int32Array;
  /** Ascending key-tile indices per row. */
  keyTiles: Int32Array;
}

/** Converts the method's chunk selection into the kernel's tile lists (see the file comment). */
export function layoutFromSelection(sel: ChunkSelection): BlockSparseLayout {
  const { chunkSize: c, numTokens: n, heads } = sel;
  if (!Number.isInteger(c) || c < DEVICE_TILE || c % DEVICE_TILE !== 0) {
    throw new Error(`block-sparse layout: chunk size ${c} is not a positive multiple of ${DEVICE_TILE} (the GPU tile)`);
  }
  if (!Number.isInteger(n) || n < 1) throw new Error(`block-sparse layout: token count must be a positive integer (got ${n})`);
  if (heads.length === 0) throw new Error('block-sparse layout: no heads');
  const f = c / DEVICE_TILE;
  const numChunks = Math.ceil(n / c);
  const numQueryTiles = Math.ceil(n / DEVICE_TILE);
  const numKeyTiles = numQueryTiles;
  const H = heads.length;
  const tileOffsets = new Int32Array(H * numQueryTiles + 1);
  const tiles: number[] = [];
  for (let h = 0; h < H; h++) {
    const { selected, counts, stride } = heads[h];
    if (counts.length < numChunks) throw new Error(`block-sparse layout: head ${h} has ${counts.length} chunk counts, need ${numChunks}`);
    for (let m = 0; m < numChunks; m++) {
      const kept = counts[m];
      if (kept < 0 || kept > stride || m * stride + kept > selected.length) {
        throw new Error(`block-sparse layout: head ${h} chunk ${m} keeps ${kept} chunks (stride ${stride}, ${selected.length} entries)`);
      }
      for (let i = 0; i < kept; i++) {
        const j = selected[m * stride + i];
        if (j < 0 || j > m) throw new Error(`block-sparse layout: head ${h} chunk ${m} keeps key chunk ${j}, outside 0..${m} (causal)`);
        if (i > 0 && j <= selected[m * stride + i - 1]) throw new Error(`block-sparse layout: head ${h} chunk ${m}: key chunks not strictly ascending`);
      }
      for (let s = 0; s < f; s++) {
        const qt = m * f + s;
        if (qt >= numQueryTiles) break;
        tileOffsets[h * numQueryTiles + qt] = tiles.length;
        const lastQuery = Math.min(n - 1, qt * DEVICE_TILE + DEVICE_TILE - 1);
        for (let i = 0; i < kept; i++) {
          const j = selected[m * stride + i];
          for (let u = 0; u < f; u++) {
            const kt = j * f + u;
            if (kt >= numKeyTiles || kt * DEVICE_TILE > lastQuery) break;
            tiles.push(kt);
          }
        }
      }
    }
  }
  tileOffsets[H * numQueryTiles] = tiles.length;
  return { numHeads: H, numTokens: n, numQueryTiles, tileOffsets, keyTiles: Int32Array.from(tiles) };
}

/**
 * The keys query `query` of head h attends under the layout, ascending: the union of its tile's key
 * tiles, clipped to key ≤ query and key < n (exactly what the kernel masks).
 */
export function layoutKeysOf(layout: BlockSparseLayout, h: number, query: number): number[] {
  const row = h * layout.numQueryTiles + Math.floor(query / DEVICE_TILE);
  const keys: number[] = [];
  for (let i = layout.tileOffsets[row]; i < layout.tileOffsets[row + 1]; i++) {
    const start = layout.keyTiles[i] * DEVICE_TILE;
    const end = Math.min(start + DEVICE_TILE, layout.numTokens, query + 1);
    for (let key = start; key < end; key++) keys.push(key);
  }
  return keys;
}

/** Attended (query, key) pairs of head h under the layout (what HeadCounts.attended reports). */
export function layoutPairCount(layout: BlockSparseLayout, h: number): number {
  let pairs = 0;
  for (let t = 0; t < layout.numTokens; t++) pairs += layoutKeysOf(layout, h, t).length;
  return pairs;
}

/**
 * Runs the CPU Block-Sparse method's chunk selection (BlockSparsePrefill.selectChunks, the same code
 * the CPU prefill uses) for every query head: the host reference that the GPU estimation
 * (kernels/block-sparse-estimate.cu) must reproduce entry for entry, and a way to feed the GPU
 * attention kernel a selection made on the host (tests, hand-made lists).
 */
import type { BlockSparsePrefill } from '../../methods/block-sparse.js';
import type { ChunkSelection, HeadChunkSelection } from './block-sparse-layout.js';

/**
 * Mean of each c-row chunk of one KV head's keys [n, D] → [B, D]. The last partial chunk is zero-padded
 * and still divided by c, exactly as the method pools (src/methods/block-sparse.ts, meanPool).
 */
export function poolKeyChunks(keys: Float32Array, n: number, D: number, c: number): Float64Array {
  const B = Math.ceil(n / c);
  const out = new Float64Array(B * D);
  for (let r = 0; r < n; r++) {
    const o = Math.floor(r / c) * D;
    for (let d = 0; d < D; d++) out[o + d] += keys[r * D + d];
  }
  for (let i = 0; i < B * D; i++) out[i] /= c;
  return out;
}

/**
 * queries: [n, H, D]; keys: [Hkv] arrays of [n, D] (the layer cache's per-KV-head rows). Query head h
 * scores against KV head h / (H / Hkv), as the method does.
 */
export function selectBlockSparseChunks(
  method: BlockSparsePrefill, queries: Float32Array, keys: Float32Array[], n: number, H: number, D: number,
): ChunkSelection {
  const Hkv = keys.length;
  if (Hkv === 0 || H % Hkv !== 0) throw new Error(`block-sparse selection: ${H} query heads are not a multiple of ${Hkv} KV heads`);
  if (queries.length < n * H * D) throw new Error(`block-sparse selection: queries hold ${queries.length} values, need n·H·D = ${n * H * D}`);
  const c = method.chunkSize;
  const B = Math.ceil(n / c);
  const t = method.topChunksFor(n);
  const pools = keys.map((k, kvh) => {
    if (k.length < n * D) throw new Error(`block-sparse selection: KV head ${kvh} holds ${k.length / D} rows, need ${n}`);
    return poolKeyChunks(k, n, D, c);
  });
  const heads: HeadChunkSelection[] = [];
  for (let h = 0; h < H; h++) {
    const selected = new Int32Array(B * t);
    const counts = new Int32Array(B);
    method.selectChunks(queries, n, H, D, h, pools[Math.floor(h / (H / Hkv))], t, selected, counts);
    heads.push({ selected, counts, stride: t });
  }
  return { chunkSize: c, numTokens: n, heads };
}

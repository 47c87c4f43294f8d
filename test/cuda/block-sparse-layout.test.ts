/**
 * Host side of the GPU block-sparse prefill (no GPU): the device chunk lists hold the Block-Sparse
 * method's selection unchanged, the CTA unions (the host reference of block_sparse_union) cover exactly
 * the selected causal (query, key) pairs of each warp, and the selection is the CPU method's own (its
 * prefill output and pair counts are reproduced from the selection alone).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ChunkSelection, DEVICE_TILE, ctaGeometry, ctaUnion, packChunkLists, selectedKeysOf, selectionFromLists,
  selectionPairCount,
} from '../../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import { BlockSparsePrefill, exactBlockSparsePairs } from '../../src/methods/block-sparse.js';
import { cacheOf, rng, runPrefill, synthetic } from '../methods/helpers.js';

/** Random selection: each chunk m keeps a random ascending subset of 0..m (sometimes none, sometimes all). */
function randomSelection(n: number, c: number, H: number, seed: number): ChunkSelection {
  const r = rng(seed);
  const B = Math.ceil(n / c);
  const heads = Array.from({ length: H }, () => {
    const selected = new Int32Array(B * B);
    const counts = new Int32Array(B);
    for (let m = 0; m < B; m++) {
      const mode = r();
      let k = 0;
      for (let j = 0; j <= m; j++) {
        const keep = mode < 0.15 ? false : mode > 0.85 ? true : r() < 0.4;
        if (keep) selected[m * B + k++] = j;
      }
      counts[m] = k;
    }
    return { selected, counts, stride: B };
  });
  return { chunkSize: c, numTokens: n, heads };
}

/** Every slot of every CTA sees, through the union entries that carry its bit, exactly its selected keys. */
function assertUnionsCover(sel: ChunkSelection, H: number, Hkv: number, headsPerCta: number, mTiles = 1): void {
  const lists = packChunkLists(sel);
  const geo = ctaGeometry({ numTokens: sel.numTokens, numHeads: H, numKvHeads: Hkv, headsPerCta, mTiles, listStride: lists.stride, chunkSize: sel.chunkSize });
  for (let hg = 0; hg < geo.numHeadGroups; hg++) {
    for (let cr = 0; cr < geo.numCtaRows; cr++) {
      const entries = ctaUnion(lists, geo, hg, cr);
      assert.ok(entries.length <= geo.unionStride, 'union fits its stride');
      for (let i = 1; i < entries.length; i++) assert.ok((entries[i] & 0xffffff) > (entries[i - 1] & 0xffffff), 'union ascending');
      for (let w = 0; w < geo.slots; w++) {
        const h = hg * headsPerCta + Math.floor(w / geo.queryTilesPerCta);
        const qt = cr * geo.queryTilesPerCta + (w % geo.queryTilesPerCta);
        for (let query = qt * DEVICE_TILE; query < Math.min(sel.numTokens, (qt + 1) * DEVICE_TILE); query++) {
          const keys: number[] = [];
          for (const e of entries) {
            if (((e >>> 24) & (1 << w)) === 0) continue;
            const start = (e & 0xffffff) * DEVICE_TILE;
            for (let key = start; key < Math.min(start + DEVICE_TILE, sel.numTokens, query + 1); key++) keys.push(key);
          }
          assert.deepEqual(keys, selectedKeysOf(sel, h, query), `head ${h} query ${query} (CTA ${hg}/${cr}, warp ${w})`);
        }
      }
    }
  }
}

function bruteForcePairs(sel: ChunkSelection, h: number): number {
  let pairs = 0;
  for (let q = 0; q < sel.numTokens; q++) pairs += selectedKeysOf(sel, h, q).length;
  return pairs;
}

describe('block-sparse device layout', () => {
  test('CTA unions cover exactly the selected pairs: random selections, c = 16, 32, 48, 1/2/4 heads per CTA, 1/2 tiles per warp', () => {
    let seed = 1;
    for (const c of [16, 32, 48]) {
      for (const n of [1, 15, 16, 17, 100, 161, 2 * c + 1]) {
        for (const hpc of [1, 2, 4]) {
          for (const mTiles of [1, 2]) assertUnionsCover(randomSelection(n, c, 4, seed++), 4, 1, hpc, mTiles);
        }
      }
    }
  });

  test('packed lists hold the selection unchanged; pair counts match a brute-force count', () => {
    const sel = randomSelection(83, 16, 3, 7);
    const back = selectionFromLists(packChunkLists(sel));
    for (let h = 0; h < 3; h++) {
      const { selected, counts, stride } = sel.heads[h];
      for (let m = 0; m < Math.ceil(83 / 16); m++) {
        assert.equal(back.heads[h].counts[m], counts[m]);
        assert.deepEqual([...back.heads[h].selected.subarray(m * back.heads[h].stride, m * back.heads[h].stride + counts[m])],
          [...selected.subarray(m * stride, m * stride + counts[m])]);
      }
      assert.equal(selectionPairCount(sel, h), bruteForcePairs(sel, h));
    }
  });

  test('a selection of every causal chunk is dense causal attention; an empty one attends nothing', () => {
    for (const c of [16, 32]) {
      const n = 90, B = Math.ceil(n / c);
      const all = { selected: new Int32Array(B * B), counts: new Int32Array(B), stride: B };
      for (let m = 0; m < B; m++) {
        for (let j = 0; j <= m; j++) all.selected[m * B + j] = j;
        all.counts[m] = m + 1;
      }
      const none = { selected: new Int32Array(B), counts: new Int32Array(B), stride: 1 };
      const sel = { chunkSize: c, numTokens: n, heads: [all, none] };
      for (let qi = 0; qi < n; qi++) {
        assert.deepEqual(selectedKeysOf(sel, 0, qi), Array.from({ length: qi + 1 }, (_, i) => i));
        assert.deepEqual(selectedKeysOf(sel, 1, qi), []);
      }
      assert.equal(selectionPairCount(sel, 0), (n * (n + 1)) / 2);
      assert.equal(selectionPairCount(sel, 1), 0);
      assertUnionsCover(sel, 2, 1, 1);
      assertUnionsCover(sel, 2, 2, 1);
    }
  });

  test('the last partial block: its key tile is clipped to the prompt', () => {
    const n = 37; // chunks [0,16) [16,32) [32,37)
    const sel: ChunkSelection = {
      chunkSize: 16, numTokens: n,
      heads: [{ selected: Int32Array.from([0, 0, 0, 0, 0, 2]), counts: Int32Array.from([1, 0, 2]), stride: 2 }],
    };
    assert.deepEqual(selectedKeysOf(sel, 0, 36), [...Array.from({ length: 16 }, (_, i) => i), 32, 33, 34, 35, 36]);
    assert.deepEqual(selectedKeysOf(sel, 0, 32), [...Array.from({ length: 16 }, (_, i) => i), 32]);
    assert.deepEqual(selectedKeysOf(sel, 0, 20), []);
    assert.equal(selectionPairCount(sel, 0), (16 * 17) / 2 + 5 * 16 + (5 * 6) / 2); // chunk 0 on its diagonal; chunk 2: chunk 0 whole, its own diagonal
    assertUnionsCover(sel, 1, 1, 1);
  });

  test('bad selections are refused with the problem named', () => {
    const one = (selected: number[], counts: number[], stride: number): ChunkSelection => ({
      chunkSize: 16, numTokens: 40, heads: [{ selected: Int32Array.from(selected), counts: Int32Array.from(counts), stride }],
    });
    assert.throws(() => packChunkLists({ ...one([0, 0, 0], [1, 1, 1], 1), chunkSize: 8 }), /multiple of 16/);
    assert.throws(() => packChunkLists(one([0, 2, 0], [1, 1, 1], 1)), /outside 0\.\.1/);
    assert.throws(() => packChunkLists(one([0, 0, 1, 0, 2, 1], [1, 2, 2], 2)), /ascending/);
    assert.throws(() => packChunkLists(one([0, 0], [1, 1], 1)), /chunk counts/);
    const geometry = { numTokens: 40, numHeads: 6, numKvHeads: 2, headsPerCta: 2, mTiles: 1, listStride: 1, chunkSize: 16 };
    assert.throws(() => ctaGeometry(geometry), /divide the GQA group/);
    assert.throws(() => ctaGeometry({ ...geometry, headsPerCta: 1, mTiles: 4 }), /tiles per warp/);
  });

  test('GQA: the CPU method\'s selection reproduces its output and pair counts (= exactBlockSparsePairs)', () => {
    for (const { n, H, Hkv, t, seed } of [
      { n: 150, H: 4, Hkv: 2, t: 4, seed: 3 },
      { n: 97, H: 6, Hkv: 2, t: 3, seed: 4 },
      { n: 64, H: 2, Hkv: 1, t: 10, seed: 5 }, // t >= chunks: dense
    ]) {
      const D = 16;
      const data = synthetic(n, H, Hkv, D, seed);
      const method = new BlockSparsePrefill(16, null, t);
      const cache = cacheOf(data);
      const sel = selectBlockSparseChunks(method, data.queries, cache.keys.map((k) => k.subarray(0, n * D)), n, H, D);
      const { out, counts } = runPrefill(new BlockSparsePrefill(16, null, t), data);
      const ref = new Float32Array(n * H * D);
      const g = H / Hkv;
      for (let h = 0; h < H; h++) {
        assert.equal(counts.attended[h], selectionPairCount(sel, h), `pairs of head ${h}`);
        assert.equal(counts.attended[h], exactBlockSparsePairs(n, 16, method.topChunksFor(n)), `closed-form pairs of head ${h}`);
        const kvh = Math.floor(h / g);
        for (let qi = 0; qi < n; qi++) {
          const keys = selectedKeysOf(sel, h, qi);
          const s = keys.map((key) => {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += data.queries[(qi * H + h) * D + d] * data.keys[(key * Hkv + kvh) * D + d];
            return dot * data.shape.scale;
          });
          const mx = Math.max(...s);
          const w = s.map((x) => Math.exp(x - mx));
          const z = w.reduce((a, b) => a + b, 0);
          for (let d = 0; d < D; d++) {
            let acc = 0;
            keys.forEach((key, i) => { acc += w[i] * data.values[(key * Hkv + kvh) * D + d]; });
            ref[(qi * H + h) * D + d] = acc / z;
          }
        }
      }
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i] - out[i]));
      assert.ok(maxDiff < 1e-5, `selection attention differs from the CPU method by ${maxDiff}`);
      // With free choices (3 < t < chunks), heads of one KV group select separately and differ somewhere.
      if (t > 3 && t < Math.ceil(n / 16)) {
        const differ = sel.heads.some((a, h) => h % g !== 0 && a.selected.some((x, i) => x !== sel.heads[h - 1].selected[i]));
        assert.ok(differ, 'query heads of one KV group keep their own selections');
      }
      for (const hpc of [1, 2].filter((x) => g % x === 0)) {
        assertUnionsCover(sel, H, Hkv, hpc, 1);
        assertUnionsCover(sel, H, Hkv, hpc, 2);
      }
    }
  });
});

/**
 * Host side of the GPU block-sparse prefill (no GPU): the conversion from the Block-Sparse method's
 * chunk selection to the kernel's 16-key tile lists covers exactly the selected causal (query, key)
 * pairs, and the selection it is built from is the CPU method's own (its prefill output and pair
 * counts are reproduced from the layout alone).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ChunkSelection, DEVICE_TILE, layoutFromSelection, layoutKeysOf, layoutPairCount,
} from '../../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import { BlockSparsePrefill } from '../../src/methods/block-sparse.js';
import { cacheOf, rng, runPrefill, synthetic } from '../methods/helpers.js';

/** The selection's keys for `query` of head h: kept chunks clipped to key <= query, key < n. */
function selectedKeys(sel: ChunkSelection, h: number, query: number): number[] {
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

function assertExactCoverage(sel: ChunkSelection): void {
  const layout = layoutFromSelection(sel);
  assert.equal(layout.numQueryTiles, Math.ceil(sel.numTokens / DEVICE_TILE));
  for (let h = 0; h < sel.heads.length; h++) {
    for (let qi = 0; qi < sel.numTokens; qi++) {
      assert.deepEqual(layoutKeysOf(layout, h, qi), selectedKeys(sel, h, qi), `head ${h} query ${qi}`);
    }
    // Lists ascending, no tile past the last key or wholly above the tile's diagonal (no wasted work).
    for (let qt = 0; qt < layout.numQueryTiles; qt++) {
      const row = h * layout.numQueryTiles + qt;
      const lastQuery = Math.min(sel.numTokens - 1, qt * DEVICE_TILE + DEVICE_TILE - 1);
      for (let i = layout.tileOffsets[row]; i < layout.tileOffsets[row + 1]; i++) {
        const kt = layout.keyTiles[i];
        assert.ok(kt * DEVICE_TILE <= lastQuery, `tile ${kt} wholly masked in row ${row}`);
        if (i > layout.tileOffsets[row]) assert.ok(kt > layout.keyTiles[i - 1], 'tiles ascending');
      }
    }
  }
}

describe('block-sparse device layout', () => {
  test('covers exactly the selected pairs: random selections, c = 16, 32, 48, partial last chunks', () => {
    let seed = 1;
    for (const c of [16, 32, 48]) {
      for (const n of [1, 15, 16, 17, 100, 161, 2 * c + 1]) assertExactCoverage(randomSelection(n, c, 3, seed++));
    }
  });

  test('c = 16: tile lists are the selection itself', () => {
    const sel = randomSelection(83, 16, 2, 7);
    const layout = layoutFromSelection(sel);
    for (let h = 0; h < 2; h++) {
      const { selected, counts, stride } = sel.heads[h];
      for (let m = 0; m < Math.ceil(83 / 16); m++) {
        const row = h * layout.numQueryTiles + m;
        assert.deepEqual([...layout.keyTiles.subarray(layout.tileOffsets[row], layout.tileOffsets[row + 1])],
          [...selected.subarray(m * stride, m * stride + counts[m])]);
      }
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
      const layout = layoutFromSelection({ chunkSize: c, numTokens: n, heads: [all, none] });
      for (let qi = 0; qi < n; qi++) {
        assert.deepEqual(layoutKeysOf(layout, 0, qi), Array.from({ length: qi + 1 }, (_, i) => i));
        assert.deepEqual(layoutKeysOf(layout, 1, qi), []);
      }
      assert.equal(layoutPairCount(layout, 0), (n * (n + 1)) / 2);
      assert.equal(layoutPairCount(layout, 1), 0);
    }
  });

  test('the last partial block: its key tile is clipped to the prompt', () => {
    const n = 37; // chunks [0,16) [16,32) [32,37)
    const sel: ChunkSelection = {
      chunkSize: 16, numTokens: n,
      heads: [{ selected: Int32Array.from([0, 0, 0, 0, 0, 2]), counts: Int32Array.from([1, 0, 2]), stride: 2 }],
    };
    const layout = layoutFromSelection(sel);
    assert.deepEqual(layoutKeysOf(layout, 0, 36), [...Array.from({ length: 16 }, (_, i) => i), 32, 33, 34, 35, 36]);
    assert.deepEqual(layoutKeysOf(layout, 0, 32), [...Array.from({ length: 16 }, (_, i) => i), 32]);
    assert.deepEqual(layoutKeysOf(layout, 0, 20), []);
  });

  test('bad selections are refused with the problem named', () => {
    const one = (selected: number[], counts: number[], stride: number): ChunkSelection => ({
      chunkSize: 16, numTokens: 40, heads: [{ selected: Int32Array.from(selected), counts: Int32Array.from(counts), stride }],
    });
    assert.throws(() => layoutFromSelection({ ...one([0, 0, 0], [1, 1, 1], 1), chunkSize: 8 }), /multiple of 16/);
    assert.throws(() => layoutFromSelection(one([0, 2, 0], [1, 1, 1], 1)), /outside 0\.\.1/);
    assert.throws(() => layoutFromSelection(one([0, 0, 1, 0, 2, 1], [1, 2, 2], 2)), /ascending/);
    assert.throws(() => layoutFromSelection(one([0, 0], [1, 1], 1)), /chunk counts/);
  });

  test('GQA: built from the CPU method per query head, it reproduces the method\'s output and pair counts', () => {
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
      const layout = layoutFromSelection(sel);
      const { out, counts } = runPrefill(new BlockSparsePrefill(16, null, t), data);
      const ref = new Float32Array(n * H * D);
      const g = H / Hkv;
      for (let h = 0; h < H; h++) {
        assert.equal(counts.attended[h], layoutPairCount(layout, h), `pairs of head ${h}`);
        const kvh = Math.floor(h / g);
        for (let qi = 0; qi < n; qi++) {
          const keys = layoutKeysOf(layout, h, qi);
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
      assert.ok(maxDiff < 1e-5, `layout attention differs from the CPU method by ${maxDiff}`);
      // With free choices (3 < t < chunks), heads of one KV group select separately and differ somewhere.
      if (t > 3 && t < Math.ceil(n / 16)) {
        const differ = sel.heads.some((a, h) => h % g !== 0 && a.selected.some((x, i) => x !== sel.heads[h - 1].selected[i]));
        assert.ok(differ, 'query heads of one KV group keep their own selections');
      }
    }
  });
});

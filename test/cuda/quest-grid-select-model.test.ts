/**
 * A host model of v5's multi-block select (quest.cu, quest_grid_select_chunk), phase by phase, run
 * against the CPU ranking (rankDescending: score desc, page asc) without a GPU: G blocks each own a
 * contiguous chunk; the unit's AND/OR of the order keys fixes the common prefix; 11-bit radix passes
 * over the differing bits on the summed block histograms (every block reads the same sums) until the
 * k-th key's bin is taken whole, holds <= 256 keys (ranked exactly from the candidate list) or is one
 * key value (lowest pages first); each block's first list slot comes from the earlier blocks'
 * counts. It checks the design (bins, invariants, offsets, ties across block edges) on the crafted
 * rows of the GPU test and on random ones; the kernel itself is checked on the device by
 * test/cuda/quest.test.ts against the CPU. Also the launcher's choice of blocks per unit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QUEST_GRID_MAX_BLOCKS, questGridBlocks } from '../../src/backends/cuda/kernels/quest.js';
import { randomGenerator } from './helpers.js';
import {
  RADIX_BITS, RANK_LIMIT, andOrOf, assertListComplete, chunkBlocks, expectedPages, resolveRanked, writeBlockPages,
} from './quest-select-model-util.js';

/** The pages v5 lists for one unit (ascending), simulated over G blocks. 0 < k < scores.length. */
function gridSelectModel(scores: Float32Array, k: number, G: number): number[] {
  const pages = scores.length;
  const blocks = chunkBlocks(scores, G);
  // A.
  const { and, or } = andOrOf(blocks);
  // B.
  const diff = (and ^ or) >>> 0;
  let top = diff === 0 ? -1 : 31 - Math.clz32(diff);
  let mask = top >= 31 ? 0 : (0xffffffff << (top + 1)) >>> 0;
  let prefix = (and & mask) >>> 0;
  let remaining = k, binCount = pages, passes = 0;
  while (top >= 0 && binCount > RANK_LIMIT && binCount !== remaining) {
    const shift = Math.max(0, top - (RADIX_BITS - 1));
    const bins = 1 << (top - shift + 1);
    const hist = new Array<number>(bins).fill(0);
    for (const { keys } of blocks) {
      for (const key of keys) if (((key & mask) >>> 0) === prefix) hist[(key >>> shift) & (bins - 1)]++;
    }
    let above = 0, bin = -1;
    for (let b = bins - 1; b >= 0; b--) {
      if (above + hist[b] >= remaining) { bin = b; break; }
      above += hist[b];
    }
    assert.ok(bin >= 0, 'the k-th key lies in some bin');
    prefix = (prefix | (bin << shift)) >>> 0;
    mask = (mask | ((bins - 1) << shift)) >>> 0;
    remaining -= above;
    binCount = hist[bin];
    top = shift - 1;
    passes++;
    assert.ok(passes <= 3, 'at most three passes (32 bits in digits of <= 11)');
    assert.ok(remaining >= 1 && remaining <= binCount, 'invariant: 1 <= remaining <= binCount');
  }
  // C.
  const whole = binCount === remaining;
  const ranked = !whole && binCount <= RANK_LIMIT;
  if (!whole && !ranked) assert.equal(top, -1, 'a bin of > 256 keys that is not taken whole is one key value');
  const counts = blocks.map(({ keys }) => ({
    above: keys.filter((key) => ((key & mask) >>> 0) > prefix).length,
    inBin: keys.filter((key) => ((key & mask) >>> 0) === prefix).length,
  }));
  const candidates: Array<{ key: number; page: number }> = [];
  if (ranked) for (const { lo, keys } of blocks) keys.forEach((key, i) => { if (((key & mask) >>> 0) === prefix) candidates.push({ key, page: lo + i }); });
  assert.ok(candidates.length <= RANK_LIMIT);
  // D. Blocks write their parts independently: a slot written twice or left empty fails below.
  const list = new Array<number>(k).fill(-1);
  blocks.forEach((block, b) => {
    const { keys } = block;
    let before = counts.slice(0, b).reduce((sum, c) => sum + c.above, 0);
    const inBinBefore = counts.slice(0, b).reduce((sum, c) => sum + c.inBin, 0);
    const taken = keys.map((key) => ((key & mask) >>> 0) >= prefix);
    if (whole) {
      before += inBinBefore;
    } else if (!ranked) {
      before += Math.min(inBinBefore, remaining);
      const quota = Math.max(0, remaining - inBinBefore);
      let seen = 0;
      keys.forEach((key, i) => { if (key === prefix && seen++ >= quota) taken[i] = false; });
    } else {
      before += resolveRanked(candidates, remaining, block, taken);
    }
    writeBlockPages(list, b, block, taken, before);
  });
  return assertListComplete(list);
}

test('v5 select model: the CPU ranking on crafted rows, at 1 to 32 blocks', () => {
  const rand = randomGenerator(71);
  const of = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
  const rows: Array<{ name: string; scores: Float32Array; ks: number[] }> = [
    { name: 'one value everywhere', scores: of(1000, () => 0.5), ks: [1, 7, 500, 999] },
    { name: 'two values alternating', scores: of(3000, (i) => (i % 2 ? 1.25 : -3)), ks: [5, 1499, 1500, 1501, 2999] },
    { name: 'five values, random', scores: of(5000, () => [0, 1, 2, 3, 4][Math.floor((rand() + 1) * 2.5) % 5]), ks: [10, 999, 2500, 4000] },
    { name: 'uniform spread', scores: of(8191, () => 100 + rand()), ks: [1, 409, 4095, 8190] },
    { name: 'a block of 600 equal scores across the cut', scores: of(4000, (i) => (i >= 1000 && i < 1600 ? 7 : 7 + rand())), ks: [1500, 1700, 2300] },
    {
      name: 'signed zeros, infinities, one NaN, mixed signs',
      scores: of(2500, (i) => (i === 3 ? NaN : i % 97 === 0 ? 0 : i % 89 === 0 ? -0 : i === 10 ? Infinity : i === 11 ? -Infinity : rand() * 1e-3)),
      ks: [1, 60, 1249, 2400],
    },
    { name: 'ten outliers and a tight cluster', scores: of(7000, (i) => (i % 700 === 5 ? 1e6 + i : 1 + rand() * 1e-4)), ks: [4, 10, 11, 3500] },
    { name: 'a short row', scores: of(40, () => Math.round(rand() * 4)), ks: [1, 13, 39] },
    { name: 'near-equal scores (one ulp apart)', scores: of(6000, (i) => 1 + (i % 7) * 2 ** -23), ks: [3, 857, 858, 3000] },
  ];
  for (const r of rows) {
    for (const k of r.ks) {
      const want = expectedPages(r.scores, k);
      for (const G of [1, 3, 16, 32]) assert.deepEqual(gridSelectModel(r.scores, k, G), want, `${r.name}, k = ${k}, ${G} blocks`);
    }
  }
});

test('v5 select model: the CPU ranking on random rows of Quest-like scores', () => {
  const rand = randomGenerator(72);
  for (let trial = 0; trial < 40; trial++) {
    const pages = 2 + Math.floor((rand() + 1) * 2000);
    // Scores of one magnitude, a quarter of the trials with heavy ties (values rounded to a coarse grid).
    const coarse = trial % 4 === 0;
    const scores = Float32Array.from({ length: pages }, () => (coarse ? Math.round(rand() * 8) : 50 + 10 * rand()));
    const k = 1 + Math.floor(((rand() + 1) / 2) * (pages - 1));
    const G = 1 + (trial % 32);
    assert.deepEqual(gridSelectModel(scores, k, G), expectedPages(scores, k), `trial ${trial}: ${pages} pages, k = ${k}, ${G} blocks`);
  }
});

test('v5 blocks per unit: every block resident at once, within the per-block count slots, >= 1', () => {
  // H100 (132 SMs, one 512-thread block each), Llama-8B heads: 8 shared-page units, 32 per-head ones.
  assert.equal(questGridBlocks(1023, 8, 132, 128), 8, '16K: 8 blocks of 128 pages');
  assert.equal(questGridBlocks(8191, 8, 132, 128), 16, '128K: bounded by residency (8 x 16 = 128 <= 132)');
  assert.equal(questGridBlocks(8191, 32, 132, 128), 4);
  assert.equal(questGridBlocks(8191, 2, 264, 128), QUEST_GRID_MAX_BLOCKS, 'at most the scratch count slots');
  assert.equal(questGridBlocks(8191, 200, 132, 128), 1, 'more units than resident blocks: one block per unit, no waiting');
  assert.equal(questGridBlocks(0, 8, 132, 128), 1);
  for (let pages = 0; pages < 20000; pages += 97) {
    for (const [units, resident, minPages] of [[8, 132, 128], [32, 132, 8], [1, 16, 1], [64, 114, 16]]) {
      const G = questGridBlocks(pages, units, resident, minPages);
      assert.ok(Number.isInteger(G) && G >= 1 && G <= QUEST_GRID_MAX_BLOCKS, `G = ${G}`);
      assert.ok(G === 1 || G * units <= resident, `${G} x ${units} blocks exceed ${resident} resident`);
      assert.ok(G === 1 || (G - 1) * minPages < pages, `${G} blocks for ${pages} pages of >= ${minPages} each`);
    }
  }
});

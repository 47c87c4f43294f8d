/**
 * A host model of v6's windowed multi-block select (quest.cu, quest_win_select_chunk and
 * quest_win_publish), step by step as the kernel does it, run against the CPU ranking
 * (rankDescending: score desc, page asc) without a GPU: G blocks each own a contiguous chunk; a pass
 * buckets every key by a monotone map over a key window (below / 1022 buckets of 2^shift keys /
 * above), each block publishing its counts at or above every bucket and its keys grouped by bucket
 * (in an order the readers must not depend on: the model reverses it); the first window is the unit's
 * key range of the previous call (the guess), kept in a state the calls share as the scratch does;
 * after each pass every block reads the unit's histogram and stops when the k-th key's bucket is taken
 * whole, holds <= 256 keys or holds one key value within [AND, OR]; each block's first list slot and
 * the ranked bucket's keys come from the other blocks' published rows. The kernel itself is checked on
 * the device by test/cuda/quest.test.ts against the CPU.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  QUEST_GRID_MAX_BLOCKS, QUEST_KERNEL_NAMES, QUEST_WIN_FIXED_WORDS, QUEST_WIN_PARAMS, questWindowUnitWords,
} from '../../src/backends/cuda/kernels/quest.js';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { randomGenerator } from './helpers.js';
import { entryParameterKinds } from './kernel-source-text.js';
import {
  RANK_LIMIT, andOrOf, assertListComplete, chunkBlocks, expectedPages, orderKey, resolveRanked, writeBlockPages,
} from './quest-select-model-util.js';

const BUCKETS = 1024;
const INTERIOR = BUCKETS - 2;
const MAX_PASSES = 5;
const NO_GUESS_SHIFT = 23;

interface Window { base: number; shift: number }

function bucketOf(key: number, w: Window): number {
  if (key < w.base) return 0;
  const step = Math.floor((key - w.base) / 2 ** w.shift);
  return step >= INTERIOR ? BUCKETS - 1 : step + 1;
}

function cover(lo: number, hi: number): Window {
  const span = hi - lo;
  let shift = 0;
  while (Math.floor(span / 2 ** shift) >= INTERIOR) shift++;
  return { base: lo, shift };
}

function rangeOf(w: Window, t: number): [number, number] {
  if (t === 0) return [0, w.base - 1];
  const lo = w.base + (t - 1) * 2 ** w.shift;
  const hi = t === BUCKETS - 1 ? 0xffffffff : Math.min(0xffffffff, lo + 2 ** w.shift - 1);
  return [lo, hi];
}

/** What the scratch keeps between calls: the previous call's AND and OR of the unit's keys. */
interface GuessState { valid: boolean; and: number; or: number }

/** The pages v6 lists for one unit (ascending) over G blocks, and its passes (= barriers). 0 < k < scores.length. */
function windowSelectModel(scores: Float32Array, k: number, G: number, state: GuessState, guess = true): { list: number[]; passes: number } {
  const pages = scores.length;
  const chunk = Math.ceil(pages / G);
  const blocks = chunkBlocks(scores, G);
  const { and, or } = andOrOf(blocks);
  let w: Window = guess && state.valid ? cover(state.and, state.or) : { base: 0, shift: NO_GUESS_SHIFT };
  // Published per pass (the last pass's survive): per block its counts at or above each bucket, the sorted keys and pages.
  let atOrAbove: number[][] = [];
  const sortedKey = new Array<number>(pages).fill(-1), sortedPage = new Array<number>(pages).fill(-1);
  let pass = 0, bin = 0, binCount = 0, quota = 0;
  for (;;) {
    const hist = new Array<number>(BUCKETS).fill(0);
    atOrAbove = blocks.map(({ lo, keys }) => {
      const local = new Array<number>(BUCKETS).fill(0);
      for (const key of keys) local[bucketOf(key, w)]++;
      for (let t = 0; t < BUCKETS; t++) hist[t] += local[t];
      const row = new Array<number>(BUCKETS).fill(0);
      const next = new Array<number>(BUCKETS).fill(0);
      let above = 0;
      for (let t = BUCKETS - 1; t >= 0; t--) {
        row[t] = above + local[t];
        next[t] = above;
        above += local[t];
      }
      // Inside a bucket the kernel's order depends on warp timing: the model writes the chunk backwards.
      for (let i = keys.length - 1; i >= 0; i--) {
        const slot = lo + next[bucketOf(keys[i], w)]++;
        sortedKey[slot] = keys[i];
        sortedPage[slot] = lo + i;
      }
      return row;
    });
    // topk_staged_find_bin: the bucket where the counts from the top reach k.
    let above = 0;
    bin = -1;
    for (let t = BUCKETS - 1; t >= 0; t--) {
      if (hist[t] > 0 && above + hist[t] >= k) { bin = t; binCount = hist[t]; quota = k - above; break; }
      above += hist[t];
    }
    assert.ok(bin >= 0, 'the k-th key lies in some bucket');
    let [lo, hi] = rangeOf(w, bin);
    lo = Math.max(lo, and);
    hi = Math.min(hi, or);
    assert.ok(lo <= hi, 'the bucket holds keys within [AND, OR]');
    if (binCount === quota || binCount <= RANK_LIMIT || lo === hi) break;
    assert.ok(pass + 1 < MAX_PASSES, 'at most five passes (the kernel traps past them)');
    w = cover(lo, hi);
    pass++;
  }
  const whole = binCount === quota;
  const ranked = !whole && binCount <= RANK_LIMIT;
  const list = new Array<number>(k).fill(-1);
  // Every block reads the published rows independently; a slot written twice or left empty fails below.
  blocks.forEach((block, b) => {
    const { keys } = block;
    const atBin = atOrAbove.map((row) => row[bin]);
    const aboveBin = atOrAbove.map((row) => (bin + 1 < BUCKETS ? row[bin + 1] : 0));
    const inJ = atBin.map((x, j) => x - aboveBin[j]);
    let before = aboveBin.slice(0, b).reduce((s, x) => s + x, 0);
    const inBefore = inJ.slice(0, b).reduce((s, x) => s + x, 0);
    const taken = keys.map((key) => bucketOf(key, w) >= bin);
    if (whole) {
      before += inBefore;
    } else if (!ranked) {
      before += Math.min(inBefore, quota);
      const mine = Math.max(0, quota - inBefore);
      let seen = 0;
      keys.forEach((key, i) => { if (bucketOf(key, w) === bin && seen++ >= mine) taken[i] = false; });
    } else {
      const candFirst: number[] = [];
      let sum = 0;
      for (const c of inJ) { candFirst.push(sum); sum += c; }
      assert.equal(sum, binCount, 'the blocks\' parts of the bucket add up to its count');
      const candidates = Array.from({ length: binCount }, (_, t) => {
        let j = 0;
        while (t >= candFirst[j] + inJ[j]) j++;
        const at = Math.min(pages, j * chunk) + aboveBin[j] + (t - candFirst[j]);
        assert.equal(bucketOf(sortedKey[at], w), bin, 'a gathered key lies in the bucket');
        return { key: sortedKey[at], page: sortedPage[at] };
      });
      before += resolveRanked(candidates, quota, block, taken);
    }
    writeBlockPages(list, b, block, taken, before);
  });
  assertListComplete(list);
  state.valid = true;
  state.and = and;
  state.or = or;
  return { list, passes: pass + 1 };
}

test('v6 scratch layout: quest.ts and quest.cu agree on the words per unit', () => {
  const quest = readKernelSource('quest.cu');
  const constant = (name: string): number => {
    const m = quest.match(new RegExp(`constexpr int ${name} = (\\d+);`));
    assert.ok(m, `${name} is a literal constant`);
    return Number(m[1]);
  };
  assert.equal(constant('WIN_BUCKETS'), BUCKETS);
  assert.equal(constant('WIN_MAX_PASSES'), MAX_PASSES);
  assert.equal(constant('WIN_NO_GUESS_SHIFT'), NO_GUESS_SHIFT);
  assert.match(quest, /constexpr int WIN_MAX_BLOCKS = GRID_MAX_BLOCKS;/);
  assert.match(quest, /constexpr int WS_HIST = 8;/);
  assert.match(quest, /constexpr int WS_AT_OR_ABOVE = WS_HIST \+ WIN_MAX_PASSES \* WIN_BUCKETS;/);
  assert.match(quest, /constexpr int WS_SORTED = WS_AT_OR_ABOVE \+ WIN_MAX_BLOCKS \* WIN_BUCKETS;/);
  assert.equal(QUEST_WIN_FIXED_WORDS, 8 + MAX_PASSES * BUCKETS + QUEST_GRID_MAX_BLOCKS * BUCKETS);
  assert.equal(questWindowUnitWords(8192), QUEST_WIN_FIXED_WORDS + 2 * 8192);
});

test('v6 launchers declare the parameters quest.cu\'s v6 kernels take (pointers, then 32-bit integers)', () => {
  const quest = readKernelSource('quest.cu');
  for (const kernel of ['winStep', 'winStepAt', 'winSelect'] as const) {
    const name = QUEST_KERNEL_NAMES[kernel];
    const kinds = entryParameterKinds(quest, name);
    assert.ok(kinds, `${name} is defined`);
    assert.deepEqual(kinds, [...QUEST_WIN_PARAMS[kernel]], name);
  }
});

test('v6 windows: the no-guess window holds every key; each narrowing pass shrinks the range enough for five passes', () => {
  assert.ok(Math.floor(0xffffffff / 2 ** NO_GUESS_SHIFT) < INTERIOR, 'the first window without a guess covers every key');
  assert.deepEqual(cover(0, 0xffffffff), { base: 0, shift: NO_GUESS_SHIFT });
  // From any range: widths 2^23 -> 2^14 -> 2^5 -> 1 per bucket, so a guess plus four passes always ends.
  let width = 2 ** 32;
  const shifts: number[] = [];
  while (width > 1) {
    const w = cover(0, width - 1);
    shifts.push(w.shift);
    width = 2 ** w.shift;
  }
  assert.deepEqual(shifts, [23, 14, 5, 0]);
  assert.equal(bucketOf(5, { base: 10, shift: 0 }), 0, 'below the window');
  assert.equal(bucketOf(10, { base: 10, shift: 0 }), 1);
  assert.equal(bucketOf(10 + INTERIOR, { base: 10, shift: 0 }), BUCKETS - 1, 'above the window');
  assert.deepEqual(rangeOf({ base: 10, shift: 2 }, 3), [18, 21]);
  assert.deepEqual(rangeOf({ base: 10, shift: 2 }, BUCKETS - 1), [10 + INTERIOR * 4, 0xffffffff]);
});

test('v6 select model: the CPU ranking on crafted rows, at 1 to 32 blocks, with and without a guess', () => {
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
  // Guesses: none, the row's own range (a repeated step), and stale ranges of other rows (a miss).
  const stale: GuessState[] = [
    { valid: true, and: orderKey(-1e30), or: orderKey(1e30) },
    { valid: true, and: orderKey(1000), or: orderKey(1001) },
    { valid: true, and: orderKey(-2), or: orderKey(-1) },
  ];
  for (const r of rows) {
    for (const k of r.ks) {
      const want = expectedPages(r.scores, k);
      for (const G of [1, 3, 16, 32]) {
        const state: GuessState = { valid: false, and: 0, or: 0 };
        assert.deepEqual(windowSelectModel(r.scores, k, G, state).list, want, `${r.name}, k = ${k}, ${G} blocks, no guess`);
        assert.deepEqual(windowSelectModel(r.scores, k, G, state).list, want, `${r.name}, k = ${k}, ${G} blocks, its own range`);
        assert.deepEqual(windowSelectModel(r.scores, k, G, state, false).list, want, `${r.name}, k = ${k}, ${G} blocks, guess off`);
        for (const [s, guess] of stale.entries()) {
          assert.deepEqual(windowSelectModel(r.scores, k, G, { ...guess }).list, want, `${r.name}, k = ${k}, ${G} blocks, stale guess ${s}`);
        }
      }
    }
  }
});

/** Quest-like page scores as the bench makes them: random bf16-like keys and query, 16-row pages, 4 heads per unit. */
function questScores(pages: number, rand: () => number, q: Float32Array, D: number, heads: number): Float32Array {
  const scores = new Float32Array(pages);
  const mn = new Float32Array(D), mx = new Float32Array(D);
  for (let p = 0; p < pages; p++) {
    mn.fill(Infinity);
    mx.fill(-Infinity);
    for (let r = 0; r < 16; r++) {
      for (let d = 0; d < D; d++) {
        const x = rand();
        if (x < mn[d]) mn[d] = x;
        if (x > mx[d]) mx[d] = x;
      }
    }
    let s = 0;
    for (let h = 0; h < heads; h++) {
      for (let d = 0; d < D; d++) {
        const qd = q[h * D + d];
        s += Math.max(qd * mn[d], qd * mx[d]);
      }
    }
    scores[p] = s;
  }
  return scores;
}

test('v6 select model: Quest-like rows; a repeated row takes one pass, no guess two; rows of fresh queries and bounds', (t) => {
  const rand = randomGenerator(73);
  const D = 32, heads = 4;
  const passCounts = new Map<string, number[]>();
  for (const pages of [1023, 2047, 4095]) {
    const newQuery = () => Float32Array.from({ length: heads * D }, () => 2 * rand());
    const scores = questScores(pages, rand, newQuery(), D, heads);
    for (const s of [0.5, 0.8, 0.95]) {
      const k = Math.max(1, Math.floor((1 - s) * pages));
      const G = Math.min(32, Math.ceil(pages / 128));
      const state: GuessState = { valid: false, and: 0, or: 0 };
      const first = windowSelectModel(scores, k, G, state);
      assert.deepEqual(first.list, expectedPages(scores, k), `${pages} pages, k = ${k}: no guess`);
      const again = windowSelectModel(scores, k, G, state);
      assert.deepEqual(again.list, expectedPages(scores, k), `${pages} pages, k = ${k}: repeated`);
      assert.equal(again.passes, 1, `${pages} pages, k = ${k}: the repeated row's own range settles it in one pass`);
      assert.equal(first.passes, 2, `${pages} pages, k = ${k}: without a guess, the no-guess window then the row's range`);
      // Steps with new queries on other bounds of the same distribution: how often the guess holds.
      const counts: number[] = [];
      for (let step = 0; step < 6; step++) {
        const row = questScores(pages, rand, newQuery(), D, heads);
        const r = windowSelectModel(row, k, G, state);
        assert.deepEqual(r.list, expectedPages(row, k), `${pages} pages, k = ${k}, step ${step}`);
        counts.push(r.passes);
      }
      passCounts.set(`${pages}/${s}`, counts);
    }
  }
  t.diagnostic(`passes per step with a fresh query and bounds each step (pages/s: passes): ${[...passCounts].map(([key, c]) => `${key}: ${c.join(',')}`).join('; ')}`);
});

test('v6 select model: the CPU ranking on random rows, guesses carried from call to call', () => {
  const rand = randomGenerator(74);
  const state: GuessState = { valid: false, and: 0, or: 0 };
  for (let trial = 0; trial < 40; trial++) {
    const pages = 2 + Math.floor((rand() + 1) * 2000);
    const coarse = trial % 4 === 0;
    const scale = trial % 3 === 0 ? 1 : trial % 3 === 1 ? 1e-3 : 1e4;
    const scores = Float32Array.from({ length: pages }, () => (coarse ? Math.round(rand() * 8) : scale * (50 + 10 * rand())));
    const k = 1 + Math.floor(((rand() + 1) / 2) * (pages - 1));
    const G = 1 + (trial % 32);
    assert.deepEqual(windowSelectModel(scores, k, G, state).list, expectedPages(scores, k), `trial ${trial}: ${pages} pages, k = ${k}, ${G} blocks`);
  }
});

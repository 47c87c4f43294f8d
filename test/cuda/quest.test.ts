/**
 * Quest on the GPU against the CPU QuestDecode (src/methods/quest.ts) on the same bf16 rows: page
 * bounds after the prompt and after appended tokens, the selected pages (shared by a GQA group and
 * per query head; v3's radix select, the refined select, the three- and one-launch steps), the refined select
 * on crafted score rows (ties, one repeated value, signed zeros, infinities, NaN) against the CPU
 * ranking, one-launch steps that fold each new row into the bounds (also replayed in a CUDA graph),
 * decode outputs and counts over steps that cross a page boundary (the last page partial), a
 * budget covering everything (equal to our dense decode kernel), and the steps replayed from one
 * captured CUDA graph (issue 9: the position read on the device, the budget from a per-position
 * table): the graph step's lists and bounds equal the CPU's at every replayed position, and the
 * method's graph steps give the eager decode()'s outputs and counts. v5, the multi-block step
 * (session 5), runs beside v3/v4 in each of these: its step and its select alone against the CPU on
 * random rows (shared and per-head units, up to 32 blocks per unit), on the crafted rows, folding rows
 * and replayed in graphs (its scratch must come back to zero), as the graph step, and as the method's
 * eager and graph steps. v6, the windowed multi-block step (session 6), runs wherever v5 does (its
 * select also with stale guesses and with the guess off), and against v3's lists word for word on
 * random rows just below and above QUEST_MULTI_BLOCK_MIN_PAGES, with a partial last page and ties.
 * Skipped, with the reason printed, where there is no CUDA device (the scratch-layout check runs
 * everywhere).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fromBf16, toBf16 } from '../../src/backends/cuda/bf16.js';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import {
  DeviceQuestBounds, QUEST_GRID_MAX_BLOCKS, QUEST_GRID_UNIT_WORDS, QUEST_KERNEL_NAMES, QUEST_PHASE_SLOTS, QUEST_PHASE_STAMP_BYTES, QUEST_PHASES,
  type QuestKernelOptions, QuestKernels, QuestStepScratch,
} from '../../src/backends/cuda/kernels/quest.js';
import { SEGMENT_HEADER_WORDS, SegmentLists } from '../../src/backends/cuda/kernels/segment-decode.js';
import type { DeviceGraphDecodeSetup, EstimationTiming } from '../../src/backends/cuda/methods/contract.js';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';
import { QUEST_MULTI_BLOCK_MIN_PAGES, QuestDeviceDecode, questDeviceFactory, questSettings } from '../../src/backends/cuda/methods/quest.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { QuestDecode, QuestPageBounds, questPagesFor } from '../../src/methods/quest.js';
import { IndexScratch, rankDescending } from '../../src/methods/select.js';
import { randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { appendRandom, attentionConfig, checkDecodeStep, cpuShape, denseDecodeOutput, twinCaches } from './sparse-decode-helpers.js';
import { cudaSkip } from './cuda-skip.js';
import { prebuildQuestGroups } from './quest-prebuild-fixture.js';
import { entryParameterKinds } from './kernel-source-text.js';

const skip = cudaSkip('CUDA Quest tests');

// Runs without a device: a launcher naming an entry point the source lacks fails only at load time.
test('quest.cu defines every kernel the launchers look up', () => {
  const source = readKernelSource('quest.cu');
  for (const name of Object.values(QUEST_KERNEL_NAMES)) {
    // Written out, or defined by QUEST_GRID_STEP_ENTRIES / QUEST_GRID_SELECT_ENTRY.
    const written = new RegExp(`extern "C" __global__ void (__launch_bounds__\\([^)]*\\) )?${name}\\(`).test(source);
    assert.ok(written || entryParameterKinds(source, name) !== null, name);
  }
});

// Runs without a device: the launcher sizes v5's scratch from the same layout quest.cu indexes.
test('v5 scratch layout: quest.ts and quest.cu agree on blocks per unit and words per unit', () => {
  const quest = readKernelSource('quest.cu'), topk = readKernelSource('top-k.cuh');
  const constant = (source: string, name: string): number => {
    const m = source.match(new RegExp(`constexpr int ${name} = (\\d+);`));
    assert.ok(m, `${name} is a literal constant`);
    return Number(m[1]);
  };
  const maxBlocks = constant(quest, 'GRID_MAX_BLOCKS');
  assert.equal(maxBlocks, QUEST_GRID_MAX_BLOCKS);
  const passes = constant(quest, 'GRID_PASSES'), rankLimit = constant(topk, 'TOPK_RANK_LIMIT'), radixBits = constant(topk, 'TOPK_RADIX_BITS');
  assert.match(quest, /constexpr int GS_ABOVE = 8;/);
  // v9's guess words sit in the sync words' spare slots; its missed guess takes one histogram slot more.
  assert.match(quest, /constexpr int GS_GUESS_NOT_AND = 5, GS_GUESS_OR = 6, GS_GUESS_SET = 7;/);
  assert.match(quest, /constexpr int GRID_HIST_SLOTS = GRID_PASSES \+ 1;/);
  // v10's never-reset sync words follow the histograms.
  assert.match(quest, /constexpr int GS_EPOCH = GS_HIST \+ GRID_HIST_SLOTS \* GRID_HIST_BINS;/);
  assert.match(quest, /constexpr int GS_EPOCH_WORDS = 4;/);
  assert.equal(QUEST_GRID_UNIT_WORDS, 8 + 2 * maxBlocks + 2 * rankLimit + (passes + 1) * (1 << radixBits) + 4);
});

const TOLERANCE = 1e-2;
/** v5 as the tests run it: few pages per block, so that short rows spread over many blocks. */
const MULTI_BLOCK: QuestKernelOptions = { multiBlockStep: true, gridMinPagesPerBlock: 8 };
/** v6 as the tests run it, as MULTI_BLOCK. */
const WINDOWED: QuestKernelOptions = { windowStep: true, gridMinPagesPerBlock: 8 };
/** v7 (v5 with rolled score loads) as the tests run it, as MULTI_BLOCK. */
const ROLLED: QuestKernelOptions = { ...MULTI_BLOCK, rolledScores: true };
/** v8 (v7 with the light per-page scoring) as the tests run it, as MULTI_BLOCK. */
const LIGHT: QuestKernelOptions = { ...ROLLED, lightScores: true };
/**
 * v8 through the entries that carry only its unit size's scorer (light for 1, 2 and 4 heads, v7's entries for
 * others; questGridStepEntry) as the tests run it, as MULTI_BLOCK.
 */
const LIGHT_UNIT: QuestKernelOptions = { ...LIGHT, specializedHeads: true };
/** v10 through its unit-size entries (1, 2, 4, 8 heads, any other size) likewise. */
const EPOCH_UNIT: QuestKernelOptions = { ...LIGHT, guessedPass: true, epochBarriers: true, specializedHeads: true };
/** v10's unit-size entries with batched page sums (units of 1, 2, 4 and 8 heads; others the plain any-size entry). */
const EPOCH_BATCHED: QuestKernelOptions = { ...EPOCH_UNIT, batchedPageSums: true };
/** v10's unit-size entries with 7-head units on their constant-head entry (session 9), plain and with batched page sums. */
const EPOCH_SEVEN: QuestKernelOptions = { ...EPOCH_UNIT, constantPlainHeads: true };
const EPOCH_SEVEN_BATCHED: QuestKernelOptions = { ...EPOCH_SEVEN, batchedPageSums: true };
/**
 * v10's batched entries with fused products at 4-head units (measurement only): equal to v3 wherever every product lies
 * in fp32's normal range, as on these tests' random rows (infinite keys included: inf products are inf either way).
 */
const EPOCH_FUSED: QuestKernelOptions = { ...EPOCH_BATCHED, fusedProducts: true };
/** v10's batched entries with the refreshed page's rows loaded 16 at a time at 4-head units (session 9): the same bounds. */
const EPOCH_REFRESH: QuestKernelOptions = { ...EPOCH_BATCHED, prefetchedRefresh: true };
/** v10's batched entries with the score loop's rolling L2 prefetch at 4-head units (session 9): the same loads and keys. */
const EPOCH_PREFETCH: QuestKernelOptions = { ...EPOCH_BATCHED, rollingPrefetch: true };
/** v9 (v8 with a guessed first radix pass) as the tests run it, as MULTI_BLOCK. */
const GUESSED: QuestKernelOptions = { ...LIGHT, guessedPass: true };
/** v10 (v9 with never-reset barriers) as the tests run it, as MULTI_BLOCK. */
const EPOCH: QuestKernelOptions = { ...GUESSED, epochBarriers: true };

function downloadInt32(rt: CudaRuntime, ptr: bigint, count: number): Int32Array {
  rt.synchronize();
  const out = new Int32Array(count);
  rt.cuda.download(out, ptr);
  return out;
}

/** The device page bounds of every KV head's first `pages` pages equal the CPU's, bit for bit. */
function assertBoundsEqual(rt: CudaRuntime, bounds: DeviceQuestBounds, cpu: QuestPageBounds, Hkv: number, D: number, pages: number, suffix = ''): void {
  const words = bounds.pageCapacity * D * Hkv;
  rt.synchronize();
  const mn = new Uint16Array(words), mx = new Uint16Array(words);
  rt.cuda.download(mn, bounds.pageMin.ptr);
  rt.cuda.download(mx, bounds.pageMax.ptr);
  const gmn = fromBf16(mn), gmx = fromBf16(mx);
  for (let h = 0; h < Hkv; h++) {
    const at = h * bounds.pageCapacity * D;
    assert.deepEqual(gmn.subarray(at, at + pages * D), cpu.pageMin[h].subarray(0, pages * D), `min, head ${h}${suffix}`);
    assert.deepEqual(gmx.subarray(at, at + pages * D), cpu.pageMax[h].subarray(0, pages * D), `max, head ${h}${suffix}`);
  }
}

describe('CUDA Quest', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    await prebuildQuestGroups(); // ~27 groups in parallel instead of one after another in this process
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  test('bounds equal the CPU bounds after the prompt and after appends', () => {
    const Hkv = 4, D = 64, P = 16, capacity = 600;
    const rand = randomGenerator(31);
    const caches = twinCaches(rt, Hkv, D, capacity);
    appendRandom(rt, caches, 517, rand);
    const kernels = new QuestKernels(rt, { numHeads: 8, numKvHeads: Hkv, headDim: D }, P, true);
    const bounds = new DeviceQuestBounds(rt, kernels.shape, P, capacity);
    const cpu = new QuestPageBounds(Hkv, D, P);
    const check = (rows: number) => {
      kernels.updateBounds(bounds, caches.device, rows);
      cpu.extend(caches.cpu, rows);
      assertBoundsEqual(rt, bounds, cpu, Hkv, D, Math.ceil(rows / P), `, ${rows} rows`);
    };
    check(517); // the prompt: 32 full pages and a partial one of 5 rows
    for (let i = 0; i < 13; i++) {
      appendRandom(rt, caches, 1, rand);
      check(caches.cpu.length); // crosses into page 33 at row 528
    }
    bounds.release();
    caches.device.release();
  });

  for (const sharePages of [true, false]) {
    test(`selected pages equal the CPU choice (${sharePages ? 'shared by the GQA group' : 'per query head'})`, () => {
      const H = 16, Hkv = 4, D = 128, P = 16, n = 3001;
      const rand = randomGenerator(sharePages ? 41 : 42);
      const caches = twinCaches(rt, Hkv, D, n);
      appendRandom(rt, caches, n, rand);
      const q = randomBf16Values(H * D, rand, 2);
      const dq = uploadAsBf16(rt, q);
      // The default (v3's 8-bit radix select over staged keys and the three-launch step), the refined
      // select, the keys read from global memory in every pass (long contexts) and the one-launch step.
      const kernels = new QuestKernels(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, P, sharePages);
      const refined = new QuestKernels(rt, kernels.shape, P, sharePages, { selection: 'refined' });
      const unstaged = new QuestKernels(rt, kernels.shape, P, sharePages, { maxStagedPages: 0 });
      const fused = new QuestKernels(rt, kernels.shape, P, sharePages, { fusedStep: true });
      // v5 with its default blocks per unit (2 here) and with many (8 pages each: 24 blocks per unit).
      const grid = new QuestKernels(rt, kernels.shape, P, sharePages, { multiBlockStep: true });
      const manyBlocks = new QuestKernels(rt, kernels.shape, P, sharePages, MULTI_BLOCK);
      // v6 likewise, and with its guess off.
      const win = new QuestKernels(rt, kernels.shape, P, sharePages, { windowStep: true });
      const winMany = new QuestKernels(rt, kernels.shape, P, sharePages, WINDOWED);
      const winCold = new QuestKernels(rt, kernels.shape, P, sharePages, { ...WINDOWED, windowGuess: false });
      const winNoPrefetch = new QuestKernels(rt, kernels.shape, P, sharePages, { ...WINDOWED, windowPrefetch: false });
      // v7 at its default blocks, at 8 pages each, and in one block per unit: 187 pages, so its rolled
      // loads cross into a second, partial batch (128 + 59 pages at D = 128).
      const rolled = new QuestKernels(rt, kernels.shape, P, sharePages, { multiBlockStep: true, rolledScores: true });
      const rolledMany = new QuestKernels(rt, kernels.shape, P, sharePages, ROLLED);
      const rolledOne = new QuestKernels(rt, kernels.shape, P, sharePages, { multiBlockStep: true, rolledScores: true, gridMinPagesPerBlock: 100_000 });
      // v8 likewise (units of 4 heads shared, 1 per query head: both light scorers).
      const light = new QuestKernels(rt, kernels.shape, P, sharePages, { multiBlockStep: true, rolledScores: true, lightScores: true });
      const lightMany = new QuestKernels(rt, kernels.shape, P, sharePages, LIGHT);
      const lightOne = new QuestKernels(rt, kernels.shape, P, sharePages, { ...LIGHT, gridMinPagesPerBlock: 100_000 });
      // v9 likewise: its first step on the scratch has no guess (v5's passes), later ones start from the
      // previous case's key range (same query and bounds: the guess holds), the select alone too.
      const guessed = new QuestKernels(rt, kernels.shape, P, sharePages, { multiBlockStep: true, rolledScores: true, lightScores: true, guessedPass: true });
      const guessedMany = new QuestKernels(rt, kernels.shape, P, sharePages, GUESSED);
      const guessedOne = new QuestKernels(rt, kernels.shape, P, sharePages, { ...GUESSED, gridMinPagesPerBlock: 100_000 });
      // v10 likewise: its barriers count on from one launch to the next (and from its select alone to its steps).
      const epoch = new QuestKernels(rt, kernels.shape, P, sharePages, { ...EPOCH, gridMinPagesPerBlock: 128 });
      const epochMany = new QuestKernels(rt, kernels.shape, P, sharePages, EPOCH);
      const epochOne = new QuestKernels(rt, kernels.shape, P, sharePages, { ...EPOCH, gridMinPagesPerBlock: 100_000 });
      // v8's and v10's unit-size entries (units of 4 with shared pages, of 1 per query head).
      const light4 = new QuestKernels(rt, kernels.shape, P, sharePages, { ...LIGHT_UNIT, gridMinPagesPerBlock: 128 });
      const light4Many = new QuestKernels(rt, kernels.shape, P, sharePages, LIGHT_UNIT);
      const epoch4 = new QuestKernels(rt, kernels.shape, P, sharePages, EPOCH_UNIT);
      const bounds = new DeviceQuestBounds(rt, kernels.shape, P, n);
      kernels.updateBounds(bounds, caches.device, n);
      const cpuBounds = new QuestPageBounds(Hkv, D, P);
      cpuBounds.extend(caches.cpu, n);
      const cpu = new QuestDecode(P, 0.9, null, sharePages);
      const pages = Math.floor((n - 1) / P);
      const scores = rt.pool.acquire(kernels.units * bounds.pageCapacity * 4);
      const lists = new SegmentLists(rt, kernels.units, bounds.pageCapacity);
      const scratch = new QuestStepScratch(rt, kernels.units, bounds.pageCapacity, { multiBlock: true, window: true });
      const g = H / Hkv;
      const cases: Array<[number, QuestKernels | { step: QuestKernels } | { gridSelect: QuestKernels }]> = [
        [1, kernels], [7, unstaged], [64, kernels], [64, refined], [64, unstaged], [pages - 1, kernels], [pages - 1, refined],
        [1, { step: fused }], [64, { step: fused }], [90, { step: fused }], [pages - 1, { step: fused }], [90, { step: kernels }],
        [1, { step: grid }], [64, { step: grid }], [pages - 1, { step: grid }],
        [1, { step: manyBlocks }], [7, { step: manyBlocks }], [64, { step: manyBlocks }], [90, { step: manyBlocks }], [pages - 1, { step: manyBlocks }],
        [1, { gridSelect: manyBlocks }], [90, { gridSelect: manyBlocks }], [pages - 1, { gridSelect: grid }],
        [1, { step: win }], [64, { step: win }], [64, { step: win }], [pages - 1, { step: win }],
        [1, { step: winMany }], [7, { step: winMany }], [90, { step: winMany }], [90, { step: winMany }], [pages - 1, { step: winMany }],
        [7, { step: winCold }], [90, { step: winCold }], [90, { step: winNoPrefetch }],
        [1, { gridSelect: winMany }], [90, { gridSelect: winMany }], [pages - 1, { gridSelect: win }],
        [1, { step: rolled }], [64, { step: rolled }], [pages - 1, { step: rolled }], [7, { step: rolledMany }], [90, { step: rolledMany }],
        [1, { step: rolledOne }], [64, { step: rolledOne }], [90, { step: rolledOne }], [pages - 1, { step: rolledOne }],
        [1, { step: light }], [64, { step: light }], [pages - 1, { step: light }], [7, { step: lightMany }], [90, { step: lightMany }],
        [1, { step: lightOne }], [64, { step: lightOne }], [90, { step: lightOne }], [pages - 1, { step: lightOne }],
        [64, { step: guessed }], [1, { step: guessed }], [pages - 1, { step: guessed }], [7, { step: guessedMany }], [90, { step: guessedMany }],
        [1, { step: guessedOne }], [64, { step: guessedOne }], [90, { step: guessedOne }], [pages - 1, { step: guessedOne }],
        [1, { gridSelect: guessedMany }], [90, { gridSelect: guessedMany }], [pages - 1, { gridSelect: guessed }],
        [64, { step: epoch }], [1, { step: epoch }], [pages - 1, { step: epoch }], [7, { step: epochMany }], [90, { step: epochMany }],
        [90, { gridSelect: epochMany }], [64, { step: epochMany }], [1, { step: epochOne }], [90, { step: epochOne }], [pages - 1, { gridSelect: epoch }],
        [pages - 1, { step: epoch }],
        [1, { step: light4 }], [64, { step: light4 }], [pages - 1, { step: light4 }], [7, { step: light4Many }], [90, { step: light4Many }],
        [64, { step: epoch4 }], [1, { step: epoch4 }], [90, { step: epoch4 }], [pages - 1, { step: epoch4 }],
      ];
      for (const [k, selector] of cases) {
        rt.cuda.fill32Async(lists.ptr, 0x7fc00000, kernels.units * lists.stride, rt.stream);
        if ('step' in selector) {
          // Rows already covered: the step only scores and selects.
          selector.step.selectStep({ q: dq.ptr, bounds, cache: caches.device, rows: n, pages, k, scratch, segments: lists });
        } else if ('gridSelect' in selector) {
          kernels.scorePages(dq.ptr, bounds, pages, scores.ptr, bounds.pageCapacity);
          selector.gridSelect.selectPagesMultiBlock(scores.ptr, bounds.pageCapacity, pages, k, lists, scratch);
        } else {
          kernels.scorePages(dq.ptr, bounds, pages, scores.ptr, bounds.pageCapacity);
          selector.selectPages(scores.ptr, bounds.pageCapacity, pages, k, lists);
        }
        const words = downloadInt32(rt, lists.ptr, kernels.units * lists.stride);
        for (let u = 0; u < kernels.units; u++) {
          const w = words.subarray(u * lists.stride);
          assert.equal(w[0], k, `unit ${u}: ${w[0]} pages listed, wanted ${k}`);
          assert.equal(w[1], k * P);
          assert.equal(w[2], P, 'pages are a uniform list');
          const got = Array.from({ length: k }, (_, i) => w[SEGMENT_HEADER_WORDS + 2 * i] / P);
          for (let i = 0; i < k; i++) assert.equal(w[SEGMENT_HEADER_WORDS + 1 + 2 * i], i * P, 'logical rows follow the list order');
          const want = Array.from(sharePages
            ? cpu.choosePages(q, u * g, g, D, cpuBounds, u, pages, k).subarray(0, k)
            : cpu.choosePages(q, u, 1, D, cpuBounds, Math.floor(u / g), pages, k).subarray(0, k));
          assert.deepEqual(got, want, `unit ${u}, k = ${k}`);
        }
      }
      for (const b of [dq, scores]) rt.pool.release(b);
      scratch.release();
      lists.release();
      bounds.release();
      caches.device.release();
    });
  }

  test('the refined select equals the CPU ranking on crafted score rows', () => {
    const rand = randomGenerator(71);
    const rows: Array<{ name: string; scores: Float32Array; ks: number[] }> = [];
    const of = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
    rows.push({ name: 'one value everywhere', scores: of(1000, () => 0.5), ks: [1, 7, 500, 999] });
    rows.push({ name: 'two values alternating', scores: of(3000, (i) => (i % 2 ? 1.25 : -3)), ks: [5, 1499, 1500, 1501, 2999] });
    rows.push({ name: 'five values, random', scores: of(5000, () => [0, 1, 2, 3, 4][Math.floor((rand() + 1) * 2.5) % 5]), ks: [10, 999, 2500, 4000] });
    rows.push({ name: 'uniform spread', scores: of(8191, () => 100 + rand()), ks: [1, 409, 4095, 8190] });
    rows.push({ name: 'a block of 600 equal scores across the cut', scores: of(4000, (i) => (i >= 1000 && i < 1600 ? 7 : 7 + rand())), ks: [1500, 1700, 2300] });
    rows.push({
      name: 'signed zeros, infinities, one NaN, mixed signs',
      scores: of(2500, (i) => (i === 3 ? NaN : i % 97 === 0 ? 0 : i % 89 === 0 ? -0 : i === 10 ? Infinity : i === 11 ? -Infinity : rand() * 1e-3)),
      ks: [1, 60, 1249, 2400],
    });
    rows.push({ name: 'ten outliers and a tight cluster (two radix passes)', scores: of(7000, (i) => (i % 700 === 5 ? 1e6 + i : 1 + rand() * 1e-4)), ks: [4, 10, 11, 3500] });
    rows.push({ name: 'a short row (ranked without a radix pass)', scores: of(40, () => Math.round(rand() * 4)), ks: [1, 13, 39] });
    rows.push({ name: 'near-equal scores (one ulp apart)', scores: of(6000, (i) => 1 + (i % 7) * 2 ** -23), ks: [3, 857, 858, 3000] });
    const maxPages = Math.max(...rows.map((r) => r.scores.length));
    const shape = { numHeads: 4, numKvHeads: 1, headDim: 128 };
    const refined = new QuestKernels(rt, shape, 16, true, { selection: 'refined' });
    const radix8 = new QuestKernels(rt, shape, 16, true);
    // v5's select with its default blocks (up to 32 from 4096 pages on) and with 32 blocks from 2048 pages on.
    const grid = new QuestKernels(rt, shape, 16, true, { multiBlockStep: true });
    const manyBlocks = new QuestKernels(rt, shape, 16, true, { multiBlockStep: true, gridMinPagesPerBlock: 64 });
    // v6 likewise (each select starts from the previous row's key range: stale guesses), and with its guess off.
    const win = new QuestKernels(rt, shape, 16, true, { windowStep: true });
    const winMany = new QuestKernels(rt, shape, 16, true, { windowStep: true, gridMinPagesPerBlock: 64 });
    const winCold = new QuestKernels(rt, shape, 16, true, { windowStep: true, gridMinPagesPerBlock: 64, windowGuess: false });
    // v9's select alone likewise: each row's first select guesses from the previous row's range (mostly
    // a miss: another scale, or signs), the next ones from this row's own (a hit).
    const guessed = new QuestKernels(rt, shape, 16, true, { ...GUESSED, gridMinPagesPerBlock: 128 });
    const guessedMany = new QuestKernels(rt, shape, 16, true, { ...GUESSED, gridMinPagesPerBlock: 64 });
    const epochMany = new QuestKernels(rt, shape, 16, true, { ...EPOCH, gridMinPagesPerBlock: 64 });
    const scratch = new QuestStepScratch(rt, 1, maxPages, { multiBlock: true, window: true });
    const scores = rt.pool.acquire(maxPages * 4);
    const lists = new SegmentLists(rt, 1, maxPages);
    const rank = new IndexScratch();
    for (const r of rows) {
      const n = r.scores.length;
      rt.cuda.upload(scores.ptr, r.scores);
      const order = rankDescending(Float64Array.from(r.scores), n, rank);
      for (const k of r.ks) {
        const want = Array.from(order.subarray(0, k)).sort((a, b) => a - b);
        for (const [label, kernels] of [
          ['refined', refined], ['radix8', radix8], ['v5', grid], ['v5, many blocks', manyBlocks],
          ['v6', win], ['v6, many blocks', winMany], ['v6, many blocks again (its own range as the guess)', winMany], ['v6, no guess', winCold],
          ['v9', guessed], ['v9, many blocks', guessedMany], ['v9, many blocks again (its own range as the guess)', guessedMany],
          ['v10, many blocks', epochMany], ['v10, many blocks again', epochMany],
        ] as const) {
          rt.cuda.fill32Async(lists.ptr, 0x7fc00000, lists.stride, rt.stream);
          if (kernels.multiBlockStep || kernels.windowStep) kernels.selectPagesMultiBlock(scores.ptr, maxPages, n, k, lists, scratch);
          else kernels.selectPages(scores.ptr, maxPages, n, k, lists);
          const w = downloadInt32(rt, lists.ptr, lists.stride);
          assert.equal(w[0], k, `${r.name}, k = ${k}, ${label}: count`);
          const got = Array.from({ length: k }, (_, i) => w[SEGMENT_HEADER_WORDS + 2 * i] / 16);
          assert.deepEqual(got, want, `${r.name}, k = ${k}, ${label}`);
        }
      }
    }
    rt.pool.release(scores);
    scratch.release();
    lists.release();
  });

  // v6 against the defaults on either side of the method's threshold (v3 below QUEST_MULTI_BLOCK_MIN_PAGES,
  // v5 from it) and the CPU: random keys, and coarse keys whose pages tie; the current page partial.
  for (const sharePages of [true, false]) for (const ties of [false, true]) {
    test(`v6 to v10 lists equal v3's, v5's and the CPU's word for word just below and at the multi-block threshold (${sharePages ? 'shared pages' : 'per query head'}${ties ? ', tied scores' : ''})`, () => {
      const H = 8, Hkv = 2, D = 64, P = 16;
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
      const v3 = new QuestKernels(rt, shape, P, sharePages);
      const v5 = new QuestKernels(rt, shape, P, sharePages, { multiBlockStep: true });
      const v6 = new QuestKernels(rt, shape, P, sharePages, { windowStep: true });
      const v6Cold = new QuestKernels(rt, shape, P, sharePages, { windowStep: true, windowGuess: false, windowPrefetch: false });
      // v7 at v5's blocks (one batch per block here) and at 4 blocks per unit (~1,024 pages each: four rolled batches at D = 64).
      const v7 = new QuestKernels(rt, shape, P, sharePages, { multiBlockStep: true, rolledScores: true });
      const v7Long = new QuestKernels(rt, shape, P, sharePages, { multiBlockStep: true, rolledScores: true, gridMinPagesPerBlock: 1024 });
      const v8 = new QuestKernels(rt, shape, P, sharePages, { multiBlockStep: true, rolledScores: true, lightScores: true });
      const v8Long = new QuestKernels(rt, shape, P, sharePages, { multiBlockStep: true, rolledScores: true, lightScores: true, gridMinPagesPerBlock: 1024 });
      const v9 = new QuestKernels(rt, shape, P, sharePages, { multiBlockStep: true, rolledScores: true, lightScores: true, guessedPass: true });
      const v9Long = new QuestKernels(rt, shape, P, sharePages, { multiBlockStep: true, rolledScores: true, lightScores: true, guessedPass: true, gridMinPagesPerBlock: 1024 });
      const v10 = new QuestKernels(rt, shape, P, sharePages, { ...EPOCH, gridMinPagesPerBlock: 128 });
      const v8h = new QuestKernels(rt, shape, P, sharePages, LIGHT_UNIT);
      const v10h = new QuestKernels(rt, shape, P, sharePages, EPOCH_UNIT);
      const g = H / Hkv;
      for (const pages of [QUEST_MULTI_BLOCK_MIN_PAGES - 1, QUEST_MULTI_BLOCK_MIN_PAGES]) {
        const n = pages * P + 7; // the step at n - 1 scores `pages` pages; its own page holds 7 rows
        const rand = randomGenerator(pages + (sharePages ? 1 : 2) + (ties ? 10 : 0));
        const draw = ties ? () => Math.round(rand()) / 2 : rand; // ties: keys of {-1, 0, 1}, so many pages share their bounds
        const caches = twinCaches(rt, Hkv, D, n);
        appendRandom(rt, caches, n, draw);
        const bounds = new DeviceQuestBounds(rt, shape, P, n);
        v3.updateBounds(bounds, caches.device, n);
        const cpuBounds = new QuestPageBounds(Hkv, D, P);
        cpuBounds.extend(caches.cpu, n);
        const cpu = new QuestDecode(P, 0.9, null, sharePages);
        const q = randomBf16Values(H * D, rand, 2);
        const dq = uploadAsBf16(rt, q);
        const scratch = new QuestStepScratch(rt, v3.units, bounds.pageCapacity, { multiBlock: true, window: true });
        const lists = new SegmentLists(rt, v3.units, bounds.pageCapacity);
        const words = v3.units * lists.stride;
        const run = (kernels: QuestKernels, k: number): Int32Array => {
          rt.cuda.fill32Async(lists.ptr, 0x7fc00000, words, rt.stream);
          kernels.selectStep({ q: dq.ptr, bounds, cache: caches.device, rows: n, pages, k, scratch, segments: lists });
          return downloadInt32(rt, lists.ptr, words);
        };
        for (const k of [1, 409, pages >> 1, pages - 1]) {
          const want = run(v3, k);
          const listWords = SEGMENT_HEADER_WORDS + 2 * k;
          for (let u = 0; u < v3.units; u++) {
            const got = Array.from({ length: k }, (_, i) => want[u * lists.stride + SEGMENT_HEADER_WORDS + 2 * i] / P);
            const cpuPages = Array.from(sharePages
              ? cpu.choosePages(q, u * g, g, D, cpuBounds, u, pages, k).subarray(0, k)
              : cpu.choosePages(q, u, 1, D, cpuBounds, Math.floor(u / g), pages, k).subarray(0, k));
            assert.deepEqual(got, cpuPages, `${pages} pages, k = ${k}, unit ${u}: v3 as the CPU`);
          }
          // v6 twice: at the first k from a fresh scratch (no guess), later from the previous call's range (this row's); then again from it.
          for (const [label, kernels] of [
            ['v5', v5], ['v6', v6], ['v6 again', v6], ['v6, guess and prefetch off', v6Cold], ['v7', v7], ['v7, 4 blocks per unit', v7Long],
            ['v8', v8], ['v8, 4 blocks per unit', v8Long], ['v9', v9], ['v9 again', v9], ['v9, 4 blocks per unit', v9Long],
            ['v10', v10], ['v10 again', v10], ['v8, unit-size entries', v8h], ['v10, unit-size entries', v10h], ['v10, unit-size entries again', v10h],
          ] as const) {
            const got = run(kernels, k);
            for (let u = 0; u < v3.units; u++) {
              for (let i = 0; i < listWords; i++) {
                const at = u * lists.stride + i;
                assert.equal(got[at], want[at], `${pages} pages, k = ${k}, unit ${u}: ${label} word ${i} differs from v3's`);
              }
            }
          }
        }
        rt.pool.release(dq);
        scratch.release();
        lists.release();
        bounds.release();
        caches.device.release();
      }
    });
  }

  // v8 against v3 word for word at every unit size the kernel dispatches on: 1, 2 and 4 heads (light
  // scorers) and 8 (v7's scorer), with keys holding +-inf and queries holding zeros and one NaN head, so
  // that 0 · inf and NaN products reach the light scorer's rescoring path on the device. Through the
  // unit-size entries, each size runs its own (v10: 1, 2, 4, 8 heads, and 7 on the any-size plain entry or, with
  // constantPlainHeads, its own; with batched page sums, 1, 2, 4, 8 and that 7 on their reduce-scatter twins).
  for (const c of [
    { name: 'units of 2 heads, D = 128', H: 8, Hkv: 4, D: 128, sharePages: true },
    { name: 'units of 8 heads (v7 scoring), D = 64', H: 16, Hkv: 2, D: 64, sharePages: true },
    { name: 'units of 4 heads, D = 64', H: 8, Hkv: 2, D: 64, sharePages: true },
    { name: 'units of 1 head, D = 128', H: 8, Hkv: 2, D: 128, sharePages: false },
    { name: 'units of 7 heads (v7 scoring), D = 128', H: 14, Hkv: 2, D: 128, sharePages: true },
  ]) for (const special of [false, true]) {
    test(`v8, v9 and v10 lists equal v3's word for word (${c.name}${special ? ', infinite keys, zero and NaN queries' : ''})`, () => {
      const P = 16, pages = 700, n = pages * P + 5;
      const shape = { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D };
      const v3 = new QuestKernels(rt, shape, P, c.sharePages);
      const v8 = new QuestKernels(rt, shape, P, c.sharePages, LIGHT);
      const v8One = new QuestKernels(rt, shape, P, c.sharePages, { ...LIGHT, gridMinPagesPerBlock: 100_000 });
      const v9 = new QuestKernels(rt, shape, P, c.sharePages, GUESSED);
      const v10 = new QuestKernels(rt, shape, P, c.sharePages, EPOCH);
      const v8h = new QuestKernels(rt, shape, P, c.sharePages, LIGHT_UNIT);
      const v10h = new QuestKernels(rt, shape, P, c.sharePages, EPOCH_UNIT);
      const v10hb = new QuestKernels(rt, shape, P, c.sharePages, EPOCH_BATCHED);
      const v10h7 = new QuestKernels(rt, shape, P, c.sharePages, EPOCH_SEVEN);
      const v10h7b = new QuestKernels(rt, shape, P, c.sharePages, EPOCH_SEVEN_BATCHED);
      const v10hbf = new QuestKernels(rt, shape, P, c.sharePages, EPOCH_FUSED);
      const v10hbp = new QuestKernels(rt, shape, P, c.sharePages, EPOCH_PREFETCH);
      const rand = randomGenerator(c.H * 3 + c.D + (special ? 1 : 0));
      const draw = special ? () => { const r = rand(); return r > 0.998 ? Infinity : r < -0.998 ? -Infinity : r; } : rand;
      const caches = twinCaches(rt, c.Hkv, c.D, n);
      appendRandom(rt, caches, n, draw);
      const bounds = new DeviceQuestBounds(rt, shape, P, n);
      v3.updateBounds(bounds, caches.device, n);
      const q = randomBf16Values(c.H * c.D, rand, 2);
      if (special) {
        for (let i = 0; i < q.length; i += 5) q[i] = 0;
        q[c.D + 3] = NaN; // one NaN dim in head 1: its unit's scores are all NaN in v3 too
      }
      const dq = uploadAsBf16(rt, q);
      const scratch = new QuestStepScratch(rt, v3.units, bounds.pageCapacity, { multiBlock: true, window: true });
      const lists = new SegmentLists(rt, v3.units, bounds.pageCapacity);
      const words = v3.units * lists.stride;
      const run = (kernels: QuestKernels, k: number): Int32Array => {
        rt.cuda.fill32Async(lists.ptr, 0x7fc00000, words, rt.stream);
        kernels.selectStep({ q: dq.ptr, bounds, cache: caches.device, rows: n, pages, k, scratch, segments: lists });
        return downloadInt32(rt, lists.ptr, words);
      };
      for (const k of [1, 70, pages >> 1, pages - 1]) {
        const want = run(v3, k);
        for (const [label, kernels] of [['v8', v8], ['v8, one block per unit', v8One], ['v9', v9], ['v9 again', v9], ['v10', v10], ['v10 again', v10], ['v8, unit-size entries', v8h], ['v10, unit-size entries', v10h], ['v10, unit-size entries again', v10h], ['v10, batched page sums', v10hb], ['v10, batched page sums again', v10hb], ['v10, constant plain heads', v10h7], ['v10, constant plain heads, batched page sums', v10h7b], ['v10, fused products', v10hbf], ['v10, rolling prefetch', v10hbp]] as const) {
          const got = run(kernels, k);
          for (let u = 0; u < v3.units; u++) {
            for (let i = 0; i < SEGMENT_HEADER_WORDS + 2 * k; i++) {
              const at = u * lists.stride + i;
              assert.equal(got[at], want[at], `k = ${k}, unit ${u}: ${label} word ${i} differs from v3's`);
            }
          }
        }
      }
      rt.pool.release(dq);
      scratch.release();
      lists.release();
      bounds.release();
      caches.device.release();
    });
  }

  // Session 9's stamped step (bench/quest-phases.ts): the same lists as v10h4b's step, and every block's stamps in order.
  for (const [entry, options] of [['v10h4b', EPOCH_BATCHED], ['v10h4br', EPOCH_REFRESH]] as const) test(`the stamped 4-head step writes ${entry}'s lists and each block's phase stamps in order`, () => {
    const P = 16, pages = 1500, n = pages * P + 5, H = 16, Hkv = 4, D = 128;
    const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
    const kernels = new QuestKernels(rt, shape, P, true, { ...options, gridMinPagesPerBlock: 64 });
    assert.equal(kernels.stepEntry, entry);
    const rand = randomGenerator(91);
    const caches = twinCaches(rt, Hkv, D, n);
    appendRandom(rt, caches, n, rand);
    const bounds = new DeviceQuestBounds(rt, shape, P, n);
    kernels.updateBounds(bounds, caches.device, n);
    const dq = uploadAsBf16(rt, randomBf16Values(H * D, rand, 2));
    const scratch = new QuestStepScratch(rt, kernels.units, bounds.pageCapacity, { multiBlock: true });
    const lists = new SegmentLists(rt, kernels.units, bounds.pageCapacity);
    const stampWords = kernels.units * QUEST_PHASE_STAMP_BYTES / 8;
    const stamps = rt.pool.acquire(stampWords * 8);
    const words = kernels.units * lists.stride;
    const k = 300;
    const run = (stamped: boolean): Int32Array => {
      rt.cuda.fill32Async(lists.ptr, 0x7fc00000, words, rt.stream);
      rt.cuda.fill32Async(stamps.ptr, 0, stampWords * 2, rt.stream);
      kernels.selectStep({ q: dq.ptr, bounds, cache: caches.device, rows: n, pages, k, scratch, segments: lists, ...(stamped ? { phaseStamps: stamps.ptr } : {}) });
      return downloadInt32(rt, lists.ptr, words);
    };
    for (const stamped of [false, true, true, false]) { // the first step sets the guess; the rest run the guessed pass
      const want = run(false), got = run(stamped);
      assert.deepEqual(got, want, `stamped ${stamped}: lists differ from ${entry}'s`);
    }
    run(true);
    rt.synchronize();
    const out = new BigUint64Array(stampWords);
    rt.cuda.download(out, stamps.ptr);
    const G = kernels.gridBlocks(pages, 'gridStepEpoch4B');
    assert.ok(G > 1, `${G} blocks per unit`);
    const timeOrder = [QUEST_PHASES.start, QUEST_PHASES.scored, QUEST_PHASES.allScored, QUEST_PHASES.atFirstBarrier, QUEST_PHASES.pastFirstBarrier, QUEST_PHASES.firstPassRead,
      QUEST_PHASES.atFinalBarrier, QUEST_PHASES.pastFinalBarrier, QUEST_PHASES.end];
    for (let u = 0; u < kernels.units; u++) {
      for (let b = 0; b < QUEST_GRID_MAX_BLOCKS; b++) {
        const at = (u * QUEST_GRID_MAX_BLOCKS + b) * 2 * QUEST_PHASE_SLOTS;
        if (b >= G) {
          assert.equal(out[at + QUEST_PHASES.start], 0n, `unit ${u} block ${b}: past G, untouched`);
          continue;
        }
        for (const half of [0, QUEST_PHASE_SLOTS]) {
          for (let i = 1; i < timeOrder.length; i++) {
            const before = out[at + half + timeOrder[i - 1]!]!, after = out[at + half + timeOrder[i]!]!;
            assert.ok(before > 0n && after >= before, `unit ${u} block ${b} ${half ? 'clock64' : 'globaltimer'}: phase ${timeOrder[i]} before ${timeOrder[i - 1]}`);
          }
        }
        assert.equal(out[at + QUEST_PHASES.guessHeld], 1n, `unit ${u} block ${b}: the same query, the guess holds`);
        assert.ok(out[at + QUEST_PHASES.barriers]! >= 2n, `unit ${u} block ${b}: at least the first and final barriers`);
      }
    }
    rt.pool.release(stamps);
    rt.pool.release(dq);
    scratch.release();
    lists.release();
    bounds.release();
    caches.device.release();
  });

  for (const c of [
    { name: 'GQA 4 sharing pages, D = 128', H: 16, Hkv: 4, D: 128, sharePages: true },
    { name: 'per query head, D = 64', H: 8, Hkv: 2, D: 64, sharePages: false },
  ]) for (const [version, options] of [['v4', { fusedStep: true }], ['v5', MULTI_BLOCK], ['v6', WINDOWED], ['v7', ROLLED], ['v8', LIGHT], ['v9', GUESSED], ['v10', EPOCH], ['v8h', LIGHT_UNIT], ['v10h', EPOCH_UNIT], ['v10hb', EPOCH_BATCHED], ['v10h4br', EPOCH_REFRESH], ['v10h4bp', EPOCH_PREFETCH]] as const) {
    test(`one-launch steps (${version}) fold each new row into the bounds and select as the CPU (${c.name}; graph replay)`, () => {
      const P = 16, n = 2037, steps = 30;
      const rand = randomGenerator(c.D + c.H);
      const caches = twinCaches(rt, c.Hkv, c.D, n + steps);
      appendRandom(rt, caches, n, rand);
      const kernels = new QuestKernels(rt, { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D }, P, c.sharePages, options);
      const bounds = new DeviceQuestBounds(rt, kernels.shape, P, n + steps);
      const cpuBounds = new QuestPageBounds(c.Hkv, c.D, P);
      const cpu = new QuestDecode(P, 0.9, null, c.sharePages);
      const scratch = new QuestStepScratch(rt, kernels.units, bounds.pageCapacity, kernels.scratchOptions);
      const lists = new SegmentLists(rt, kernels.units, bounds.pageCapacity);
      const g = c.H / c.Hkv;
      const check = (q: Float32Array, rows: number, pages: number, k: number, label: string) => {
        const words = downloadInt32(rt, lists.ptr, kernels.units * lists.stride);
        const take = Math.max(0, Math.min(k, pages));
        for (let u = 0; u < kernels.units; u++) {
          const w = words.subarray(u * lists.stride);
          assert.equal(w[0], take, `${label}, unit ${u}: count`);
          const got = Array.from({ length: take }, (_, i) => w[SEGMENT_HEADER_WORDS + 2 * i] / P);
          const want = take >= pages ? Array.from({ length: pages }, (_, i) => i) : Array.from(c.sharePages
            ? cpu.choosePages(q, u * g, g, c.D, cpuBounds, u, pages, take).subarray(0, take)
            : cpu.choosePages(q, u, 1, c.D, cpuBounds, Math.floor(u / g), pages, take).subarray(0, take));
          assert.deepEqual(got, want, `${label}, unit ${u}, k = ${k}, ${rows} rows`);
        }
      };
      // Steps as the method makes them (the first folds the whole prompt); k varies, including none and all.
      for (let s = 0; s < steps; s++) {
        appendRandom(rt, caches, 1, rand);
        const rows = caches.device.length, pages = Math.floor((rows - 1) / P);
        const k = s === 3 ? 0 : s === 4 ? pages : s === 5 ? pages + 3 : 1 + ((s * 37) % 60);
        const q = randomBf16Values(c.H * c.D, rand, 2);
        const dq = uploadAsBf16(rt, q);
        rt.cuda.fill32Async(lists.ptr, 0x7fc00000, kernels.units * lists.stride, rt.stream);
        kernels.selectStep({ q: dq.ptr, bounds, cache: caches.device, rows, pages, k, scratch, segments: lists });
        cpuBounds.extend(caches.cpu, rows);
        check(q, rows, pages, k, `step ${s}`);
        rt.pool.release(dq);
      }
      // The bounds the steps folded equal the CPU bounds.
      assertBoundsEqual(rt, bounds, cpuBounds, c.Hkv, c.D, Math.ceil(caches.device.length / P));
      // Captured once, replayed twice: the arrival counters (v5, v6: their sync words and histograms) come back to 0, so each replay selects again.
      const rows = caches.device.length, pages = Math.floor((rows - 1) / P), k = 25;
      const q = randomBf16Values(c.H * c.D, rand, 2);
      const dq = uploadAsBf16(rt, q);
      rt.synchronize();
      const exec = rt.cuda.captureGraph(rt.stream, () => {
        kernels.selectStep({ q: dq.ptr, bounds, cache: caches.device, rows, pages, k, scratch, segments: lists });
      });
      for (let replay = 0; replay < 2; replay++) {
        rt.cuda.fill32Async(lists.ptr, 0x7fc00000, kernels.units * lists.stride, rt.stream);
        rt.cuda.launchGraph(exec, rt.stream);
        check(q, rows, pages, k, `graph replay ${replay}`);
      }
      rt.synchronize();
      rt.cuda.destroyGraph(exec);
      rt.pool.release(dq);
      scratch.release();
      lists.release();
      bounds.release();
      caches.device.release();
    });
  }

  interface StepCase { name: string; H: number; Hkv: number; D: number; n: number; steps: number; sparsity?: number; tokenBudget?: number; sharePages: boolean; seed: number }
  const stepCases: StepCase[] = [
    { name: 's = 0.8, GQA 4 sharing pages', H: 16, Hkv: 4, D: 128, n: 2000, steps: 20, sparsity: 0.8, sharePages: true, seed: 51 },
    { name: 'token budget 256, per query head, D = 64', H: 8, Hkv: 2, D: 64, n: 1500, steps: 12, tokenBudget: 256, sharePages: false, seed: 52 },
    { name: 's = 0.95 on a short prompt (budget below one page)', H: 8, Hkv: 8, D: 128, n: 300, steps: 5, sparsity: 0.95, sharePages: true, seed: 53 },
  ];
  for (const c of stepCases) {
    test(`decode steps match the CPU method: ${c.name}`, () => {
      const rand = randomGenerator(c.seed);
      const caches = twinCaches(rt, c.Hkv, c.D, c.n + c.steps);
      appendRandom(rt, caches, c.n, rand);
      const params = { sharePages: c.sharePages, ...(c.tokenBudget !== undefined ? { tokenBudget: c.tokenBudget } : {}) };
      const config = attentionConfig(c.H, c.Hkv, c.D);
      const gpu = questDeviceFactory.create(rt, config, { ...(c.sparsity !== undefined ? { sparsity: c.sparsity } : {}), params });
      const cpu = new QuestDecode(16, c.sparsity ?? null, c.tokenBudget ?? null, c.sharePages);
      const shape = cpuShape(c.H, c.Hkv, c.D);
      let last: { p: number; q: Float32Array; ref: Float32Array } | null = null;
      for (let s = 0; s < c.steps; s++) {
        // No eviction: the device row count is the CPU cache's length too.
        const { p, q, ref, counts, err } = checkDecodeStep(rt, caches, cpu, gpu, c.H, c.Hkv, c.D, 0, rand, TOLERANCE);
        if (s === c.steps - 1) console.log(`#   last step ${p}: ${counts.attended[0]} of ${p + 1} rows, rel err ${err.toExponential(2)}`);
        last = { p, q, ref };
      }
      const estimationMs = (gpu as unknown as EstimationTiming).lastEstimationMs();
      assert.ok(estimationMs !== null && estimationMs > 0, `estimation time ${estimationMs}`);
      // reset() drops the bounds: the same step again rebuilds them from the whole cache.
      gpu.reset?.();
      if (last) {
        const dq = uploadAsBf16(rt, last.q);
        const dout = poisonedBf16(rt, c.H * c.D);
        gpu.decode({ layer: 0, shape, q: dq.ptr, position: last.p, cache: caches.device, out: dout.ptr });
        const again = downloadBf16(rt, dout, c.H * c.D);
        rt.pool.release(dq);
        rt.pool.release(dout);
        assert.ok(relativeError(again, last.ref) < TOLERANCE, 'the step after reset() matches the CPU');
      }
      gpu.reset?.();
      caches.device.release();
    });
  }

  test('a budget covering everything (s = 0) equals our dense decode, with the last page partial', () => {
    const H = 32, Hkv = 8, D = 128, n = 4103;
    const rand = randomGenerator(61);
    const caches = twinCaches(rt, Hkv, D, n + 1);
    appendRandom(rt, caches, n + 1, rand);
    const p = n;
    assert.equal(questPagesFor(p, 16, 0, null), Math.floor(p / 16), 's = 0 reads every page');
    const gpu = questDeviceFactory.create(rt, attentionConfig(H, Hkv, D), { sparsity: 0, params: {} });
    const q = randomBf16Values(H * D, rand, 2);
    const dq = uploadAsBf16(rt, q);
    const a = poisonedBf16(rt, H * D);
    const counts = gpu.decode({ layer: 3, shape: cpuShape(H, Hkv, D), q: dq.ptr, position: p, cache: caches.device, out: a.ptr });
    const gb = denseDecodeOutput(rt, H, Hkv, D, dq.ptr, caches.device, p + 1);
    const ga = downloadBf16(rt, a, H * D);
    for (const x of [dq, a]) rt.pool.release(x);
    assert.equal(counts.attended[0], p + 1);
    const err = relativeError(ga, gb);
    assert.ok(err < 4e-3, `quest at s = 0 differs from dense decode by ${err}`);
    gpu.reset?.();
    caches.device.release();
  });

  // 'v5, empty chunks': one page per block, up to 32 blocks per unit, the last ones with empty chunks
  // (G is fixed at capture for the largest page count, the replayed steps score fewer pages).
  for (const c of [
    { name: 'GQA 4 sharing pages, D = 128', H: 16, Hkv: 4, D: 128, sharePages: true },
    { name: 'per query head, D = 64', H: 8, Hkv: 2, D: 64, sharePages: false },
  ]) for (const [version, options] of [
    ['v4', {}], ['v5', MULTI_BLOCK], ['v5, empty chunks', { multiBlockStep: true, gridMinPagesPerBlock: 1 }],
    ['v6', WINDOWED], ['v6, empty chunks', { windowStep: true, gridMinPagesPerBlock: 1 }],
    ['v7', ROLLED], ['v7, empty chunks', { multiBlockStep: true, rolledScores: true, gridMinPagesPerBlock: 1 }],
    ['v8', LIGHT], ['v8, empty chunks', { ...LIGHT, gridMinPagesPerBlock: 1 }],
    ['v9', GUESSED], ['v9, empty chunks', { ...GUESSED, gridMinPagesPerBlock: 1 }],
    ['v10', EPOCH], ['v10, empty chunks', { ...EPOCH, gridMinPagesPerBlock: 1 }],
    ['v8h', LIGHT_UNIT], ['v8h, empty chunks', { ...LIGHT_UNIT, gridMinPagesPerBlock: 1 }],
    ['v10h', EPOCH_UNIT], ['v10h, empty chunks', { ...EPOCH_UNIT, gridMinPagesPerBlock: 1 }],
    ['v10hb', EPOCH_BATCHED], ['v10hb, empty chunks', { ...EPOCH_BATCHED, gridMinPagesPerBlock: 1 }],
    ['v10h4br', EPOCH_REFRESH], ['v10h4bp', EPOCH_PREFETCH], ['v10h4bp, empty chunks', { ...EPOCH_PREFETCH, gridMinPagesPerBlock: 1 }],
  ] as const) {
    test(`graph step (${version}): one capture reads position and budget on the device, folds each row and selects as the CPU (${c.name})`, () => {
      const P = 16, n = 1203, steps = 40, capacity = n + steps;
      const rand = randomGenerator(c.D + c.H + 7);
      const caches = twinCaches(rt, c.Hkv, c.D, capacity);
      appendRandom(rt, caches, n, rand);
      const kernels = new QuestKernels(rt, { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D }, P, c.sharePages, options);
      const bounds = new DeviceQuestBounds(rt, kernels.shape, P, capacity);
      kernels.updateBounds(bounds, caches.device, n); // the prompt, as the sequence's first (eager) step folds it
      const cpuBounds = new QuestPageBounds(c.Hkv, c.D, P);
      const cpu = new QuestDecode(P, 0.9, null, c.sharePages);
      const scratch = new QuestStepScratch(rt, kernels.units, bounds.pageCapacity, kernels.scratchOptions);
      const lists = new SegmentLists(rt, kernels.units, bounds.pageCapacity);
      const g = c.H / c.Hkv;
      // A budget per position: none, every page, more than every page, and a spread (crossing page boundaries).
      const budgets = new Int32Array(capacity);
      for (let p = n; p < capacity; p++) budgets[p] = p === n + 3 ? 0 : p === n + 4 ? Math.floor(p / P) : p === n + 5 ? 10_000 : 1 + ((p * 37) % 60);
      const dBudgets = rt.pool.acquire(capacity * 4), position = rt.pool.acquire(16), dq = rt.pool.acquire(c.H * c.D * 2);
      const maxPages = Math.floor((capacity - 1) / P);
      kernels.prepare();
      rt.synchronize();
      rt.cuda.upload(dBudgets.ptr, budgets);
      const exec = rt.cuda.captureGraph(rt.stream, () => kernels.selectStepAt({
        q: dq.ptr, bounds, cache: caches.device, position: position.ptr, budgets: dBudgets.ptr, maxPages, scratch, segments: lists,
      }));
      try {
        for (let s = 0; s < steps; s++) {
          const p = caches.device.length;
          appendRandom(rt, caches, 1, rand); // synchronises: the last replay is done
          const q = randomBf16Values(c.H * c.D, rand, 2);
          rt.cuda.upload(dq.ptr, toBf16(q));
          rt.cuda.upload(position.ptr, Int32Array.of(p));
          rt.cuda.fill32Async(lists.ptr, 0x7fc00000, kernels.units * lists.stride, rt.stream);
          rt.cuda.launchGraph(exec, rt.stream);
          cpuBounds.extend(caches.cpu, p + 1);
          const pages = Math.floor(p / P), take = Math.max(0, Math.min(budgets[p], pages));
          const words = downloadInt32(rt, lists.ptr, kernels.units * lists.stride);
          for (let u = 0; u < kernels.units; u++) {
            const w = words.subarray(u * lists.stride);
            assert.equal(w[0], take, `p ${p}, unit ${u}: count`);
            assert.equal(w[1], take * P, `p ${p}, unit ${u}: list rows`);
            const got = Array.from({ length: take }, (_, i) => w[SEGMENT_HEADER_WORDS + 2 * i] / P);
            const want = take >= pages ? Array.from({ length: pages }, (_, i) => i) : Array.from(c.sharePages
              ? cpu.choosePages(q, u * g, g, c.D, cpuBounds, u, pages, take).subarray(0, take)
              : cpu.choosePages(q, u, 1, c.D, cpuBounds, Math.floor(u / g), pages, take).subarray(0, take));
            assert.deepEqual(got, want, `p ${p}, unit ${u}, budget ${budgets[p]}`);
          }
        }
        // The bounds the replays folded, row by row, equal the CPU bounds.
        assertBoundsEqual(rt, bounds, cpuBounds, c.Hkv, c.D, Math.ceil(caches.device.length / P));
      } finally {
        rt.synchronize();
        rt.cuda.destroyGraph(exec);
        for (const b of [dBudgets, position, dq]) rt.pool.release(b);
        scratch.release();
        lists.release();
        bounds.release();
        caches.device.release();
      }
    });
  }

  test('the method picks its selection by cache length: v5 from QUEST_MULTI_BLOCK_MIN_PAGES pages, the default below', () => {
    const config = attentionConfig(32, 8, 128);
    const method = new QuestDeviceDecode(rt, config, questSettings({ sparsity: 0.9, params: { sharePages: true } }));
    const P = 16;
    assert.equal(method.kernelsFor(QUEST_MULTI_BLOCK_MIN_PAGES * P - P).multiBlockStep, false, 'one page short');
    assert.equal(method.kernelsFor(QUEST_MULTI_BLOCK_MIN_PAGES * P - P + 1).multiBlockStep, true, 'a partial last page counts');
    assert.equal(method.kernelsFor(131072).multiBlockStep, true, '128K');
    assert.equal(method.kernelsFor(131072).stepEntry, 'v10h4b', '4-head units: v10 on the 4-head entry with batched page sums');
    const fixed = new QuestDeviceDecode(rt, config, questSettings({ sparsity: 0.9 }), {});
    assert.equal(fixed.kernelsFor(131072).multiBlockStep, false, 'kernel options fix the step for every length');
  });

  /** A case of the method's graph-step test. */
  interface MethodStepCase { name: string; H: number; Hkv: number; D: number; sparsity?: number; tokenBudget?: number; sharePages: boolean; seed: number }
  type MethodStepVersions = ReadonlyArray<readonly [string, QuestKernelOptions | null]>;
  const everyVersion: MethodStepVersions = [
    ['default steps', null], ['v5 steps', MULTI_BLOCK], ['v6 steps', WINDOWED], ['v7 steps', ROLLED], ['v8 steps', LIGHT], ['v9 steps', GUESSED],
    ['v10 steps', EPOCH], ['v8h steps', LIGHT_UNIT], ['v10h steps', EPOCH_UNIT], ['v10hb steps', EPOCH_BATCHED],
  ];
  // Session 9's entries at the unit sizes they serve: 2 heads (_epoch2b), 7 heads (_epoch7, _epoch7b) beside the default.
  const session9Versions: MethodStepVersions = [
    ['default steps', null], ['v10hb steps', EPOCH_BATCHED], ['v10h7 steps', EPOCH_SEVEN], ['v10h7b steps', EPOCH_SEVEN_BATCHED],
  ];
  const methodStepCases: Array<readonly [MethodStepCase, MethodStepVersions]> = [
    [{ name: 's = 0.8, GQA 4 sharing pages, D = 128', H: 16, Hkv: 4, D: 128, sparsity: 0.8, sharePages: true, seed: 81 }, everyVersion],
    [{ name: 'token budget 128, per query head, D = 64', H: 8, Hkv: 2, D: 64, tokenBudget: 128, sharePages: false, seed: 82 }, everyVersion],
    // Units of 8 (Llama-70B's group): v10h runs its 8-head entries eagerly and in the graph (the default from 4,096 pages).
    [{ name: 's = 0.9, GQA 8 sharing pages, D = 64', H: 16, Hkv: 2, D: 64, sparsity: 0.9, sharePages: true, seed: 83 }, everyVersion],
    [{ name: 's = 0.9, GQA 2 sharing pages, D = 128', H: 8, Hkv: 4, D: 128, sparsity: 0.9, sharePages: true, seed: 84 }, session9Versions],
    [{ name: 's = 0.9, GQA 7 sharing pages, D = 128', H: 14, Hkv: 2, D: 128, sparsity: 0.9, sharePages: true, seed: 85 }, session9Versions],
  ];
  for (const [c, versions] of methodStepCases) for (const [version, kernelOptions] of versions) {
    test(`graph steps of the method equal eager decode(): outputs, counts, and the CPU (${c.name}; ${version})`, () => {
      const n = 1000, steps = 40, capacity = n + steps + 1;
      const rand = randomGenerator(c.seed);
      const caches = twinCaches(rt, c.Hkv, c.D, capacity);
      appendRandom(rt, caches, n, rand);
      const config = attentionConfig(c.H, c.Hkv, c.D);
      const options = { ...(c.sparsity !== undefined ? { sparsity: c.sparsity } : {}), params: { sharePages: c.sharePages, ...(c.tokenBudget !== undefined ? { tokenBudget: c.tokenBudget } : {}) } };
      // v5 (v6): the graphed method and its eager twin both run it (eager selectStep, graph selectStepAt); the CPU is the reference.
      const make = () => (kernelOptions ? new QuestDeviceDecode(rt, config, questSettings(options), kernelOptions) : questDeviceFactory.create(rt, config, options));
      const eager = make(), graphed = make();
      const cpu = new QuestDecode(16, c.sparsity ?? null, c.tokenBudget ?? null, c.sharePages);
      const shape = cpuShape(c.H, c.Hkv, c.D);
      const owned: DeviceBuffer[] = [];
      const setupAt = (firstPosition: number): DeviceGraphDecodeSetup => ({
        shape: { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D, scale: shape.scale }, firstPosition, capacity,
        own: (bytes) => { const b = rt.pool.acquire(bytes); owned.push(b); return b.ptr; },
      });
      const dq = rt.pool.acquire(c.H * c.D * 2), position = rt.pool.acquire(16);
      const eagerOut = poisonedBf16(rt, c.H * c.D), graphOut = poisonedBf16(rt, c.H * c.D);
      let exec: ReturnType<typeof rt.cuda.captureGraph> | null = null;
      try {
        assert.equal(graphed.graphSteps!(setupAt(n)), null, 'no graph steps before the first step folds the prompt');
        let graphSteps: ReturnType<NonNullable<typeof graphed.graphSteps>> = null;
        for (let s = 0; s < steps; s++) {
          const p = caches.device.length;
          appendRandom(rt, caches, 1, rand);
          const q = randomBf16Values(c.H * c.D, rand, 2);
          rt.cuda.upload(dq.ptr, toBf16(q));
          rt.cuda.upload(position.ptr, Int32Array.of(p));
          const ref = new Float32Array(c.H * c.D);
          const cpuCounts = cpu.decode({ layer: 0, shape, query: q, position: p, cache: caches.cpu, out: ref });
          const wantCounts = eager.decode({ layer: 0, shape, q: dq.ptr, position: p, cache: caches.device, out: eagerOut.ptr });
          let counts;
          // The first step and the last run the graphed method eagerly (the last after graph replays).
          if (s === 0 || s === steps - 1) {
            counts = graphed.decode({ layer: 0, shape, q: dq.ptr, position: p, cache: caches.device, out: graphOut.ptr });
          } else {
            if (!exec) {
              graphSteps = graphed.graphSteps!(setupAt(p));
              assert.ok(graphSteps, 'graph steps once the prompt is folded');
              const steps = graphSteps;
              rt.synchronize();
              exec = rt.cuda.captureGraph(rt.stream, () => steps.record({ layer: 0, q: dq.ptr, position: position.ptr, cache: caches.device, out: graphOut.ptr }));
            }
            rt.cuda.launchGraph(exec, rt.stream);
            counts = graphSteps!.counts(0, p);
          }
          const got = downloadBf16(rt, graphOut, c.H * c.D), want = downloadBf16(rt, eagerOut, c.H * c.D);
          assert.deepEqual(Array.from(counts.attended), Array.from(wantCounts.attended), `p ${p}: attended pairs`);
          assert.deepEqual(Array.from(counts.dense), Array.from(wantCounts.dense), `p ${p}: dense pairs`);
          assert.deepEqual(Array.from(counts.attended), Array.from(cpuCounts.attended), `p ${p}: attended pairs as the CPU`);
          const vsEager = relativeError(got, want), vsCpu = relativeError(got, ref);
          if (s === 1 || s === steps - 2) console.log(`#   p ${p} (graph): ${counts.attended[0]} of ${p + 1} rows; vs eager ${vsEager.toExponential(2)}, vs CPU ${vsCpu.toExponential(2)}`);
          assert.ok(vsEager < 1e-3, `p ${p}: graph step vs eager decode() ${vsEager}`);
          assert.ok(vsCpu < TOLERANCE, `p ${p}: graph step vs CPU ${vsCpu}`);
        }
      } finally {
        rt.synchronize();
        if (exec) rt.cuda.destroyGraph(exec);
        for (const b of [dq, position, eagerOut, graphOut, ...owned]) rt.pool.release(b);
        eager.reset?.();
        graphed.reset?.();
        caches.device.release();
      }
    });
  }
});

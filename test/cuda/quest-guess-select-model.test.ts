/**
 * A host model of v9's select cut (quest.cu, quest_grid_select_chunk_guessed) run against the CPU
 * ranking (rankDescending: score desc, page asc) without a GPU. v9 starts with a radix pass on the
 * unit's key range at its previous select (the guess) before it knows this step's AND/OR; the pass
 * stands when this step's AND and OR agree with the guessed prefix on the guessed mask's bits (every
 * key then matches it), else v5's passes run from this step's AND/OR. The cut (prefix, mask, the
 * k-th key's bin, its count and what remains to take) then feeds v5's phases C-D unchanged, so the
 * model checks the cut's invariant and the taken pages it implies, over sequences of rows whose
 * ranges change from select to select (hits, misses, coarse guesses, all-equal rows, a NaN score), and counts
 * the unit barriers each select passes (v5: AND/OR + one per pass + the final one).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { randomGenerator } from './helpers.js';
import { RADIX_BITS, RANK_LIMIT, expectedPages, orderKey } from './quest-select-model-util.js';

const u32 = (x: number) => x >>> 0;
const topBit = (x: number) => (x === 0 ? -1 : 31 - Math.clz32(x));
/** Bits above `top` (all bits for top = -1, none for top = 31). */
const maskAbove = (top: number) => (top >= 31 ? 0 : u32(0xffffffff << (top + 1)));

interface Guess { and: number; or: number }
interface Cut { prefix: number; mask: number; remaining: number; binCount: number; top: number; barriers: number; held: boolean | null }

/** One radix pass (digits of `bits` bits) over the keys matching prefix under mask: the bin of the remaining-th key from the top. */
function pass(keys: number[], prefix: number, mask: number, top: number, remaining: number, bits = RADIX_BITS) {
  const shift = Math.max(0, top - (bits - 1));
  const bins = 1 << (top - shift + 1);
  const hist = new Array<number>(bins).fill(0);
  for (const key of keys) if (u32(key & mask) === prefix) hist[(key >>> shift) & (bins - 1)]++;
  let above = 0;
  for (let b = bins - 1; b >= 0; b--) {
    if (above + hist[b] >= remaining) return { shift, bins, bin: b, binCount: hist[b], remaining: remaining - above };
    above += hist[b];
  }
  return null; // a pass whose prefix some keys miss may not reach `remaining`
}

/**
 * v9's cut of keys (one unit, the blocks' union) for take k, from `guess` (null: none stored);
 * validate = false is the mutant that trusts the guess without checking it against this step's AND/OR.
 * guessBits: the guessed pass's digit width (quest.cu's GUESS_BITS; 11 = TOPK_RADIX_BITS, the default).
 */
function guessedCut(keys: number[], k: number, guess: Guess | null, validate = true, guessBits = RADIX_BITS): Cut {
  let and = 0xffffffff, or = 0;
  for (const key of keys) { and = u32(and & key); or = u32(or | key); }
  let remaining = k, binCount = keys.length, barriers = 0, top = -1, mask = 0, prefix = 0;
  let held: boolean | null = null;
  const guessDiff = guess ? u32(guess.and ^ guess.or) : 0;
  if (guess && guessDiff !== 0) {
    const gTop = topBit(guessDiff);
    const gMask = maskAbove(gTop);
    const gPrefix = u32(guess.and & gMask);
    const r = pass(keys, gPrefix, gMask, gTop, remaining, guessBits);
    barriers++;
    held = (u32((u32(and ^ gPrefix) | u32(or ^ gPrefix)) & gMask) === 0) || !validate;
    if (held) {
      assert.ok(r, 'a held guess finds the k-th key');
      prefix = u32(gPrefix | (r.bin << r.shift));
      mask = u32(gMask | ((r.bins - 1) << r.shift));
      remaining = r.remaining;
      binCount = r.binCount;
      const below = r.shift === 0 ? 0 : 0xffffffff >>> (32 - r.shift);
      const diffBelow = u32((and ^ or) & below);
      top = topBit(diffBelow);
      const common = u32(below & ~(top < 0 ? 0 : 0xffffffff >>> (31 - top)));
      mask = u32(mask | common);
      prefix = u32(prefix | (and & common));
    }
  } else {
    barriers++; // v5's AND/OR barrier
  }
  if (!held) {
    top = topBit(u32(and ^ or));
    mask = maskAbove(top);
    prefix = u32(and & mask);
  }
  let passes = 0;
  while (top >= 0 && binCount > RANK_LIMIT && binCount !== remaining) {
    const r = pass(keys, prefix, mask, top, remaining);
    assert.ok(r, 'a pass over the keys matching the cut finds the k-th key');
    barriers++;
    prefix = u32(prefix | (r.bin << r.shift));
    mask = u32(mask | ((r.bins - 1) << r.shift));
    remaining = r.remaining;
    binCount = r.binCount;
    top = r.shift - 1;
    passes++;
    assert.ok(passes <= 3, 'at most three passes after the guess');
  }
  barriers++; // the final counts barrier
  return { prefix, mask, remaining, binCount, top, barriers, held };
}

/** The pages v5's phases C-D take from a cut (ascending), checking the cut's invariant first. */
function takenPages(keys: number[], k: number, cut: Cut): number[] {
  const inBin = keys.map((key, i) => ({ key, i })).filter(({ key }) => u32(key & cut.mask) === cut.prefix);
  const above = keys.filter((key) => u32(key & cut.mask) > cut.prefix).length;
  assert.equal(inBin.length, cut.binCount, 'binCount keys match the prefix under the mask');
  assert.equal(above + cut.remaining, k, 'the keys above the bin and the remaining ones make k');
  assert.ok(cut.remaining >= 1 && cut.remaining <= cut.binCount, 'invariant: 1 <= remaining <= binCount');
  const whole = cut.binCount === cut.remaining;
  const ranked = !whole && cut.binCount <= RANK_LIMIT;
  if (!whole && !ranked) assert.equal(cut.top, -1, 'a bin of > 256 keys not taken whole is one key value');
  // Whole: all of it; ranked: by (key desc, page asc); one key value: its lowest pages.
  const inOrder = [...inBin].sort((a, b) => (b.key - a.key) || (a.i - b.i));
  const keep = new Set(inOrder.slice(0, cut.remaining).map(({ i }) => i));
  const out: number[] = [];
  keys.forEach((key, i) => { if (u32(key & cut.mask) > cut.prefix || keep.has(i)) out.push(i); });
  return out;
}

/** Runs rows in order on one unit's scratch: each select's guess is the previous select's key range. */
function runSequence(rows: Float32Array[], kOf: (pages: number, i: number) => number, validate = true, guessBits = RADIX_BITS): { barriers: number[]; held: (boolean | null)[] } {
  let guess: Guess | null = null;
  const barriers: number[] = [], held: (boolean | null)[] = [];
  rows.forEach((scores, i) => {
    const keys = Array.from(scores, orderKey);
    const k = kOf(scores.length, i);
    const cut = guessedCut(keys, k, guess, validate, guessBits);
    assert.deepEqual(takenPages(keys, k, cut), expectedPages(scores, k), `row ${i}: ${scores.length} pages, k = ${k}`);
    barriers.push(cut.barriers);
    held.push(cut.held);
    let and = 0xffffffff, or = 0;
    for (const key of keys) { and = u32(and & key); or = u32(or | key); }
    guess = { and, or };
  });
  return { barriers, held };
}

const of = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

function changingRows(): Float32Array[] {
  const rand = randomGenerator(91);
  return [
    of(1000, () => 0.5), // one value: AND = OR, no guessed pass at the next select either
    of(3000, (i) => (i % 2 ? 1.25 : -3)),
    of(5000, () => [0, 1, 2, 3, 4][Math.floor((rand() + 1) * 2.5) % 5]),
    of(8191, () => 100 + rand()),
    of(8191, () => 100 + rand()), // the same range again: the guess holds
    of(4000, (i) => (i >= 1000 && i < 1600 ? 7 : 7 + rand())),
    of(2500, (i) => (i === 3 ? NaN : i % 97 === 0 ? 0 : i % 89 === 0 ? -0 : i === 10 ? Infinity : i === 11 ? -Infinity : rand() * 1e-3)),
    of(7000, (i) => (i % 700 === 5 ? 1e6 + i : 1 + rand() * 1e-4)),
    of(7000, (i) => (i % 700 === 5 ? 1e6 + i : 1 + rand() * 1e-4)),
    of(40, () => Math.round(rand() * 4)),
    of(6000, (i) => 1 + (i % 7) * 2 ** -23),
    of(6000, (i) => 1 + (i % 5) * 2 ** -23), // a narrower range inside the guess: a coarse first pass
    of(3000, () => -7), // one value again (another one): no guessed pass after it
    of(3000, () => -50 - rand()),
  ];
}

test('v9 select model: the CPU ranking over rows whose key ranges change from select to select', () => {
  const rows = changingRows();
  for (const kOf of [(p: number) => 1, (p: number) => Math.max(1, p >> 1), (p: number) => p - 1, (p: number, i: number) => 1 + ((i * 409) % (p - 1))]) {
    const { held } = runSequence(rows, kOf);
    assert.ok(held.includes(true) && held.includes(false) && held.includes(null), `hits, misses and no guess all occur: ${held.join(',')}`);
  }
});

test('v9 select model: on Quest-like rows the guess holds and a select passes two barriers (v5: three)', () => {
  const rand = randomGenerator(92);
  for (const pages of [1023, 4095, 8191]) {
    // Fresh scores of one magnitude each step (a decode step's new query over similar bounds).
    const rows = Array.from({ length: 12 }, () => of(pages, () => 40 + 8 * rand()));
    for (const s of [0.5, 0.9, 0.95]) {
      const { barriers, held } = runSequence(rows, (p) => Math.max(1, Math.floor((1 - s) * p)));
      assert.equal(held[0], null, 'the first select has no guess');
      assert.equal(barriers[0], 3, `the first select is v5's: AND/OR, one pass, final (${pages} pages, s ${s})`);
      for (let i = 1; i < rows.length; i++) {
        assert.equal(held[i], true, `step ${i}: the previous range holds`);
        assert.equal(barriers[i], 2, `step ${i}: the guessed pass and the final barrier`);
      }
    }
  }
});

test('v9 select model: a guess trusted without checking this step\'s AND/OR loses pages (the mutant is caught)', () => {
  const rand = randomGenerator(93);
  const rows = [of(3000, () => 1 + rand() * 0.4), of(3000, () => 4 + rand() * 3), of(3000, () => -2 - rand())];
  assert.throws(() => runSequence(rows, (p) => p >> 1, false));
  runSequence(rows, (p) => p >> 1, true);
});

// Session 10: the guessed pass with 512 or 256 bins instead of 2,048 (an option guessPassBits, measured slower on the
// H100 by 0.5-9 us a step and removed: docs/perf.md). The model keeps the trade it measured: the same pages at any digit
// width, and a pass more wherever the coarser bins leave more than 256 keys in the k-th one.
test('fewer guessed bins (9 and 8 bits): the same CPU ranking over rows whose key ranges change from select to select', () => {
  const rows = changingRows();
  for (const bits of [9, 8]) {
    for (const kOf of [(p: number) => 1, (p: number) => Math.max(1, p >> 1), (p: number) => p - 1, (p: number, i: number) => 1 + ((i * 409) % (p - 1))]) {
      const { held } = runSequence(rows, kOf, true, bits);
      assert.ok(held.includes(true) && held.includes(false), `${bits} bits: hits and misses occur: ${held.join(',')}`);
    }
  }
});

test('fewer guessed bins on Quest-like rows: still two barriers a select at 1K-8K pages, s = 0.5-0.95', () => {
  const rand = randomGenerator(94);
  for (const pages of [1023, 4095, 8191]) {
    const rows = Array.from({ length: 8 }, () => of(pages, () => 40 + 8 * rand()));
    for (const s of [0.5, 0.9, 0.95]) {
      for (const bits of [9, 8]) {
        const { barriers } = runSequence(rows, (p) => Math.max(1, Math.floor((1 - s) * p)), true, bits);
        assert.deepEqual(barriers.slice(1), new Array(rows.length - 1).fill(2), `${pages} pages, s ${s}, ${bits} bits`);
      }
    }
  }
});

test('fewer guessed bins cost a pass where the keys crowd a few coarse bins (the trade the option measures)', () => {
  const rand = randomGenerator(95);
  // The range is set by two outliers (40 and 48); the bulk sits in [43, 45): the guessed pass's 2,048 bins over the
  // range put ~64 keys in a bin there, 256 bins ~500 (over the 256 a bin may hold and still be ranked exactly).
  const row = () => of(8191, (i) => (i === 0 ? 48 : i === 1 ? 40 : 44 + rand()));
  const rows = [row(), row(), row()];
  const kOf = (p: number) => p >> 1;
  assert.deepEqual(runSequence(rows, kOf).barriers.slice(1), [2, 2]);
  assert.deepEqual(runSequence(rows, kOf, true, 8).barriers.slice(1), [3, 3]);
});

test('quest.cu: v9 checks its guess against this step\'s AND/OR on the guessed mask and keeps the common bits below the pass', () => {
  const source = readKernelSource('quest.cu');
  const body = source.slice(source.indexOf('__device__ void quest_grid_select_chunk_guessed('));
  assert.ok(body.length > 0, 'quest_grid_select_chunk_guessed is defined');
  assert.match(body, /guessHeld = \(\(\(andBits \^ gPrefix\) \| \(orBits \^ gPrefix\)\) & gMask\) == 0u;/);
  assert.match(body, /const u32 diffBelow = \(andBits \^ orBits\) & below;/);
  assert.match(body, /const u32 common = below & ~\(top < 0 \? 0u : \(0xffffffffu >> \(31 - top\)\)\);/);
  // The next guess is stored after the first barrier only, when every block has read the old one.
  const firstBarrier = body.indexOf('sync.arrive(');
  const store = body.indexOf('unitScratch[GS_GUESS_SET] = 1u;');
  assert.ok(firstBarrier > 0 && store > firstBarrier, 'the guess is stored after the first barrier');
  assert.ok(body.indexOf('__ldcg(unitScratch + GS_GUESS_SET)') < firstBarrier, 'and read before it');
});

/**
 * The step schedule of the Hopper vertical-slash kernel (its host twin, vertical-slash-wgmma-schedule.ts)
 * against the CPU method's executed layouts (VerticalSlashBuilder): every block's tiles cover exactly
 * its range keys up to its last row and its listed columns, each once; the producer's step order and
 * the consumers' step formula agree; and each warpgroup's consecutive tiles lie at most two steps
 * apart, which the kernel's parity waits and its deadlock freedom with two or more stages rest on.
 * CPU only.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  VS_WGMMA_STEP_KEYS, verticalSlashBlockTiles, verticalSlashCtaSteps, vsWgmmaStepOf,
} from '../../src/backends/cuda/vertical-slash-wgmma-schedule.js';
import { IndexScratch } from '../../src/methods/select.js';
import { PATTERN_BLOCK, VerticalSlashBuilder, type VerticalSlashLayout, forcedRanks } from '../../src/methods/vertical-slash-pattern.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../src/methods/vertical-slash-prefill.js';
import { randomGenerator } from './helpers.js';

/** A layout from random scores with kv columns and ks diagonals kept, as the CPU method builds it. */
function randomLayout(n: number, kv: number, ks: number, seed: number): VerticalSlashLayout {
  const rand = randomGenerator(seed);
  const idx = new IndexScratch();
  const vertical = new Float64Array(n), slash = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    vertical[j] = Math.exp(3 * rand());
    slash[j] = Math.exp(3 * rand()) / (1 + j / 64);
  }
  const rankV = new Int32Array(n), rankS = new Int32Array(n);
  forcedRanks(vertical, n, FORCED_COLUMNS, idx, rankV);
  forcedRanks(slash, n, FORCED_DIAGONALS, idx, rankS);
  const builder = new VerticalSlashBuilder();
  builder.select(n, rankV, Math.min(kv, n), rankS, Math.min(ks, n));
  return builder.build(n);
}

const CASES = [
  { n: 333, kv: 20, ks: 80, seed: 1 },
  { n: 1000, kv: 40, ks: 70, seed: 2 },
  { n: 1200, kv: 600, ks: 8, seed: 3 },
  { n: 200, kv: 4096, ks: 4096, seed: 4 },
  { n: 1650, kv: 5, ks: 300, seed: 5 },
  { n: 64, kv: 10, ks: 3, seed: 6 },
];

describe('vertical-slash wgmma step schedule (host twin)', () => {
  for (const c of CASES) {
    test(`tiles cover each block's keys once: n=${c.n} columns ${c.kv} diagonals ${c.ks}`, () => {
      const layout = randomLayout(c.n, c.kv, c.ks, c.seed);
      for (let m = 0; m < layout.numBlocks; m++) {
        const maxPos = Math.min((m + 1) * PATTERN_BLOCK, c.n) - 1;
        const expectedKeys = new Set<number>();
        for (let r = layout.rangeStart[m]; r < layout.rangeStart[m + 1]; r++) {
          for (let key = layout.ranges[2 * r]; key < Math.min(layout.ranges[2 * r + 1], maxPos + 1); key++) expectedKeys.add(key);
        }
        const numCols = layout.columnStart[m + 1] - layout.columnStart[m];
        const seenKeys = new Map<number, number>(), seenSlots = new Map<number, number>();
        for (const t of verticalSlashBlockTiles(layout, m)) {
          // The kernel zero-fills and masks a range tile's keys past the block's last row, and empty slots.
          if (t.kind === 'range') {
            for (let key = t.key; key < Math.min(t.key + VS_WGMMA_STEP_KEYS, maxPos + 1); key++) seenKeys.set(key, (seenKeys.get(key) ?? 0) + 1);
          } else {
            for (let s = t.slot; s < Math.min(t.slot + VS_WGMMA_STEP_KEYS, numCols); s++) seenSlots.set(s, (seenSlots.get(s) ?? 0) + 1);
          }
        }
        assert.deepEqual([...seenKeys.keys()].sort((a, b) => a - b), [...expectedKeys].sort((a, b) => a - b), `block ${m}: range keys`);
        assert.ok([...seenKeys.values()].every((x) => x === 1), `block ${m}: a range key in two tiles`);
        assert.equal(seenSlots.size, numCols, `block ${m}: column slots`);
        assert.ok([...seenSlots.values()].every((x) => x === 1), `block ${m}: a column slot in two tiles`);
        // A range tile never crosses its range's end (ranges are 64-key multiples): no mask but causality.
        for (let r = layout.rangeStart[m]; r < layout.rangeStart[m + 1]; r++) {
          assert.equal((layout.ranges[2 * r + 1] - layout.ranges[2 * r]) % VS_WGMMA_STEP_KEYS, 0, `block ${m}: range width`);
        }
      }
    });

    test(`producer order = consumer formula, own tiles <= 2 steps apart: n=${c.n} columns ${c.kv} diagonals ${c.ks}`, () => {
      const layout = randomLayout(c.n, c.kv, c.ks, c.seed);
      for (let cr = 0; cr < Math.ceil(layout.numBlocks / 2); cr++) {
        const steps = verticalSlashCtaSteps(layout, cr);
        const own = ([0, 1] as const).map((w) => (2 * cr + w < layout.numBlocks ? verticalSlashBlockTiles(layout, 2 * cr + w) : []));
        assert.equal(steps.length, own[0].length + own[1].length, `CTA ${cr}: step count`);
        const paired = Math.min(own[0].length, own[1].length);
        for (const w of [0, 1] as const) {
          let last = -1;
          own[w].forEach((tile, k) => {
            const step = vsWgmmaStepOf(w, k, paired);
            assert.equal(steps[step].warpgroup, w, `CTA ${cr} warpgroup ${w} tile ${k}: step ${step} owner`);
            assert.deepEqual(steps[step].tile, tile, `CTA ${cr} warpgroup ${w} tile ${k}`);
            if (last >= 0) assert.ok(step - last <= 2, `CTA ${cr} warpgroup ${w}: tiles ${step - last} steps apart`);
            last = step;
          });
        }
      }
    });
  }

  test('a block outside the layout is refused', () => {
    const layout = randomLayout(100, 5, 5, 7);
    assert.throws(() => verticalSlashBlockTiles(layout, 2), /block 2 outside 0..1/);
  });
});

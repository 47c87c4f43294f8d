/**
 * The makespan model behind session 10's persistent-CTA predictions (bench/block-sparse-persistent-model.ts):
 * its step counts are the steps kernel's (host reference) where the lists are known, and its two
 * schedules do what they say on hand-made items.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { itemSteps, launchItemSteps, makespan } from '../../bench/block-sparse-persistent-model.js';
import { packChunkLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { wgmmaCtaSteps, wgmmaStepGeometry } from '../../src/backends/cuda/block-sparse-wgmma-layout.js';
import { everyCausalChunk } from './block-sparse-inputs.js';

describe('block-sparse persistent model', () => {
  test('round-robin and greedy makespans on hand-made items', () => {
    // Greedy: SM 0 takes 5, SM 1 takes the three 1s. Round-robin: SM 0 takes 5 and the third item.
    assert.equal(makespan([5, 1, 1, 1], 2, 'greedy'), 5);
    assert.equal(makespan([5, 1, 1, 1], 2, 'round-robin'), 6);
    assert.equal(makespan([], 3, 'greedy'), 0);
    assert.throws(() => makespan([1], 0, 'greedy'), /sms must be a positive integer/);
  });

  for (const chunk of [16, 64]) {
    test(`with every causal chunk selected (c = ${chunk}) an item's steps are the steps kernel's (host reference)`, () => {
      const n = 1000, H = 1;
      const lists = packChunkLists(everyCausalChunk(n, H, chunk));
      const geo = wgmmaStepGeometry(n, H, lists.stride, chunk, 64, 3);
      const numChunks = Math.ceil(n / chunk);
      const scratch = Int32Array.from({ length: numChunks }, (_, i) => i);
      const masks = new Uint16Array(Math.ceil(n / 16));
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const expected = wgmmaCtaSteps(lists, n, geo, 0, cr).length / geo.subTiles;
        // t = every chunk: the random and the shared lists are both every causal chunk
        for (const kind of ['random', 'shared'] as const) {
          assert.equal(itemSteps(kind, 0, cr, n, chunk, numChunks, 7, scratch, scratch, masks), expected, `${kind} CTA row ${cr}`);
        }
      }
    });
  }

  test('shared lists need fewer steps than random ones at the same t; both shrink with s', () => {
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    const random9 = mean(launchItemSteps('random', 4096, 16, 0.9)), shared9 = mean(launchItemSteps('shared', 4096, 16, 0.9));
    const random5 = mean(launchItemSteps('random', 4096, 16, 0.5));
    assert.ok(shared9 < random9, `shared ${shared9} >= random ${random9}`);
    assert.ok(random9 < random5, `s = 0.9 ${random9} >= s = 0.5 ${random5}`);
  });
});

/**
 * The window kernel's tile rule as bench/sink-local-model.ts counts it (the kernel's firstTile, sink
 * tiles, fold and tile walk, flash-prefill-wgmma.cu SINK_LOCAL / SINK_FOLD): every key a row attends
 * lies in a tile its block visits (sinks in a folded tile's head count as visited), folding removes
 * exactly the sink tiles of the folded blocks, more sinks than a tile holds take several sink tiles,
 * and at sparsity 0 a block visits dense causal attention's tiles. Host only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type WindowKernelVariant, blockTiles, windowKernelWork } from '../../bench/sink-local-model.js';
import { type SinkLocalRule, sinkLocalKeys } from '../../src/methods/sink-local.js';

const RULES: SinkLocalRule[] = [
  { sinkTokens: 4, localWindow: null, sparsity: 0.95 },
  { sinkTokens: 4, localWindow: null, sparsity: 0.5 },
  { sinkTokens: 60, localWindow: null, sparsity: 0.9 },
  { sinkTokens: 200, localWindow: null, sparsity: 0.9 },
  { sinkTokens: 0, localWindow: null, sparsity: 0.8 },
  { sinkTokens: 4, localWindow: 300, sparsity: null },
];
const VARIANTS: WindowKernelVariant[] = [
  { blockN: 128, foldSinks: false }, { blockN: 128, foldSinks: true }, { blockN: 64, foldSinks: true },
];

test('every attended key lies in a visited tile (or a folded sink slot)', () => {
  const keys = new Int32Array(2);
  for (const rule of RULES) {
    for (const v of VARIANTS) {
      for (const [queryStart, T] of [[0, 3000], [1234, 777]]) {
        const kvLen = queryStart + T;
        for (let m0 = 0; m0 < T; m0 += 128) {
          const first = queryStart + m0, last = queryStart + Math.min(T, m0 + 128) - 1;
          const b = blockTiles(rule, first, last, kvLen, v);
          const visited = new Set(b.tiles);
          const firstWindowTile = b.tiles[b.sinkTiles];
          for (let p = first; p <= last; p++) {
            sinkLocalKeys(p, rule, keys);
            // Tiles are contiguous runs of keys: checking each run's tile span is checking every key.
            for (let key = 0; key < keys[0]; key++) {
              if (b.foldCols <= key && !visited.has(Math.floor(key / v.blockN))) assert.fail(`${JSON.stringify(rule)} ${JSON.stringify(v)}: row ${p} misses sink ${key}`);
            }
            for (let tile = Math.floor(keys[1] / v.blockN); tile <= Math.floor(p / v.blockN); tile++) {
              if (!visited.has(tile)) assert.fail(`${JSON.stringify(rule)} ${JSON.stringify(v)}: row ${p} misses tile ${tile} of its window ${keys[1]}..${p}`);
            }
          }
          if (b.foldCols > 0) {
            // The folded sinks replace keys that no row of the block attends.
            const replacedFirst = firstWindowTile * v.blockN, replacedEnd = replacedFirst + b.foldCols;
            sinkLocalKeys(first, rule, keys);
            assert.ok(replacedFirst >= rule.sinkTokens && replacedEnd <= keys[1], `fold overwrote attended keys ${replacedFirst}..${replacedEnd - 1}`);
          }
        }
      }
    }
  }
});

test('folding removes exactly the folded blocks\' sink tiles; 200 sinks take two 128-key tiles', () => {
  for (const rule of RULES) {
    const plain = windowKernelWork(rule, 0, 4096, { blockN: 128, foldSinks: false });
    const folded = windowKernelWork(rule, 0, 4096, { blockN: 128, foldSinks: true });
    assert.equal(folded.tiles, plain.tiles - (plain.sinkTiles - folded.sinkTiles));
    assert.equal(folded.attendedPairs, plain.attendedPairs);
    // The first blocks' windows start in tile 0, which holds the sinks anyway.
    if (rule.sinkTokens === 4) assert.ok(folded.foldedBlocks > 0.8 * folded.blocks, `4 sinks folded in ${folded.foldedBlocks} of ${folded.blocks} blocks`);
    if (rule.sinkTokens > 128) assert.equal(folded.foldedBlocks, 0);
    assert.ok(plain.computedPairs >= plain.attendedPairs && folded.computedPairs >= folded.attendedPairs);
  }
  const many = blockTiles({ sinkTokens: 200, localWindow: null, sparsity: 0.9 }, 2944, 3071, 3072, { blockN: 128, foldSinks: true });
  assert.deepEqual(many.tiles.slice(0, 2), [0, 1]);
  assert.equal(many.sinkTiles, 2);
});

test('at sparsity 0 a block visits dense causal attention\'s tiles', () => {
  const w = windowKernelWork({ sinkTokens: 4, localWindow: null, sparsity: 0 }, 0, 1024, { blockN: 128, foldSinks: true });
  assert.equal(w.tiles, (8 * 9) / 2);
  assert.equal(w.sinkTiles + w.foldedBlocks, 0);
  assert.equal(w.attendedPairs, (1024 * 1025) / 2);
});

/**
 * Host side of block-sparse lists with 64-row chunks (session 8, no GPU needed): when the automatic wgmma
 * tilings take lean masks (autoTakesLeanMask), the host step lists' claim behind it (every off-diagonal
 * warp-step of a c = 64 list is clean apart from a class's padded last step), and the benches' options
 * (bench/block-sparse.ts --chunk, `auto-lm`; bench/sparse.ts --block-sparse-chunks).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ChunkSelection, packChunkLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { type WgmmaConsumers, wgmmaCtaSteps, wgmmaEntryMask, wgmmaEntryTile, wgmmaStepGeometry } from '../../src/backends/cuda/block-sparse-wgmma-layout.js';
import {
  AUTO_BLOCK_SPARSE_WGMMA_TILING, AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS, AUTO_PERSISTENT_ON_SPARSE_LISTS, AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING,
  AUTO_STEPS_FLAT_ON_SMALL_CHUNKS, autoTakesLeanMask, autoTakesPersistent, autoTakesStepsFlat, autoTilingInOrder, autoVariantTiling, leanMaskVariant,
} from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import { resolveBlockSparseWgmmaTiling } from '../../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import { blockSparseVariantOptions, cellSummaryLine, parseBlockSparseBenchArgs } from '../../bench/block-sparse.js';
import { parseSparseBenchArgs, prefillConfigurations } from '../../bench/sparse.js';
import { mulberry32 } from '../../bench/seeded-random.js';
import { chunkModelRow } from '../../bench/block-sparse-chunk-model.js';
import { layerRecall } from '../../bench/block-sparse-chunk-recall.js';

/** A random causal selection: every chunk keeps 0, m − 1, m and random others up to t (one head). */
function randomSelection(n: number, c: number, t: number, heads: number, seed: number): ChunkSelection {
  const rand = mulberry32(seed);
  const B = Math.ceil(n / c);
  return {
    chunkSize: c, numTokens: n,
    heads: Array.from({ length: heads }, () => {
      const lists = new Int32Array(B * t), counts = new Int32Array(B);
      for (let m = 0; m < B; m++) {
        const keep = new Set<number>([0, Math.max(0, m - 1), m]);
        const candidates = Array.from({ length: Math.max(0, m - 1) }, (_, j) => j + 1).filter((j) => j < m - 1);
        while (keep.size < Math.min(t, m + 1) && candidates.length > 0) keep.add(candidates.splice(Math.floor(rand() * candidates.length), 1)[0]);
        const sorted = [...keep].sort((a, b) => a - b);
        lists.set(sorted, m * t);
        counts[m] = sorted.length;
      }
      return { selected: lists, counts, stride: t };
    }),
  };
}

describe('block-sparse lists of 64-row chunks (host)', () => {
  test('autoTakesLeanMask: only when enabled for the tiling and the chunk size is a multiple of 64', () => {
    for (const tiling of ['rows128', 'rows192'] as const) {
      assert.equal(autoTakesLeanMask({ chunkSize: 64 }, tiling), AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS[tiling], `${tiling}: the default`);
      assert.equal(autoTakesLeanMask({ chunkSize: 64 }, tiling, true), true);
      assert.equal(autoTakesLeanMask({ chunkSize: 128 }, tiling, true), true);
      assert.equal(autoTakesLeanMask({ chunkSize: 64 }, tiling, false), false);
      for (const c of [16, 32, 48, 80, 96]) assert.equal(autoTakesLeanMask({ chunkSize: c }, tiling, true), false, `c = ${c}`);
    }
    // 128-row CTAs were not faster on random c = 64 lists (session 8 round 1): off.
    assert.equal(AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS.rows128, false);
  });

  test('leanMaskVariant adds leanMask to the tiling\'s own flags, and gives none where maskFirst excludes it', () => {
    assert.deepEqual(leanMaskVariant(AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING),
      { ...AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, ablation: { ...AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING.ablation, leanMask: true } });
    const withFlags = { blockN: 64 as const, stages: 3 as const, consumers: 3 as const, ablation: { maskSelect: true, entBallot: true } };
    assert.deepEqual(leanMaskVariant(withFlags)?.ablation, { maskSelect: true, entBallot: true, leanMask: true });
    assert.equal(leanMaskVariant({ ...withFlags, ablation: { maskFirst: true, entBallot: true } }), null);
  });

  test('autoTakesPersistent: sparse lists in the KV-head-major order, when enabled; autoTakesStepsFlat: chunks below 64 rows', () => {
    const sparse = { stride: 50, numChunks: 1024, numTokens: 16384 }, dense = { stride: 300, numChunks: 1024, numTokens: 16384 };
    assert.equal(autoTakesPersistent(sparse, 'rows192', 'kv', true), true);
    assert.equal(autoTakesPersistent(dense, 'rows192', 'kv', true), false, 'dense-ish lists: items are long, the overlap does not pay');
    assert.equal(autoTakesPersistent(sparse, 'rows192', 'heads', true), false, 'persistent is written for the KV-head-major order');
    assert.equal(autoTakesPersistent(sparse, 'rows192', 'kv', false), false);
    assert.equal(autoTakesPersistent(sparse, 'rows192', 'kv'), AUTO_PERSISTENT_ON_SPARSE_LISTS.rows192, 'left out: the per-tiling default');
    assert.equal(autoTakesStepsFlat({ chunkSize: 16 }, 'rows192', true), true);
    assert.equal(autoTakesStepsFlat({ chunkSize: 64 }, 'rows192', true), false, 'c = 64 keeps the plain steps kernel (slower flat at s = 0)');
    assert.equal(autoTakesStepsFlat({ chunkSize: 16 }, 'rows128'), AUTO_STEPS_FLAT_ON_SMALL_CHUNKS.rows128);
  });

  test('autoVariantTiling: lean masks as leanMaskVariant takes them, persistent with its work counter, the flat steps kernel', () => {
    const t = autoTilingInOrder(AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, 'kv');
    assert.deepEqual(autoVariantTiling(t, { leanMask: false, persistent: false, stepsFlat: false }), t, 'no variant: the tiling as it is');
    assert.deepEqual(autoVariantTiling(t, { leanMask: true, persistent: true, stepsFlat: true }).ablation,
      { ...t.ablation, leanMask: true, persistent: true, workCounter: true, stepsFlat: true });
    const rows128 = autoTilingInOrder(AUTO_BLOCK_SPARSE_WGMMA_TILING, 'kv');
    assert.deepEqual(autoVariantTiling(rows128, { leanMask: true, persistent: false, stepsFlat: false }), rows128, 'maskFirst takes no lean masks');
    for (const leanMask of [false, true]) {
      for (const persistent of [false, true]) {
        for (const stepsFlat of [false, true]) assert.doesNotThrow(() => resolveBlockSparseWgmmaTiling(autoVariantTiling(t, { leanMask, persistent, stepsFlat })));
      }
    }
  });

  test('autoTilingInOrder: the order the launcher runs, and persistent only in the KV-head-major order (it resolves in both)', () => {
    assert.deepEqual(autoTilingInOrder(AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, 'heads'), { ...AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, ctaOrder: 'heads' });
    const persistent = { ...AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, ablation: { ...AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING.ablation, persistent: true } };
    assert.equal(autoTilingInOrder(persistent, 'kv').ablation?.persistent, true);
    const heads = autoTilingInOrder(persistent, 'heads');
    assert.deepEqual(heads.ablation, AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING.ablation);
    assert.doesNotThrow(() => resolveBlockSparseWgmmaTiling(heads));
    assert.throws(() => resolveBlockSparseWgmmaTiling({ ...persistent, ctaOrder: 'heads' }), /persistent is written for the KV-head-major order/);
    const lean = leanMaskVariant(autoTilingInOrder(persistent, 'kv'));
    assert.ok(lean && resolveBlockSparseWgmmaTiling(lean).ablation?.persistent, 'the lean variant keeps persistent');
    // workCounter needs persistent: the heads order drops both, the KV-head-major order and the lean variant keep both.
    const counted = { ...persistent, ablation: { ...persistent.ablation, workCounter: true } };
    assert.deepEqual(autoTilingInOrder(counted, 'heads').ablation, AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING.ablation);
    const leanCounted = leanMaskVariant(autoTilingInOrder(counted, 'kv'));
    assert.ok(leanCounted && resolveBlockSparseWgmmaTiling(leanCounted).ablation?.workCounter, 'the lean variant keeps workCounter');
  });

  // The claim autoTakesLeanMask rests on, checked on the kernel's own step lists (host reference): with
  // c = 64, in every computed step each warp of a computing warpgroup has either all of its sub-tiles
  // selected or none of them, except a step holding a padding entry (a class's last) or a key tile at or
  // right of the warpgroup's first row (the diagonal). With c = 16 most steps are mixed.
  for (const consumers of [2, 3] as WgmmaConsumers[]) {
    for (const blockN of (consumers === 2 ? [64, 128] : [64]) as (64 | 128)[]) {
      test(`c = 64, ${consumers} consumers, ${blockN}-key steps: every off-diagonal unpadded warp-step is whole`, () => {
        const n = 3000, sel = randomSelection(n, 64, 12, 2, 7 + consumers + blockN);
        const lists = packChunkLists(sel);
        const geo = wgmmaStepGeometry(n, 2, lists.stride, 64, blockN, consumers);
        const sub = blockN / 16;
        let whole = 0, mixed = 0;
        for (let h = 0; h < 2; h++) {
          for (let cr = 0; cr < geo.numCtaRows; cr++) {
            const entries = wgmmaCtaSteps(lists, n, geo, h, cr);
            for (let s = 0; s * sub < entries.length; s++) {
              const step = entries.slice(s * sub, (s + 1) * sub);
              const padded = step.some((e) => wgmmaEntryMask(e, consumers) === 0);
              for (let wg = 0; wg < consumers; wg++) {
                const firstRow = cr * 64 * consumers + 64 * wg;
                const diagonal = step.some((e) => wgmmaEntryTile(e, consumers) * 16 + 15 >= firstRow);
                for (let w = 0; w < 4; w++) {
                  const slot = 4 * wg + w;
                  const bits = step.filter((e) => (wgmmaEntryMask(e, consumers) >>> slot) & 1).length;
                  if (bits === 0 || padded || diagonal) continue;
                  if (bits === sub) whole++;
                  else mixed++;
                }
              }
            }
          }
        }
        assert.equal(mixed, 0);
        assert.ok(whole > 100, `whole warp-steps counted: ${whole}`);
      });
    }
  }

  test('c = 16 lists are mostly mixed warp-steps (why lean masks stay off there)', () => {
    const n = 3000, sel = randomSelection(n, 16, 40, 1, 3);
    const lists = packChunkLists(sel);
    const geo = wgmmaStepGeometry(n, 1, lists.stride, 16, 128, 2);
    let whole = 0, partial = 0;
    for (let cr = 0; cr < geo.numCtaRows; cr++) {
      const entries = wgmmaCtaSteps(lists, n, geo, 0, cr);
      for (let s = 0; s * 8 < entries.length; s++) {
        const step = entries.slice(s * 8, s * 8 + 8);
        for (let slot = 0; slot < 8; slot++) {
          const bits = step.filter((e) => (wgmmaEntryMask(e, 2) >>> slot) & 1).length;
          if (bits === 8) whole++;
          else if (bits > 0) partial++;
        }
      }
    }
    assert.ok(partial > 3 * whole, `partial ${partial}, whole ${whole}`);
  });

  test('the chunk model (bench/block-sparse-chunk-model.ts): c = 64 computes ~ the attended pairs, c = 16 the union of four lists', () => {
    const wide = chunkModelRow(4096, 64, 'random', 0.5), narrow = chunkModelRow(4096, 16, 'random', 0.5);
    assert.ok(Math.abs(wide.achieved - 0.5) < 0.03 && Math.abs(narrow.achieved - 0.5) < 0.03);
    for (const x of wide.tilings) {
      assert.ok(x.computedPerAttended >= 1 && x.computedPerAttended < 1.15, `${x.label} c = 64: ${x.computedPerAttended}`);
      assert.ok(x.cleanShare > 0.75, `${x.label} c = 64 clean share ${x.cleanShare}`);
      assert.ok(x.predictedLean < x.predicted, `${x.label}: lean masks predicted to help on clean steps`);
    }
    for (const x of narrow.tilings) {
      assert.ok(x.computedPerAttended > 1.5, `${x.label} c = 16: ${x.computedPerAttended}`);
      assert.ok(x.cleanShare < 0.3, `${x.label} c = 16 clean share ${x.cleanShare}`);
    }
  });

  test('attention recall (bench/block-sparse-chunk-recall.ts): 1 with every causal chunk kept, the kept softmax share otherwise', () => {
    const n = 40, H = 2, D = 8, rand = mulberry32(5);
    const x = { q: Float32Array.from({ length: n * H * D }, () => 2 * rand() - 1), keys: [Float32Array.from({ length: n * D }, () => 2 * rand() - 1)] };
    const sel = (c: number, keep: (m: number) => number[]): ChunkSelection => {
      const B = Math.ceil(n / c);
      const head = () => {
        const selected = new Int32Array(B * B), counts = new Int32Array(B);
        for (let m = 0; m < B; m++) {
          const ks = keep(m);
          selected.set(ks, m * B);
          counts[m] = ks.length;
        }
        return { selected, counts, stride: B };
      };
      return { chunkSize: c, numTokens: n, heads: [head(), head()] };
    };
    const all = layerRecall(x, n, H, D, [sel(16, (m) => Array.from({ length: m + 1 }, (_, j) => j)), sel(64, () => [0])]);
    assert.equal(all.rows, H * n);
    for (const v of all.sums) assert.ok(Math.abs(v / all.rows - 1) < 1e-12, `recall ${v / all.rows}`);
    // Only the diagonal 16-chunk: query 20 keeps keys 16..20 of 0..20.
    const diag = layerRecall(x, n, H, D, [sel(16, (m) => [m])]);
    const keptShareOfRow20 = (h: number): number => {
      const w = Array.from({ length: 21 }, (_, j) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += x.q[(20 * H + h) * D + d] * x.keys[0][j * D + d];
        return Math.exp(dot / Math.sqrt(D));
      });
      return w.slice(16).reduce((u, v) => u + v, 0) / w.reduce((u, v) => u + v, 0);
    };
    assert.ok(diag.sums[0] / diag.rows < 1 && diag.sums[0] / diag.rows > 0);
    // The first 21 rows' sum less the first 20 rows' is row 20 of both heads (causal: later keys do not enter).
    const first = (rows: number) => layerRecall({ q: x.q.slice(0, rows * H * D), keys: [x.keys[0].slice(0, rows * D)] }, rows, H, D, [sel(16, (m) => [m])]);
    assert.ok(Math.abs(first(21).sums[0] - first(20).sums[0] - keptShareOfRow20(0) - keptShareOfRow20(1)) < 1e-9);
  });

  test('bench/block-sparse: --chunk 16|64 (default 16), the auto-lm label, and the cell line names c only when not 16', () => {
    // The whole command line is pinned in test/bench/bench-options.test.ts (bench/bench-args.ts's parser).
    assert.equal(parseBlockSparseBenchArgs([]).chunk, 16);
    assert.equal(parseBlockSparseBenchArgs(['--chunk', '64']).chunk, 64);
    assert.throws(() => parseBlockSparseBenchArgs(['--chunk', '32']), /--chunk: bad chunk size \(16 or 64\) "32"/);
    assert.deepEqual(parseBlockSparseBenchArgs(['--variants', 'auto,auto-lm']).variants, ['auto', 'auto-lm']);
    assert.deepEqual(blockSparseVariantOptions('auto-lm'), { autoLeanMask: true });
    const row = (variant: string, kernelMs: number, chunkSize: number) => ({
      n: 16384, chunkSize, data: 'random', requested: 0.5, achieved: 0.5, topChunks: 75, variant, kernelMs, estimationMs: 0, denseMs: 1, idealMs: 1, ratio: 1, ratioWithEstimation: 1,
    });
    assert.equal(cellSummaryLine([row('auto', 2, 64), row('auto-lm', 1.9, 64)]), '# cell n=16384 c=64 random s=0.5: auto 2.000, auto-lm 1.900 (-5.0%)');
    assert.equal(cellSummaryLine([row('auto', 2, 16)]), '# cell n=16384 random s=0.5: auto 2.000');
  });

  test('bench/sparse: --block-sparse-chunks gives block_sparse one configuration per c, labelled by c unless 16', () => {
    assert.deepEqual(parseSparseBenchArgs([]).blockSparseChunks, [16]);
    const o = parseSparseBenchArgs(['--block-sparse-chunks', '16,64']);
    assert.deepEqual(o.blockSparseChunks, [16, 64]);
    assert.deepEqual(prefillConfigurations('block_sparse', o), [{ label: 'block_sparse' }, { label: 'block_sparse c=64', params: { chunkSize: 64 } }]);
    assert.deepEqual(prefillConfigurations('vertical_and_slash', o), [{ label: 'vertical_and_slash' }]);
    assert.throws(() => parseSparseBenchArgs(['--block-sparse-chunks', '24']), /bad chunk size \(a multiple of 16\) "24"/);
  });
});

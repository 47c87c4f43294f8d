/**
 * The count search's round timing (CountSearchOptions.timeRounds, session 8, a diagnostic): on the
 * CPU, its option refusals and that the timed entries exist only in VS_SEARCH_TIMING builds (the
 * default module's source is what it was); on the device (skipped without one), the timed kernels
 * answer as the untimed ones (counts, floor, pairs, probes, rounds), guided and not, lean and compact, and their records
 * are consistent: one per round, every round's phases inside its whole, the layout inside step (1),
 * nodes and walks within the round's slots.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { type CountSearchOptions, VerticalSlashCountSearch } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import { DEFAULT_COUNT_SEARCH } from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { randomGenerator } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

/** Session 7's default search (whatever the default becomes): what the timed entries time. */
const SESSION7: CountSearchOptions = { ...DEFAULT_COUNT_SEARCH, leanLayout: false, orderedSelect: false, selectionHandOff: false, deferredIndexWait: false };

describe('count search timeRounds option (CPU)', () => {
  const rt = {} as CudaRuntime;
  test('needs the batched column-bitmap walk, and neither guideThresholds nor bitmapFromRanks', () => {
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { timeRounds: true }), /timeRounds times the default batched kernels/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkLanes: 1, timeRounds: true }), /timeRounds/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, guideThresholds: true, timeRounds: true }), /timeRounds/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, bitmapFromRanks: true, timeRounds: true }), /timeRounds/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...SESSION7, timeRounds: true }).timeRounds, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, SESSION7).timeRounds, false);
  });

  test('leanLayout needs the guided column-bitmap search, and not bitmapFromRanks', () => {
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, leanLayout: true }), /leanLayout needs the guided column-bitmap search/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, guidedProbes: false, leanLayout: true }), /leanLayout/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, bitmapFromRanks: true, leanLayout: true }), /leanLayout/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...SESSION7, leanLayout: true, timeRounds: true }).leanLayout, true);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, orderedSelect: true }), /orderedSelect needs leanLayout/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, leanLayout: true, orderedSelect: true, timeRounds: true }), /orderedSelect/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...SESSION7, leanLayout: true, orderedSelect: true }).orderedSelect, true);
  });

  test('the timed entries are compiled only with VS_SEARCH_TIMING', () => {
    const src = readKernelSource('vertical-slash-search.cu');
    const timed = ['vs_count_search_batched_lanes_bits_guided_timed', 'vs_count_search_batched_lanes_bits_timed',
      'vs_count_search_batched_lanes_bits_guided_lean_timed', 'vs_count_search_batched_lanes_bits_guided_compact_timed'];
    for (const name of timed) {
      const at = src.search(new RegExp(`__global__ void __launch_bounds__\\([^)]*\\) ${name}\\(`));
      assert.ok(at > 0, `no entry ${name}`);
      // The conditional blocks open at the entry (#if pushed, #endif popped) must include the timing block.
      const open: string[] = [];
      for (const m of src.slice(0, at).matchAll(/^#(if[^\n]*|endif[^\n]*)$/gm)) {
        if (m[1].startsWith('if')) open.push(m[1]);
        else open.pop();
      }
      assert.ok(open.some((c) => c.startsWith('if defined(VS_SEARCH_TIMING)')), `${name} is not inside a VS_SEARCH_TIMING block (${open.join(' / ')})`);
    }
  });
});

const skip = cudaSkip('CUDA vertical-slash count search timing tests');

/** Score rows [H, n] with heavy sinks and columns and diagonal mass decaying with the offset. */
function scoreRows(n: number, H: number, seed: number): { vertical: Float32Array; slash: Float32Array } {
  const rand = randomGenerator(seed);
  const u = () => (rand() + 1) / 2;
  const vertical = new Float32Array(H * n), slash = new Float32Array(H * n);
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < n; j++) {
      const heavy = j < 4 || u() < 0.02 ? 50 * (1 + u()) : 1;
      vertical[h * n + j] = heavy * Math.exp(u());
      slash[h * n + j] = (heavy + 100 * Math.exp(-j / (16 + 64 * h))) * Math.exp(u());
    }
  }
  return { vertical, slash };
}

describe('CUDA vertical-slash count search timing', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const variants: [string, CountSearchOptions][] = [
    ['guided', SESSION7],
    ['unguided', { ...SESSION7, guidedProbes: false }],
    ['lean', { ...SESSION7, leanLayout: true }],
    ['compact', { ...SESSION7, leanLayout: true, compactLayout: true }],
  ];
  for (const c of [{ n: 1000, H: 3 }, { n: 16_384, H: 4 }, { n: 4096, H: 32 }]) {
    test(`n=${c.n} H=${c.H}: timed searches answer as untimed ones, one consistent record per round`, () => {
      const { n, H } = c;
      const { vertical, slash } = scoreRows(n, H, 7 + n);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      try {
        for (const [label, options] of variants) {
          const plain = new VerticalSlashCountSearch(rt, H, options), timed = new VerticalSlashCountSearch(rt, H, { ...options, timeRounds: true });
          try {
            for (const s of [0.5, 0.9, 0.99]) {
              const want = plain.counts(scores, s), got = timed.counts(scores, s);
              assert.deepEqual(got, want, `${label} s=${s}`);
              const t = timed.lastRoundTiming();
              assert.ok(t !== null, `${label} s=${s}: no timing`);
              assert.equal(t.rounds, got.rounds, `${label} s=${s}: rounds`);
              assert.equal(t.perRound.length, Math.min(got.rounds, 32));
              assert.ok(t.launchNs > 0 && t.launchCycles > 0, `${label} s=${s}: launch clocks ${t.launchNs} ns, ${t.launchCycles} cycles`);
              const slots = 2 ** (typeof options.probeLevels === 'number' ? options.probeLevels : 4) - 1;
              for (const [i, r] of t.perRound.entries()) {
                const where = `${label} s=${s} round ${i + 1}`;
                assert.ok(r.nodes >= 1 && r.nodes <= slots && r.walks <= r.nodes, `${where}: ${r.nodes} nodes, ${r.walks} walks`);
                assert.ok(r.layout <= r.step1, `${where}: layout ${r.layout} > step (1) ${r.step1}`);
                assert.ok(r.layoutScan + r.layoutAdvance + r.layoutPredict <= r.layout, `${where}: the layout's parts exceed it`);
                const blockZero = r.step1 + r.counts + r.barrier1 + r.barrier2 + r.tail;
                assert.ok(blockZero <= r.round, `${where}: block 0's phases ${blockZero} exceed the round ${r.round}`);
                if (r.walks === 0) assert.equal(r.walkMax, 0, `${where}: a walk time with nothing walked`);
                if (label !== 'guided') assert.equal(r.layoutPredict, 0, `${where}: prediction laps outside the plain guided layout`);
              }
            }
          } finally {
            plain.release();
            timed.release();
          }
        }
      } finally {
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }
});

/**
 * PlanDeviceAttention's dispatch, without a GPU: the model's calls (as CudaTransformerModel.forward
 * makes them) go to recording test doubles of the plan's parts (sliding-layer dense attention, query
 * windows) and of the method objects, and the test checks where each call went, what each method was
 * told (isLastChunk, window length, prompt length, the cache length the hook saw) and the counts the
 * plan accumulated. The ring arithmetic of the device query window is checked against a plain model.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HeadCounts } from '../../src/engine/attention.js';
import { parseModelConfig } from '../../src/engine/config.js';
import type { ModelConfig } from '../../src/engine/model-config.js';
import type { DeviceAttention, DeviceAttentionCall } from '../../src/backends/cuda/device-attention.js';
import type { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import type {
  DeviceCompressCall, DeviceDecodeCall, DeviceDecodeMethod, DevicePrefillCall, DevicePrefillMethod,
} from '../../src/backends/cuda/methods/contract.js';
import { DenseDeviceDecode, denseHeadCounts } from '../../src/backends/cuda/methods/dense.js';
import { PlanDeviceAttention } from '../../src/backends/cuda/methods/plan.js';
import { type QueryWindowStore, orderedReads, ringWrites } from '../../src/backends/cuda/methods/query-window.js';
import { TINY_GEMMA3_SLIDING_WINDOW, tinyConfigJson } from '../helpers/tiny-checkpoint.js';

/** gemma3 tiny, 4 layers: 0 and 2 sliding (window 4), 1 and 3 full; H = 4. */
function gemmaConfig(): ModelConfig {
  return parseModelConfig(tinyConfigJson('gemma3', { numLayers: 4 }));
}

/** Per-head counts a fake method returns. */
function fixedCounts(H: number, attended: number, dense: number): HeadCounts {
  return { attended: new Float64Array(H).fill(attended), dense: new Float64Array(H).fill(dense) };
}

class RecordingPrefill implements DevicePrefillMethod {
  readonly id = 'fake_prefill';
  calls: { layer: number; queryStart: number; numQueries: number; isLastChunk: boolean }[] = [];
  resets = 0;
  constructor(readonly requiresWholePrompt = false) {}
  prefill(call: DevicePrefillCall): HeadCounts {
    this.calls.push({ layer: call.layer, queryStart: call.queryStart, numQueries: call.numQueries, isLastChunk: call.isLastChunk });
    // Half of each query's visible keys (rounded up), so prefill sparsity is visible in the totals.
    let att = 0, dense = 0;
    for (let t = 0; t < call.numQueries; t++) {
      const visible = call.queryStart + t + 1;
      att += Math.ceil(visible / 2);
      dense += visible;
    }
    return fixedCounts(call.shape.numHeads, att, dense);
  }
  reset(): void {
    this.resets++;
  }
}

class RecordingDecode implements DeviceDecodeMethod {
  readonly id = 'fake_decode';
  hooks: { layer: number; windowLength: number; promptLength: number; cacheRows: number; windowQueries: bigint }[] = [];
  steps: { layer: number; position: number; cacheRows: number }[] = [];
  constructor(readonly observationWindow: number, private readonly keep = 3) {}
  afterPrefill(call: DeviceCompressCall): void {
    this.hooks.push({ layer: call.layer, windowLength: call.windowLength, promptLength: call.promptLength, cacheRows: call.cache.length, windowQueries: call.windowQueries });
  }
  decode(call: DeviceDecodeCall): HeadCounts {
    this.steps.push({ layer: call.layer, position: call.position, cacheRows: call.cache.length });
    return fixedCounts(call.shape.numHeads, this.keep, call.position + 1);
  }
}

class RecordingSliding implements DeviceAttention {
  readonly id = 'dense-double';
  calls: { layer: number; queryStart: number; numQueries: number }[] = [];
  attend(call: DeviceAttentionCall): void {
    this.calls.push({ layer: call.layer, queryStart: call.queryStart, numQueries: call.numQueries });
  }
}

/** Records pushes like DeviceQueryWindow; contiguous() returns a tag naming the window's end position. */
class RecordingWindow implements QueryWindowStore {
  length = 0;
  end = 0;
  constructor(readonly capacity: number) {}
  push(_q: bigint, _stride: number, numQueries: number, queryStart: number): void {
    assert.equal(queryStart, this.end, 'window chunks arrive contiguous');
    this.end = queryStart + numQueries;
    this.length = Math.min(this.capacity, this.length + numQueries);
  }
  contiguous(): bigint {
    return BigInt(this.end);
  }
  clear(): void {
    this.length = this.end = 0;
  }
  release(): void {
    this.clear();
  }
}

/** Drives the plan as CudaTransformerModel.forward does: per layer, append T rows, then attend. */
class FakeModel {
  readonly caches: DeviceLayerKvCache[];
  position = 0;
  constructor(readonly config: ModelConfig, readonly attention: DeviceAttention) {
    // The plan reads and restores only `length`; the doubles record it.
    this.caches = config.layerTypes.map(() => ({ length: 0 }) as unknown as DeviceLayerKvCache);
  }
  forward(T: number): void {
    const c = this.config;
    for (let l = 0; l < c.numLayers; l++) {
      this.caches[l].length += T;
      this.attention.attend({
        layer: l, sliding: c.layerTypes[l] === 'sliding', q: 4096n, qRowStride: (c.numHeads + 2 * c.numKvHeads) * c.headDim,
        numQueries: T, queryStart: this.position, cache: this.caches[l], out: 8192n,
      });
    }
    this.position += T;
  }
  prefill(n: number, chunk: number): void {
    for (let s = 0; s < n; s += chunk) this.forward(Math.min(chunk, n - s));
  }
}

function setup(options: { window?: number; wholePrompt?: boolean } = {}) {
  const config = gemmaConfig();
  const prefill = new RecordingPrefill(options.wholePrompt ?? false);
  const decode = new RecordingDecode(options.window ?? 0);
  const sliding = new RecordingSliding();
  const windows: RecordingWindow[] = [];
  const plan = new PlanDeviceAttention(config, { prefill, decode }, {
    sliding,
    newWindow: (capacity) => {
      const w = new RecordingWindow(capacity);
      windows.push(w);
      return w;
    },
  });
  return { config, prefill, decode, sliding, windows, plan, model: new FakeModel(config, plan) };
}

const sum = (a: Float64Array, from: number, to: number) => a.subarray(from, to).reduce((s, x) => s + x, 0);

describe('PlanDeviceAttention dispatch (test doubles, no GPU)', () => {
  test('sliding layers go to dense, full layers to the methods; counts per layer and phase', () => {
    const { config, prefill, decode, sliding, plan, model } = setup();
    const H = config.numHeads, n = 10;
    plan.startSequence(n);
    model.prefill(n, 4);
    model.forward(1);
    model.forward(1);
    assert.deepEqual(sliding.calls.map((c) => c.layer), [0, 2, 0, 2, 0, 2, 0, 2, 0, 2]);
    assert.deepEqual(prefill.calls.map((c) => [c.layer, c.queryStart, c.numQueries, c.isLastChunk]), [
      [1, 0, 4, false], [3, 0, 4, false], [1, 4, 4, false], [3, 4, 4, false], [1, 8, 2, true], [3, 8, 2, true],
    ]);
    assert.deepEqual(decode.steps.map((s) => [s.layer, s.position, s.cacheRows]), [[1, 10, 11], [3, 10, 11], [1, 11, 12], [3, 11, 12]]);
    const counts = plan.sequenceCounts();
    // Sliding layer 0: dense windowed counts, the CPU dense method's.
    const w = TINY_GEMMA3_SLIDING_WINDOW;
    const slidingPrefill = denseHeadCounts(H, 0, n, w).dense[0];
    assert.equal(slidingPrefill, Array.from({ length: n }, (_, p) => Math.min(p + 1, w)).reduce((a, b) => a + b));
    assert.equal(counts.prefill.attended[0], slidingPrefill);
    assert.equal(counts.prefill.dense[0], slidingPrefill);
    assert.equal(counts.decode.attended[2 * H], Math.min(11, w) + Math.min(12, w));
    // Full layer 1: the fake methods' counts, summed over chunks and steps.
    const halfAttended = Array.from({ length: n }, (_, p) => Math.ceil((p + 1) / 2)).reduce((a, b) => a + b);
    assert.equal(counts.prefill.attended[1 * H + 2], halfAttended);
    assert.equal(counts.prefill.dense[1 * H + 2], (n * (n + 1)) / 2);
    assert.equal(sum(counts.decode.attended, 3 * H, 4 * H), 2 * 3 * H);
    assert.equal(sum(counts.decode.dense, 3 * H, 4 * H), (11 + 12) * H);
  });

  test('graph-replayed dense decode steps are booked as attend() books them; non-dense decode offers no graph', () => {
    const { config, plan, model } = setup();
    assert.equal(plan.denseDecodeSteps(), null, 'a method deciding on the host each step cannot be replayed');
    const H = config.numHeads, n = 10, w = TINY_GEMMA3_SLIDING_WINDOW;
    // The dense decode object is never asked to attend here (the graph does that on the device).
    const denseDecode = new DenseDeviceDecode({} as never);
    plan.use({ prefill: new RecordingPrefill(), decode: denseDecode });
    plan.startSequence(n);
    model.prefill(n, 4);
    const book = plan.denseDecodeSteps();
    assert.ok(book);
    book(10);
    book(11);
    const counts = plan.sequenceCounts();
    for (let l = 0; l < config.numLayers; l++) {
      const expected = config.layerTypes[l] === 'sliding' ? Math.min(11, w) + Math.min(12, w) : 11 + 12;
      for (let h = 0; h < H; h++) {
        assert.equal(counts.decode.attended[l * H + h], expected, `layer ${l} head ${h}`);
        assert.equal(counts.decode.dense[l * H + h], expected);
      }
    }
  });

  test('afterPrefill runs once per full layer at the end of a declared prompt, with the last W queries', () => {
    const { decode, windows, plan, model } = setup({ window: 3 });
    assert.equal(windows.length, 2, 'one window per full-attention layer');
    plan.startSequence(7);
    model.prefill(7, 5);
    // Hooks ran inside the last prompt chunk, before any decode step, with the prompt alone in the cache.
    assert.deepEqual(decode.hooks.map((h) => [h.layer, h.windowLength, h.promptLength, h.cacheRows, h.windowQueries]), [
      [1, 3, 7, 7, 7n], [3, 3, 7, 7, 7n],
    ]);
    model.forward(1);
    model.forward(1);
    assert.equal(decode.hooks.length, 2, 'the hook runs once per layer');
    assert.deepEqual(plan.sequenceState().layers.map((l) => l.promptClosed), [false, true, false, true]);
  });

  test('a prompt shorter than the window gives the whole prompt; undeclared prompts close at the first decode step', () => {
    const { decode, plan, model } = setup({ window: 8 });
    model.forward(5); // no startSequence: one chunk, taken as the prompt
    assert.equal(decode.hooks.length, 0, 'an undeclared prompt may continue: no hook yet');
    model.forward(1);
    // The hook saw the cache at the prompt's length although the step's row was already appended.
    assert.deepEqual(decode.hooks.map((h) => [h.layer, h.windowLength, h.promptLength, h.cacheRows]), [[1, 5, 5, 5], [3, 5, 5, 5]]);
    assert.deepEqual(decode.steps.map((s) => s.cacheRows), [6, 6], 'the cache length is restored for the step');
    assert.equal(model.caches[1].length, 6);
  });

  test('a one-token last chunk of a declared prompt is prefill, not decode', () => {
    const { prefill, decode, plan, model } = setup();
    plan.startSequence(9);
    model.prefill(9, 4); // chunks 4, 4, 1
    assert.deepEqual(prefill.calls.filter((c) => c.layer === 1).map((c) => [c.queryStart, c.numQueries, c.isLastChunk]), [[0, 4, false], [4, 4, false], [8, 1, true]]);
    assert.equal(decode.steps.length, 0);
  });

  test('whole-prompt methods refuse chunks, naming the method; calls crossing the prompt end are refused', () => {
    const a = setup({ wholePrompt: true });
    a.plan.startSequence(8);
    assert.throws(() => a.model.prefill(8, 4), /fake_prefill needs the whole prompt in one chunk \(got positions 0\.\.3 of 8\)/);
    const b = setup();
    b.plan.startSequence(6);
    assert.throws(() => b.model.forward(8), /crosses the declared prompt end 6/);
    const c = setup();
    c.plan.startSequence(4);
    c.model.prefill(4, 4);
    assert.throws(() => c.model.forward(2), /decode takes one token per step/);
  });

  test('reset starts a new sequence: counts zeroed, windows cleared, methods reset', () => {
    const { prefill, decode, windows, plan, model } = setup({ window: 2 });
    plan.startSequence(4);
    model.prefill(4, 4);
    model.forward(1);
    const resetsBefore = prefill.resets;
    plan.startSequence(3); // resets
    assert.equal(prefill.resets, resetsBefore + 1);
    assert.ok(windows.every((w) => w.length === 0));
    assert.equal(sum(plan.sequenceCounts().prefill.dense, 0, Infinity), 0);
    const fresh = new FakeModel(model.config, plan);
    fresh.prefill(3, 2);
    assert.deepEqual(decode.hooks.slice(2).map((h) => [h.layer, h.windowLength, h.promptLength]), [[1, 2, 3], [3, 2, 3]]);
  });

  test('a second prompt without reset is refused', () => {
    const { plan, model } = setup();
    model.forward(3);
    model.forward(1);
    const again = new FakeModel(model.config, plan);
    assert.throws(() => again.forward(3), /after its prompt was closed \(reset between sequences\)/);
  });
});

describe('device query window ring arithmetic', () => {
  /** Plain model: positions → slots, then read back in order, for a sequence of chunk sizes. */
  function simulate(chunks: number[], W: number): { held: number[]; expected: number[] } {
    const ring = new Array<number>(W).fill(-1);
    let start = 0, held = 0;
    for (const T of chunks) {
      for (const run of ringWrites(start, T, W)) {
        assert.ok(run.rows > 0 && run.to + run.rows <= W && run.from + run.rows <= T);
        for (let i = 0; i < run.rows; i++) ring[run.to + i] = start + run.from + i;
      }
      start += T;
      held = Math.min(W, held + T);
    }
    const out: number[] = [];
    for (const run of orderedReads(start, held, W)) {
      assert.equal(run.to, out.length);
      for (let i = 0; i < run.rows; i++) out.push(ring[run.from + i]);
    }
    return { held: out, expected: Array.from({ length: held }, (_, i) => start - held + i) };
  }

  test('the window holds the last W positions in order for any chunking', () => {
    const cases: [number[], number][] = [
      [[10], 4], [[3], 4], [[1, 1, 1, 1, 1, 1], 4], [[5, 2], 4], [[3, 3, 3], 4], [[4, 4], 4], [[7, 1, 9, 2], 5], [[2, 3], 8], [[256, 100, 1], 64],
    ];
    for (const [chunks, W] of cases) {
      const { held, expected } = simulate(chunks, W);
      assert.deepEqual(held, expected, `chunks ${chunks.join(',')} W ${W}`);
    }
  });
});

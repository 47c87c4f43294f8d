/**
 * Sparse decode steps replayed from one captured CUDA graph (issue 9) against the same steps launched
 * eagerly, on the GPU:
 *   - the segment decode with its tail read on the device (SegmentDecodeKernel.runGraph), captured
 *     once and replayed at several positions, equals run() at each position (and the CPU reference),
 *     for a fixed tail start (SnapKV's prompt end) and a per-position table (sink+local's window), on
 *     the register path and the bulk-copy ring;
 *   - whole models (llama D=128, qwen2 D=64, gemma3 with sliding layers) decoding greedily with
 *     SnapKV, Ada-SnapKV and sink+local: the graph run picks the same tokens, books the same pair
 *     counts, and leaves the same next-step logits as the eager run; sink+local with a prompt shorter
 *     than its sink decodes eagerly until the sink is whole, then from a graph;
 *   - the same for Quest (shared pages and per query head, a sparsity and a token budget): its first
 *     decode step folds the prompt into the page bounds eagerly, every later step replays the graph;
 *   - with SPARSE_FRONTIER_DECODE_GRAPH_TIMING=1: ms/token of graph and eager decode of the shipped
 *     organism (models/organism) at a 16K prompt for dense and the four methods, printed (no assertion).
 * Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type RowSegment, SegmentDecodeKernel, type SegmentDecodeTiling, SegmentLists, defaultSegmentTiling, segmentWorkspaceBytes,
} from '../../src/backends/cuda/kernels/segment-decode.js';
import type { CudaTransformerModel, CudaSequence } from '../../src/backends/cuda/model.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { parseModelConfig } from '../../src/engine/config.js';
import type { AttentionCounts } from '../../src/engine/forward-state.js';
import type { ModelConfig } from '../../src/engine/model-config.js';
import { InMemoryWeights, type WeightStore } from '../../src/engine/weights.js';
import { type TinyArch, tinyConfigJson, tinyTensors } from '../helpers/tiny-checkpoint.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { referenceRangeDecode } from './sparse-decode-helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA graph decode tests');
const TIMING = process.env.SPARSE_FRONTIER_DECODE_GRAPH_TIMING === '1';

/** Graph vs eager at the kernel: the same rows in the same splits (one row more or less moves outputs ~1/rows ≫ this). */
const SAME_STEP = 1e-3;
/** Against the CPU float64 reference on the same bf16 inputs, as the other segment decode tests. */
const TOLERANCE = 1e-2;

/** A tiny architecture widened to head dim D (hidden 128, 2 layers, H 4, Hkv 2; gemma3 with sliding layers). */
function wideModel(arch: TinyArch, headDim: number, extra: Record<string, unknown> = {}): { config: ModelConfig; weights: WeightStore } {
  const json = { ...tinyConfigJson(arch), head_dim: headDim, hidden_size: 128, intermediate_size: 256, max_position_embeddings: 1024, ...extra };
  const config = parseModelConfig(json, 'wide test config');
  const weights = new InMemoryWeights(new Map(tinyTensors(json, 93).map((t) => [t.name, { shape: t.shape, data: t.data }])));
  return { config, weights };
}

function promptOf(n: number, V: number, salt = 0): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + 11 + salt * 101) % V);
}

describe('CUDA sparse decode steps replayed from a captured graph', { skip }, () => {
  let rt: CudaRuntime;
  let mod: {
    Model: typeof CudaTransformerModel;
    StoreWeightSource: typeof import('../../src/backends/cuda/weight-source.js').StoreWeightSource;
    PlanDeviceAttention: typeof import('../../src/backends/cuda/methods/plan.js').PlanDeviceAttention;
    registry: typeof import('../../src/backends/cuda/methods/index.js');
  };
  before(async () => {
    rt = new (await import('../../src/backends/cuda/runtime.js')).CudaRuntime();
    mod = {
      Model: (await import('../../src/backends/cuda/model.js')).CudaTransformerModel,
      StoreWeightSource: (await import('../../src/backends/cuda/weight-source.js')).StoreWeightSource,
      PlanDeviceAttention: (await import('../../src/backends/cuda/methods/plan.js')).PlanDeviceAttention,
      registry: await import('../../src/backends/cuda/methods/index.js'),
    };
  });
  after(() => rt?.dispose());

  interface KernelCase {
    name: string;
    H: number;
    Hkv: number;
    D: number;
    /** Unit u's listed segments (fixed over the steps). */
    lists: (u: number) => RowSegment[];
    /** Tail start at position p; `table`: read from a per-position table, else a fixed start. */
    tailStart: (p: number) => number;
    table: boolean;
    first: number;
    last: number;
  }
  const kernelCases: KernelCase[] = [
    {
      // SnapKV: per-KV-head compacted prefixes of different lengths, decode rows from the prompt end n = 400.
      name: 'evicted prefixes + decode tail (fixed start), D=128 g=4', H: 32, Hkv: 8, D: 128,
      lists: (u) => [{ start: 0, length: 90 + 37 * u }], tailStart: () => 400, table: false, first: 400, last: 470,
    },
    {
      // Sink + local with a window of a quarter of the visible rows: the tail start moves with p.
      name: 'sink + sliding window (per-position table), D=64 g=2', H: 4, Hkv: 2, D: 64,
      lists: () => [{ start: 0, length: 4 }], tailStart: (p) => p + 1 - Math.round((p + 1) / 4), table: true, first: 300, last: 700,
    },
  ];
  const tilingsOf = (c: KernelCase): [string, SegmentDecodeTiling][] => {
    const d = defaultSegmentTiling(c.D, c.H / c.Hkv);
    return [['default', d], ['registers', { threads: d.threads, unroll: d.unroll }], ['ring', { threads: d.threads, unroll: d.unroll, stages: 4 }]];
  };

  for (const c of kernelCases) for (const [label, tiling] of tilingsOf(c)) {
    test(`segment decode with a device tail, one graph for every step, equals run() (${c.name}; ${label})`, () => {
      const rand = randomGenerator(31);
      const rows = c.last + 1, scale = 1 / Math.sqrt(c.D);
      const k = randomBf16Values(c.Hkv * rows * c.D, rand, 2);
      const v = randomBf16Values(c.Hkv * rows * c.D, rand);
      const q = randomBf16Values(c.H * c.D, rand, 2);
      const perHead = (x: Float32Array) => Array.from({ length: c.Hkv }, (_, h) => x.subarray(h * rows * c.D, (h + 1) * rows * c.D));
      const lists = Array.from({ length: c.Hkv }, (_, u) => c.lists(u));
      const listRows = lists.map((l) => l.reduce((s, x) => s + x.length, 0));
      const maxListRows = Math.max(...listRows);
      const kernel = new SegmentDecodeKernel(rt, { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D }, false, tiling);
      const segments = new SegmentLists(rt, c.Hkv, 1);
      segments.upload(lists);
      const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
      const starts = new Int32Array(rows);
      for (let p = c.first; p <= c.last; p++) starts[p] = c.tailStart(p);
      const table = rt.pool.acquire(rows * 4);
      const position = rt.pool.acquire(16);
      rt.synchronize();
      rt.cuda.upload(table.ptr, starts);
      const tailRowsAt = (p: number) => p + 1 - starts[p];
      const launch = kernel.planGraph(maxListRows + tailRowsAt(c.first), maxListRows + tailRowsAt(c.last));
      const workspace = rt.pool.acquire(segmentWorkspaceBytes(c.H, c.D, launch.splits));
      const graphOut = poisonedBf16(rt, c.H * c.D), eagerOut = poisonedBf16(rt, c.H * c.D);
      rt.synchronize();
      const graph = rt.cuda.captureGraph(rt.stream, () => kernel.runGraph({
        q: dq.ptr, k: dk.ptr, v: dv.ptr, kvStride: rows, out: graphOut.ptr, segments, position: position.ptr,
        tailStart: c.table ? 0 : c.tailStart(c.first), tailStarts: c.table ? table.ptr : null, maxListRows, launch, workspace: workspace.ptr, scale,
      }));
      try {
        const mid = (c.first + c.last) >> 1;
        for (const p of [c.first, c.first + 1, mid, c.last - 1, c.last]) {
          rt.synchronize();
          rt.cuda.upload(position.ptr, Int32Array.of(p));
          rt.cuda.launchGraph(graph, rt.stream);
          const tailStart = starts[p], tailRows = tailRowsAt(p);
          const plan = kernel.run({
            q: dq.ptr, k: dk.ptr, v: dv.ptr, kvStride: rows, out: eagerOut.ptr, segments, tailStart, tailRows, maxRows: maxListRows + tailRows, scale,
          });
          rt.synchronize();
          const got = downloadBf16(rt, graphOut, c.H * c.D), want = downloadBf16(rt, eagerOut, c.H * c.D);
          assert.equal(countNaN(got), 0, `p ${p}: every output element must be written`);
          const ref = referenceRangeDecode(q, perHead(k), perHead(v), c.H, c.Hkv, c.D, scale, (u) => [
            ...lists[u].map((s): [number, number] => [s.start, s.start + s.length]), [tailStart, p + 1],
          ]);
          const diff = relativeError(got, want), differing = got.filter((x, i) => x !== want[i]).length;
          console.log(`#   p ${p}: ${plan.splits} of ${launch.splits} splits${launch.ring ? ' (ring)' : ''}; graph vs eager rel ${diff.toExponential(2)} ` +
            `(${differing} elements differ), vs CPU ${relativeError(got, ref).toExponential(2)}`);
          assert.ok(plan.splits <= launch.splits, `p ${p}: run() took ${plan.splits} splits, the graph has ${launch.splits}`);
          assert.ok(diff < SAME_STEP, `p ${p}: graph step differs from the eager one by ${diff}`);
          assert.ok(relativeError(got, ref) < TOLERANCE, `p ${p}: graph step vs CPU reference ${relativeError(got, ref)}`);
        }
      } finally {
        rt.synchronize();
        rt.cuda.destroyGraph(graph);
        for (const b of [dq, dk, dv, table, position, workspace, graphOut, eagerOut]) rt.pool.release(b);
        segments.release();
      }
    });
  }

  /** A greedy decode of `steps` tokens after `prompt`; the logits of one more step; what the sequence held. */
  interface GreedyRun { ids: number[]; counts: AttentionCounts; nextLogits: Float32Array; graphed: boolean; eagerSteps: number }
  function greedyRun(model: CudaTransformerModel, plan: InstanceType<typeof mod.PlanDeviceAttention>, prompt: number[], steps: number, graph: boolean): GreedyRun {
    model.useDecodeGraph = graph;
    const seq: CudaSequence = model.newSequence(prompt.length + steps + 1);
    try {
      plan.startSequence(prompt.length);
      const logits = model.prefill(seq, prompt, 64);
      let next = model.argmaxRows(logits)[0];
      rt.pool.release(logits);
      const ids = [next];
      let eagerSteps = 0;
      for (let i = 0; i < steps; i++) {
        ids.push(next = model.decodeGreedy(seq, next));
        // A step that could be captured replays the graph it captured; one that could not ran eagerly.
        if (graph && seq.decodeGraph === null) eagerSteps++;
      }
      const graphed = seq.decodeGraph !== null && seq.decodeGraphSteps !== null;
      const buf = model.forward(seq, [(next * 7 + 1) % model.config.vocabSize], 'last')!;
      rt.synchronize();
      const nextLogits = new Float32Array(model.config.vocabSize);
      rt.cuda.download(nextLogits, buf.ptr);
      rt.pool.release(buf);
      return { ids, counts: plan.sequenceCounts(), nextLogits, graphed, eagerSteps };
    } finally {
      model.useDecodeGraph = true;
      rt.synchronize();
      seq.release();
    }
  }

  /**
   * The plan's current method decodes `steps` greedy tokens after `prompt` twice, replaying its graph
   * and eagerly: the graph run was captured after exactly `eagerSteps` eager steps (`why`), and both
   * give the same tokens, the same prefill and decode pair counts and next-step logits within 1e-3.
   */
  function assertGraphMatchesEager(
    model: CudaTransformerModel, plan: InstanceType<typeof mod.PlanDeviceAttention>, prompt: number[], steps: number,
    eagerSteps: number, why: string, label: string, arch: TinyArch,
  ): void {
    assert.equal(model.decodeGraphUnsupported, null, `${label}: the model should capture its decode steps`);
    const graphRun = greedyRun(model, plan, prompt, steps, true);
    assert.equal(model.decodeGraphFailure, null, `${label}: capture failed`);
    assert.ok(graphRun.graphed, `${label}: no method graph was captured`);
    assert.equal(graphRun.eagerSteps, eagerSteps, `${label}: ${why}`);
    const eagerRun = greedyRun(model, plan, prompt, steps, false);
    assert.equal(eagerRun.graphed, false);
    assert.deepEqual(graphRun.ids, eagerRun.ids, `${label}: greedy tokens`);
    for (const phase of ['prefill', 'decode'] as const) {
      for (const field of ['attended', 'dense'] as const) {
        assert.deepEqual(Array.from(graphRun.counts[phase][field]), Array.from(eagerRun.counts[phase][field]), `${label}: ${phase} ${field} pairs`);
      }
    }
    assert.equal(countNaN(graphRun.nextLogits), 0);
    const rel = relativeError(graphRun.nextLogits, eagerRun.nextLogits);
    console.log(`# ${arch} ${label}: ${steps} graph steps = eager tokens and counts; next logits rel ${rel.toExponential(2)}`);
    assert.ok(rel < 1e-3, `${label}: the step after graph replays differs from the eager one by ${rel} (rel L2)`);
  }

  const METHODS: { id: string; options: { sparsity?: number; params?: Record<string, unknown> } }[] = [
    { id: 'snapkv', options: { sparsity: 0.8, params: { observationWindow: 32, localWindow: 16 } } },
    { id: 'ada_snapkv', options: { sparsity: 0.8, params: { observationWindow: 32, localWindow: 16 } } },
    { id: 'sink_local_decode', options: { sparsity: 0.8 } },
    { id: 'sink_local_decode', options: { params: { sinkTokens: 4, localWindow: 40 } } },
  ];
  const MODELS: [TinyArch, number, Record<string, unknown>][] = [['llama', 128, {}], ['qwen2', 64, {}], ['gemma3', 128, { sliding_window: 24 }]];

  for (const [arch, D, extra] of MODELS) {
    test(`${arch} D=${D}: graph decode of SnapKV, Ada-SnapKV and sink+local picks the eager tokens and books the eager counts`, () => {
      const { config, weights } = wideModel(arch, D, extra);
      const { Model, StoreWeightSource, PlanDeviceAttention, registry } = mod;
      const plan = PlanDeviceAttention.onDevice(rt, config, registry.createDeviceAttentionPlan(rt, config, 'dense'));
      const model = new Model(rt, config, new StoreWeightSource(rt, weights), plan);
      try {
        const prompt = promptOf(300, config.vocabSize, D);
        for (const m of METHODS) {
          const label = `${m.id} ${JSON.stringify(m.options)}`;
          plan.use(registry.createDeviceAttentionPlan(rt, config, m.id, m.options));
          assertGraphMatchesEager(model, plan, prompt, 12, 0, "a declared prompt's first step is already capturable", label, arch);
        }
        // A prompt shorter than the sink: the sink grows during the first steps, which stay eager.
        plan.use(registry.createDeviceAttentionPlan(rt, config, 'sink_local_decode', { params: { sinkTokens: 8, localWindow: 16 } }));
        const short = promptOf(3, config.vocabSize, 5);
        const graphRun = greedyRun(model, plan, short, 12, true);
        const eagerRun = greedyRun(model, plan, short, 12, false);
        assert.ok(graphRun.graphed, 'captured once the sink is whole');
        assert.equal(graphRun.eagerSteps, 4, 'positions 3..6 see a growing sink (eager); from 7 on it is whole (graph)');
        assert.deepEqual(graphRun.ids, eagerRun.ids);
        assert.deepEqual(Array.from(graphRun.counts.decode.attended), Array.from(eagerRun.counts.decode.attended));
      } finally {
        plan.dispose();
        model.dispose();
      }
    });
  }

  const QUEST_OPTIONS: { sparsity?: number; params?: Record<string, unknown> }[] = [
    { sparsity: 0.8 },
    { sparsity: 0.5, params: { sharePages: false } },
    { params: { tokenBudget: 64 } },
  ];
  for (const [arch, D, extra] of MODELS) {
    test(`${arch} D=${D}: graph decode of Quest picks the eager tokens and books the eager counts`, () => {
      const { config, weights } = wideModel(arch, D, extra);
      const { Model, StoreWeightSource, PlanDeviceAttention, registry } = mod;
      const plan = PlanDeviceAttention.onDevice(rt, config, registry.createDeviceAttentionPlan(rt, config, 'dense'));
      const model = new Model(rt, config, new StoreWeightSource(rt, weights), plan);
      try {
        const prompt = promptOf(300, config.vocabSize, D + 1);
        for (const options of QUEST_OPTIONS) {
          const label = `quest ${JSON.stringify(options)}`;
          plan.use(registry.createDeviceAttentionPlan(rt, config, 'quest', options));
          assertGraphMatchesEager(model, plan, prompt, 24, 1, 'the first step folds the prompt eagerly, the others replay the graph', label, arch);
        }
      } finally {
        plan.dispose();
        model.dispose();
      }
    });
  }

  test('timing: ms/token of graph and eager decode on the organism at a 16K prompt', { skip: TIMING ? false : 'set SPARSE_FRONTIER_DECODE_GRAPH_TIMING=1' }, async () => {
    const { openCheckpointModel } = await import('../../src/engine/checkpoint.js');
    const ckpt = openCheckpointModel('models/organism');
    const config = ckpt.config;
    const { Model, StoreWeightSource, PlanDeviceAttention, registry } = mod;
    const plan = PlanDeviceAttention.onDevice(rt, config, registry.createDeviceAttentionPlan(rt, config, 'dense'));
    const model = new Model(rt, config, new StoreWeightSource(rt, ckpt.weights), plan);
    const n = 16384, warm = 6, steps = 64, s = 0.9;
    const prompt = promptOf(n, config.vocabSize, 9);
    try {
      for (const [id, options] of [['dense', {}], ['snapkv', { sparsity: s }], ['ada_snapkv', { sparsity: s }], ['sink_local_decode', { sparsity: s }], ['quest', { sparsity: s }]] as const) {
        plan.use(registry.createDeviceAttentionPlan(rt, config, id, options));
        const seq = model.newSequence(n + 2 * (warm + steps) + 1);
        try {
          plan.startSequence(n);
          const logits = model.prefill(seq, prompt, n);
          let next = model.argmaxRows(logits)[0];
          rt.pool.release(logits);
          const msPerToken = (graph: boolean): number => {
            model.useDecodeGraph = graph;
            for (let i = 0; i < warm; i++) next = model.decodeGreedy(seq, next);
            const t0 = performance.now();
            for (let i = 0; i < steps; i++) next = model.decodeGreedy(seq, next);
            return (performance.now() - t0) / steps;
          };
          const graphMs = msPerToken(true);
          const graphed = seq.decodeGraph !== null;
          const eagerMs = msPerToken(false);
          console.log(`# organism n=${n} ${id}${id === 'dense' ? '' : ` s=${s}`}: graph ${graphMs.toFixed(3)} ms/token${graphed ? '' : ` (NO GRAPH: ${model.decodeGraphFailure ?? model.decodeGraphUnsupported})`}, ` +
            `eager ${eagerMs.toFixed(3)} ms/token, ${(eagerMs / graphMs).toFixed(2)}x`);
        } finally {
          model.useDecodeGraph = true;
          rt.synchronize();
          seq.release();
        }
      }
    } finally {
      plan.dispose();
      model.dispose();
    }
  });
});

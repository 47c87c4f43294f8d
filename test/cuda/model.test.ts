/**
 * The whole model on the GPU against the CPU engine (float32 everywhere) and the transformers golden
 * fixtures, for every tiny variant (llama with each RoPE scaling, bf16 sharded, qwen2, qwen3, mistral,
 * gemma3 with and without soft-capping; head dim 16, so attention runs the small-head kernel), and for
 * random wider configs whose head dims (64, 128, 256) run the flash prefill and split-K decode kernels.
 *
 * Tolerance (bf16 weights and activations against float32): per logits row, max |gpu − ref| ≤
 * ROW_BOUND · max |ref row|; over a whole run, ‖gpu − ref‖ / ‖ref‖ ≤ REL_L2_BOUND; the top-1 token
 * agrees wherever the reference's top-1 / top-2 margin exceeds TOP1_MARGIN · max |ref row| (the row
 * bound alone would allow a flip up to twice that). Greedy ids equal the CPU engine's up to the first
 * step whose CPU margin is under that same margin; there the comparison stops.
 * Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import type { CudaTransformerModel } from '../../src/backends/cuda/model.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { parseModelConfig } from '../../src/engine/config.js';
import { generateTokens } from '../../src/engine/generate.js';
import type { ModelConfig } from '../../src/engine/model-config.js';
import { TransformerModel } from '../../src/engine/model.js';
import { InMemoryWeights, type WeightStore } from '../../src/engine/weights.js';
import { densePlan } from '../../src/methods/dense.js';
import { listGoldenFixtures, readGoldenFixture, regenerateFixtureCheckpoint } from '../helpers/golden.js';
import { tinyConfigJson, tinyTensors, type TinyArch } from '../helpers/tiny-checkpoint.js';
import { countNaN, top2 } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA model tests skipped: ${skip}`);

const ROW_BOUND = 0.08;
const REL_L2_BOUND = 0.04;
const TOP1_MARGIN = 0.03;
const GREEDY_STEPS = 8;

interface Agreement {
  relL2: number;
  worstRow: number;
  top1Checked: number;
  top1Agreed: number;
}

/** Compares [rows, V] logits; asserts the bounds in the header and returns the measured agreement. */
function assertLogitsAgree(gpu: Float32Array, ref: Float32Array | number[][], V: number, what: string): Agreement {
  const rows = gpu.length / V;
  assert.equal(countNaN(gpu), 0, `${what}: NaN in GPU logits`);
  let num = 0, den = 0, worstRow = 0, top1Checked = 0, top1Agreed = 0;
  for (let r = 0; r < rows; r++) {
    const refRow = Array.isArray(ref) ? Float32Array.from(ref[r]) : ref.subarray(r * V, (r + 1) * V);
    const gpuRow = gpu.subarray(r * V, (r + 1) * V);
    const t = top2(refRow);
    let maxDiff = 0;
    for (let i = 0; i < V; i++) {
      const d = gpuRow[i] - refRow[i];
      num += d * d;
      den += refRow[i] * refRow[i];
      maxDiff = Math.max(maxDiff, Math.abs(d));
    }
    worstRow = Math.max(worstRow, maxDiff / t.scale);
    if (t.margin > TOP1_MARGIN * t.scale) {
      top1Checked++;
      if (top2(gpuRow).best === t.best) top1Agreed++;
    }
  }
  const relL2 = Math.sqrt(num / den);
  const a = { relL2, worstRow, top1Checked, top1Agreed };
  console.log(`# ${what}: rel L2 ${relL2.toExponential(2)}, worst row max|Δ|/max|ref| ${worstRow.toExponential(2)}, top-1 ${top1Agreed}/${top1Checked}`);
  assert.ok(relL2 <= REL_L2_BOUND, `${what}: rel L2 error ${relL2} > ${REL_L2_BOUND}`);
  assert.ok(worstRow <= ROW_BOUND, `${what}: a row's max error is ${worstRow} of its max |logit| (> ${ROW_BOUND})`);
  assert.equal(top1Agreed, top1Checked, `${what}: top-1 differs on ${top1Checked - top1Agreed} rows with a clear margin`);
  return a;
}

describe('CUDA model vs the CPU engine and transformers', { skip }, () => {
  let rt: CudaRuntime;
  let Model: typeof CudaTransformerModel;
  let generateOnDevice: typeof import('../../src/backends/cuda/generate.js').generateTokensOnDevice;
  let StoreSource: typeof import('../../src/backends/cuda/weight-source.js').StoreWeightSource;
  before(async () => {
    rt = new (await import('../../src/backends/cuda/runtime.js')).CudaRuntime();
    Model = (await import('../../src/backends/cuda/model.js')).CudaTransformerModel;
    generateOnDevice = (await import('../../src/backends/cuda/generate.js')).generateTokensOnDevice;
    StoreSource = (await import('../../src/backends/cuda/weight-source.js')).StoreWeightSource;
  });
  after(() => rt?.dispose());

  /** Greedy ids of both backends agree up to the first step where the CPU's margin is too thin to call. */
  function assertGreedyAgrees(cpu: TransformerModel, gpu: CudaTransformerModel, prompt: number[], what: string): void {
    const [ref] = generateTokens(cpu, [prompt], { maxNewTokens: GREEDY_STEPS });
    const [got] = generateOnDevice(gpu, [prompt], { maxNewTokens: GREEDY_STEPS, chunkSize: 5 });
    const V = cpu.config.vocabSize;
    for (let i = 0; i < GREEDY_STEPS; i++) {
      if (got.tokenIds[i] === ref.tokenIds[i]) continue;
      const all = cpu.logits([...prompt, ...ref.tokenIds.slice(0, i)], densePlan());
      const t = top2(all.subarray(all.length - V));
      console.log(`# ${what}: greedy ids diverge at step ${i} (CPU margin ${(t.margin / t.scale).toExponential(2)} of max |logit|)`);
      assert.ok(t.margin <= TOP1_MARGIN * t.scale, `${what}: greedy id ${i} is ${got.tokenIds[i]} on the GPU, ${ref.tokenIds[i]} on the CPU, with a clear CPU margin`);
      return;
    }
    console.log(`# ${what}: ${GREEDY_STEPS} greedy ids equal`);
  }

  for (const file of listGoldenFixtures()) {
    test(`golden ${file.split('/').pop()}: GPU logits vs transformers and the CPU engine; chunked prefill; greedy ids`, () => {
      const fx = readGoldenFixture(file);
      const dir = mkdtempSync(join(tmpdir(), `sf-cuda-golden-${fx.variant}-`));
      try {
        regenerateFixtureCheckpoint(fx, dir);
        const ckpt = loadCheckpoint(dir);
        const V = ckpt.config.vocabSize;
        const cpu = new TransformerModel(ckpt.config, ckpt.weights);
        const gpu = new Model(rt, ckpt.config, new StoreSource(rt, ckpt.weights));
        try {
          const whole = gpu.logits(fx.input_ids);
          assertLogitsAgree(whole, fx.logits, V, `${fx.variant} vs transformers`);
          assertLogitsAgree(whole, cpu.logits(fx.input_ids, densePlan()), V, `${fx.variant} vs CPU`);
          // Chunks of 5 cross the sliding windows (4 and 6) and start queries mid-cache.
          assertLogitsAgree(gpu.logits(fx.input_ids, 5), fx.logits, V, `${fx.variant} chunked vs transformers`);
          assertGreedyAgrees(cpu, gpu, fx.input_ids, fx.variant);
        } finally {
          gpu.dispose();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('generate --backend cuda: a tiny checkpoint generates and reports like the CPU path', async () => {
    const { runOnCudaIfChosen } = await import('../../src/backends/cuda/generate-command.js');
    const { writeTinyCheckpoint } = await import('../helpers/tiny-checkpoint.js');
    const dir = mkdtempSync(join(tmpdir(), 'sf-cuda-cli-'));
    try {
      writeTinyCheckpoint(dir, 'qwen3', { dtype: 'BF16' });
      let text = '';
      const ran = await runOnCudaIfChosen(
        { backend: 'auto', model: dir, prompt: ['hello there', 'a second prompt'], maxNewTokens: '6', chunkSize: '3', method: 'dense', chat: false },
        { write: (t: string) => { text += t; } },
      );
      console.log(text.split('\n').map((l) => `# ${l}`).join('\n'));
      assert.equal(ran, true);
      assert.match(text, /tensors uploaded as stored, 0 converted/);
      assert.equal((text.match(/generated \d tokens \((stop-token|max-new-tokens)\)/g) ?? []).length, 2);
      assert.match(text, /achieved sparsity on full-attention layers: prefill 0\.000, decode 0\.000/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A tiny config widened so attention runs the flash prefill and split-K decode kernels. */
  function wideConfig(arch: TinyArch, headDim: number, extra: Record<string, unknown> = {}): { config: ModelConfig; weights: WeightStore } {
    const json = { ...tinyConfigJson(arch, { ropeScaling: arch === 'llama' ? 'llama3' : 'none' }), head_dim: headDim, hidden_size: 128, intermediate_size: 256, ...extra };
    const config = parseModelConfig(json, `wide ${arch}`);
    const weights = new InMemoryWeights(new Map(tinyTensors(json, 77).map((t) => [t.name, { shape: t.shape, data: t.data }])));
    return { config, weights };
  }

  const WIDE: { name: string; arch: TinyArch; headDim: number; extra?: Record<string, unknown> }[] = [
    { name: 'llama D=128 llama3 RoPE', arch: 'llama', headDim: 128 },
    { name: 'qwen2 D=64 (q/k/v bias)', arch: 'qwen2', headDim: 64 },
    { name: 'gemma3 D=256 (sliding window 16, final softcap)', arch: 'gemma3', headDim: 256, extra: { sliding_window: 16, final_logit_softcapping: 10 } },
  ];
  for (const w of WIDE) {
    test(`${w.name}: flash prefill in chunks and split-K decode steps match the CPU engine`, () => {
      const { config, weights } = wideConfig(w.arch, w.headDim, w.extra);
      const V = config.vocabSize;
      const cpu = new TransformerModel(config, weights);
      const gpu = new Model(rt, config, new StoreSource(rt, weights));
      try {
        const prompt = Array.from({ length: 150 }, (_, i) => (i * 37 + 11) % V);
        // 150 tokens in chunks of 64: flash tiles cross chunk borders and windows.
        assertLogitsAgree(gpu.logits(prompt, 64), cpu.logits(prompt, densePlan()), V, `${w.name} prefill`);
        const plan = densePlan();
        const state = cpu.newSequence(plan);
        const cpuLast = cpu.prefill(state, prompt, plan, 64);
        const seq = gpu.newSequence(prompt.length + 6);
        const gpuLastBuf = gpu.prefill(seq, prompt, 64);
        const download = (buf: { ptr: bigint }) => {
          rt.synchronize();
          const out = new Float32Array(V);
          rt.cuda.download(out, buf.ptr);
          return out;
        };
        const gpuRows: Float32Array[] = [download(gpuLastBuf)];
        const cpuRows: Float32Array[] = [cpuLast];
        rt.pool.release(gpuLastBuf);
        for (let step = 0; step < 6; step++) {
          const token = (step * 53 + 5) % V;
          cpuRows.push(cpu.decodeStep([state], [token], plan)[0]);
          const buf = gpu.forward(seq, [token], 'last')!;
          gpuRows.push(download(buf));
          rt.pool.release(buf);
        }
        seq.release();
        const flat = (rows: Float32Array[]) => {
          const out = new Float32Array(rows.length * V);
          rows.forEach((r, i) => out.set(r, i * V));
          return out;
        };
        assertLogitsAgree(flat(gpuRows), flat(cpuRows), V, `${w.name} decode`);
        assertGreedyAgrees(cpu, gpu, prompt.slice(0, 40), w.name);
      } finally {
        gpu.dispose();
      }
    });
  }

  test('decode steps replayed from a captured CUDA graph match the CPU engine and leave the sequence consistent', () => {
    for (const w of WIDE) {
      const { config, weights } = wideConfig(w.arch, w.headDim, w.extra);
      const V = config.vocabSize;
      const cpu = new TransformerModel(config, weights);
      const gpu = new Model(rt, config, new StoreSource(rt, weights));
      try {
        assert.equal(gpu.decodeGraphUnsupported, null, `${w.name}: the dense model should capture its decode steps`);
        const prompt = Array.from({ length: 90 }, (_, i) => (i * 29 + 3) % V);
        const steps = 12;
        const seq = gpu.newSequence(prompt.length + steps + 2);
        const first = gpu.prefill(seq, prompt, 32);
        let next = gpu.argmaxRows(first)[0];
        rt.pool.release(first);
        const ids = [next];
        for (let i = 0; i < steps; i++) ids.push(next = gpu.decodeGreedy(seq, next));
        assert.equal(gpu.decodeGraphFailure, null, `${w.name}: capture failed`);
        assert.ok(seq.decodeGraph !== null, `${w.name}: no graph was captured`);
        assert.equal(seq.position, prompt.length + steps);
        assert.ok(seq.caches.every((c) => c.length === seq.position), 'cache lengths follow the replayed steps');
        // Each id is the CPU engine's greedy pick on the same history, unless the CPU's margin is too thin to call.
        const all = cpu.logits([...prompt, ...ids.slice(0, steps)], densePlan());
        for (let i = 1; i <= steps; i++) {
          const t = top2(all.subarray((prompt.length + i - 1) * V, (prompt.length + i) * V));
          if (t.best !== ids[i]) assert.ok(t.margin <= TOP1_MARGIN * t.scale, `${w.name}: graph step ${i} picked ${ids[i]}, CPU ${t.best} with a clear margin`);
        }
        // A launch-by-launch step after the replays sees the rows and position the graph left behind:
        // it must match the same step after launch-by-launch decoding of the same ids (GPU against GPU,
        // so only the split layouts' rounding differs).
        const extra = (next * 7 + 1) % V;
        const lastRow = (s: typeof seq): Float32Array => {
          const buf = gpu.forward(s, [extra], 'last')!;
          rt.synchronize();
          const row = new Float32Array(V);
          rt.cuda.download(row, buf.ptr);
          rt.pool.release(buf);
          return row;
        };
        const afterGraph = lastRow(seq);
        seq.release();
        gpu.useDecodeGraph = false;
        const eagerSeq = gpu.newSequence(prompt.length + steps + 2);
        rt.pool.release(gpu.prefill(eagerSeq, prompt, 32));
        for (let i = 0; i < steps; i++) gpu.decodeGreedy(eagerSeq, ids[i]);
        assert.equal(eagerSeq.decodeGraph, null);
        const afterEager = lastRow(eagerSeq);
        eagerSeq.release();
        gpu.useDecodeGraph = true;
        assert.equal(countNaN(afterGraph), 0);
        let num = 0, den = 0;
        for (let i = 0; i < V; i++) {
          num += (afterGraph[i] - afterEager[i]) ** 2;
          den += afterEager[i] ** 2;
        }
        const rel = Math.sqrt(num / den);
        console.log(`# ${w.name}: step after graph steps vs after eager steps: rel L2 ${rel.toExponential(2)}`);
        assert.ok(rel < 1e-2, `${w.name}: the step after graph replays differs from the eager one by ${rel} (rel L2)`);
        console.log(`# ${w.name}: ${steps} graph steps agree with the CPU engine`);
      } finally {
        gpu.dispose();
      }
    }
  });

  test('decode with an attention other than the dense one stays launch-by-launch and calls attend for every layer', async () => {
    const { DenseDeviceAttention } = await import('../../src/backends/cuda/device-attention.js');
    const { config, weights } = wideConfig('llama', 128);
    const dense = new DenseDeviceAttention(rt, config);
    const calls: number[] = [];
    // A stand-in for a sparse method: the same kernels behind another object, counting decode calls.
    const counting = { id: 'counting', attend: (call: Parameters<typeof dense.attend>[0]) => {
      if (call.numQueries === 1) calls.push(call.layer);
      dense.attend(call);
    } };
    const gpu = new Model(rt, config, new StoreSource(rt, weights), counting);
    try {
      assert.match(gpu.decodeGraphUnsupported ?? '', /not the dense/);
      const prompt = Array.from({ length: 40 }, (_, i) => (i * 13 + 1) % config.vocabSize);
      const [r] = generateOnDevice(gpu, [prompt], { maxNewTokens: 4 });
      assert.equal(r.generatedTokens, 4);
      // Three steps are fed back (the last id never is), each through every layer.
      assert.equal(calls.length, 3 * config.numLayers);
    } finally {
      gpu.dispose();
    }
  });
});

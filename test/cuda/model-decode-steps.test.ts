/**
 * The decode step taken apart (CudaTransformerModel.captureDecodeStepSubset, what
 * bench/decode-step-breakdown.ts times): a subset graph keeps exactly the nodes its filter accepts, and
 * the step with every node but advance_position replays at one position and picks the id the full
 * captured step picks for the same token there. fuseSmallNodes (add + RMSNorm, bias + RoPE + K/V append
 * in one launch each) gives the same bits as the separate kernels: the same greedy ids from graph steps
 * and identical logits after them, and identical prefill logits. GPU only (skipped with the reason elsewhere).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';
import type { CudaTransformerModel, StepNodeKind } from '../../src/backends/cuda/model.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { parseModelConfig } from '../../src/engine/config.js';
import { TransformerModel } from '../../src/engine/model.js';
import { densePlan } from '../../src/methods/dense.js';
import type { ModelConfig } from '../../src/engine/model-config.js';
import { InMemoryWeights, type WeightStore } from '../../src/engine/weights.js';
import { tinyConfigJson, tinyTensors, type TinyArch } from '../helpers/tiny-checkpoint.js';
import { cudaSkip } from './cuda-skip.js';
import { countNaN, top2 } from './helpers.js';

const skip = cudaSkip('CUDA decode-step subset tests');

/** The model's decode-path settings, every one given, so a test does not depend on the defaults of the day. */
interface DecodeSettings {
  gemvForOneToken: boolean;
  fuseSmallNodes: boolean;
  programmaticGemv: boolean;
  foldIntoGemv: boolean;
  deepGemvLoads: boolean;
}
const PLAIN: DecodeSettings = { gemvForOneToken: false, fuseSmallNodes: false, programmaticGemv: false, foldIntoGemv: false, deepGemvLoads: false };
function apply(model: CudaTransformerModel, s: DecodeSettings): void {
  model.gemvForOneToken = s.gemvForOneToken;
  model.fuseSmallNodes = s.fuseSmallNodes;
  model.programmaticGemv = s.programmaticGemv;
  model.foldIntoGemv = s.foldIntoGemv;
  model.deepGemvLoads = s.deepGemvLoads;
}

/** A tiny config widened so decode runs the split-K kernel (as in model.test.ts). */
function wideConfig(arch: TinyArch, headDim: number, extra: Record<string, unknown> = {}): { config: ModelConfig; weights: WeightStore } {
  const json = { ...tinyConfigJson(arch, { ropeScaling: arch === 'llama' ? 'llama3' : 'none', numLayers: 3 }), head_dim: headDim, hidden_size: 128, intermediate_size: 256, ...extra };
  const config = parseModelConfig(json, `wide ${arch}`);
  const weights = new InMemoryWeights(new Map(tinyTensors(json, 91).map((t) => [t.name, { shape: t.shape, data: t.data }])));
  return { config, weights };
}

describe('CUDA decode step subsets', { skip }, () => {
  let rt: CudaRuntime;
  let Model: typeof CudaTransformerModel;
  let StoreSource: typeof import('../../src/backends/cuda/weight-source.js').StoreWeightSource;
  before(async () => {
    rt = new (await import('../../src/backends/cuda/runtime.js')).CudaRuntime();
    Model = (await import('../../src/backends/cuda/model.js')).CudaTransformerModel;
    StoreSource = (await import('../../src/backends/cuda/weight-source.js')).StoreWeightSource;
  });
  after(() => rt?.dispose());

  for (const [arch, D] of [['llama', 128], ['qwen2', 64]] as const) {
    test(`${arch} D=${D}: subsets count their nodes; all but advance_position replays in place and matches the full step`, () => {
      const { config, weights } = wideConfig(arch, D);
      const gpu = new Model(rt, config, new StoreSource(rt, weights));
      // The separate small kernels (the counts below), whatever the defaults.
      apply(gpu, { ...PLAIN, gemvForOneToken: true });
      const seq = gpu.newSequence(64);
      try {
        const prompt = Array.from({ length: 40 }, (_, i) => (i * 17 + 5) % config.vocabSize);
        const logits = gpu.prefill(seq, prompt, 1); // one token at a time: the decode kernels only, no prefill compiles
        let next = gpu.argmaxRows(logits)[0];
        rt.pool.release(logits);
        for (let i = 0; i < 3; i++) next = gpu.decodeGreedy(seq, next);
        assert.ok(seq.decodeGraph !== null, 'the full step was captured');

        const counted = (kind: StepNodeKind): number => {
          let calls = 0;
          const g = gpu.captureDecodeStepSubset(seq, (k) => k === kind && ++calls > 0);
          g.dispose();
          return calls;
        };
        const L = config.numLayers;
        assert.equal(counted('qkv_gemm'), L);
        assert.equal(counted('attention'), L);
        assert.equal(counted('residual_add'), 2 * L);
        assert.equal(counted('lm_head'), 1);
        assert.equal(counted('qkv_bias'), arch === 'qwen2' ? L : 0);

        const position = seq.position;
        const subset = gpu.captureDecodeStepSubset(seq, (k) => k !== 'advance_position');
        let ids: number[];
        try {
          ids = [subset.step(next, position), subset.step(next, position)];
          subset.replayAsync();
          subset.replayAsync();
          ids.push(subset.step(next, position));
        } finally {
          subset.dispose();
        }
        assert.equal(seq.position, position, 'the subset leaves the sequence where it was');
        const full = gpu.decodeGreedy(seq, next);
        assert.deepEqual(ids, [full, full, full], 'the same nodes at the same position pick the same id');
      } finally {
        seq.release();
        gpu.dispose();
      }
    });
  }

  const FUSED_CASES: { name: string; arch: TinyArch; D: number; extra?: Record<string, unknown> }[] = [
    { name: 'llama D=128', arch: 'llama', D: 128 },
    { name: 'qwen2 D=64 (q/k/v bias in the fused launch)', arch: 'qwen2', D: 64 },
    { name: 'gemma3 D=256 (q/k norms, window 16, softcap)', arch: 'gemma3', D: 256, extra: { sliding_window: 16, final_logit_softcapping: 10 } },
    { name: 'qwen3 D=128 (q/k norms before the fused RoPE + append; folded GEMVs)', arch: 'qwen3', D: 128 },
  ];
  for (const f of FUSED_CASES) {
    test(`${f.name}: fuseSmallNodes gives the same bits (prefill logits, graph-step ids, logits after the steps), with cuBLAS and with the GEMV`, () => {
      const { config, weights } = wideConfig(f.arch, f.D, f.extra);
      const V = config.vocabSize;
      const gpu = new Model(rt, config, new StoreSource(rt, weights));
      const download = (buf: DeviceBuffer, n: number): Float32Array => {
        rt.synchronize();
        const out = new Float32Array(n);
        rt.cuda.download(out, buf.ptr);
        rt.pool.release(buf);
        return out;
      };
      const prompt = Array.from({ length: 70 }, (_, i) => (i * 23 + 7) % V);
      const run = (gemvForFused: boolean, fuse: boolean) => {
        apply(gpu, { ...PLAIN, gemvForOneToken: gemvForFused, fuseSmallNodes: fuse });
        // Chunks of one token: the split-K decode kernel serves them, so no prefill kernel is compiled.
        const prefillLogits = gpu.logits(prompt, 1);
        const seq = gpu.newSequence(prompt.length + 12);
        try {
          const first = gpu.prefill(seq, prompt, 1);
          let next = gpu.argmaxRows(first)[0];
          rt.pool.release(first);
          const ids = [next];
          for (let i = 0; i < 8; i++) ids.push(next = gpu.decodeGreedy(seq, next));
          assert.ok(seq.decodeGraph !== null && gpu.decodeGraphFailure === null, `${f.name}: graph steps (fuse ${fuse})`);
          const after = download(gpu.forward(seq, [(next * 5 + 3) % V], 'last')!, V);
          return { prefillLogits, ids, after };
        } finally {
          seq.release();
        }
      };
      try {
        for (const gemv of [false, true]) {
          const plain = run(gemv, false), fused = run(gemv, true);
          // The unfused graph steps against the CPU engine: each id its greedy pick unless its margin is too thin to call.
          const all = new TransformerModel(config, weights).logits([...prompt, ...plain.ids.slice(0, -1)], densePlan());
          for (let i = 1; i < plain.ids.length; i++) {
            const t = top2(all.subarray((prompt.length + i - 1) * V, (prompt.length + i) * V));
            if (t.best !== plain.ids[i]) assert.ok(t.margin <= 0.03 * t.scale, `${f.name}: graph step ${i} picked ${plain.ids[i]}, CPU ${t.best} with a clear margin`);
          }
          assert.equal(countNaN(fused.after), 0);
          assert.deepEqual(fused.ids, plain.ids, 'greedy ids of the graph steps');
          const differs = (a: Float32Array, b: Float32Array) => a.findIndex((v, i) => !Object.is(v, b[i]));
          assert.equal(differs(fused.prefillLogits, plain.prefillLogits), -1, 'prefill logits (add + RMSNorm fused)');
          assert.equal(differs(fused.after, plain.after), -1, 'logits of an eager step after the graph steps');
        }
      } finally {
        gpu.dispose();
      }
    });
  }

  test('gemvForOneToken: graph-step ids as the CPU engine picks them, logits after the steps within bf16 noise of cuBLAS; programmaticGemv, fuseSmallNodes and foldIntoGemv the same bits', () => {
    for (const f of FUSED_CASES) {
      const { config, weights } = wideConfig(f.arch, f.D, f.extra);
      const V = config.vocabSize;
      const gpu = new Model(rt, config, new StoreSource(rt, weights));
      const prompt = Array.from({ length: 50 }, (_, i) => (i * 31 + 2) % V);
      const run = (gemv: boolean, programmatic = false, fuse = false, fold = false, deep = false) => {
        apply(gpu, { gemvForOneToken: gemv, programmaticGemv: programmatic, fuseSmallNodes: fuse, foldIntoGemv: fold, deepGemvLoads: deep });
        const seq = gpu.newSequence(prompt.length + 12);
        try {
          const first = gpu.prefill(seq, prompt, 1);
          let next = gpu.argmaxRows(first)[0];
          rt.pool.release(first);
          const ids = [next];
          for (let i = 0; i < 8; i++) ids.push(next = gpu.decodeGreedy(seq, next));
          assert.ok(seq.decodeGraph !== null && gpu.decodeGraphFailure === null, `${f.name}: graph steps (gemv ${gemv})`);
          const buf = gpu.forward(seq, [(next * 5 + 3) % V], 'last')!;
          rt.synchronize();
          const after = new Float32Array(V);
          rt.cuda.download(after, buf.ptr);
          rt.pool.release(buf);
          return { ids, after };
        } finally {
          seq.release();
        }
      };
      try {
        const blasRun = run(false), gemvRun = run(true);
        assert.equal(countNaN(gemvRun.after), 0);
        // Launched as programmatic dependents the GEMVs do the same sums after the same wait, and the fused
        // small kernels give the same bits as the separate ones: both combined, still the same bits.
        // foldIntoGemv (norms, residual adds, gated activation inside the GEMVs) too, with and without.
        for (const [programmatic, fuse, fold, deep] of [[true, false, false, false], [true, true, false, false], [false, false, true, false], [true, true, true, false], [false, false, false, true], [true, true, false, true], [true, true, true, true]]) {
          const what = `${f.name}: GEMV path with programmatic ${programmatic}, fused ${fuse}, folded ${fold}, deep ${deep}`;
          const other = run(true, programmatic, fuse, fold, deep);
          assert.deepEqual(other.ids, gemvRun.ids, `${what}: ids`);
          assert.equal(other.after.findIndex((v, i) => !Object.is(v, gemvRun.after[i])), -1, `${what}: logits after the steps`);
        }
        const all = new TransformerModel(config, weights).logits([...prompt, ...gemvRun.ids.slice(0, -1)], densePlan());
        for (let i = 0; i < gemvRun.ids.length; i++) {
          const t = top2(all.subarray((prompt.length + i - 1) * V, (prompt.length + i) * V));
          if (t.best !== gemvRun.ids[i]) assert.ok(t.margin <= 0.03 * t.scale, `${f.name}: gemv step ${i} picked ${gemvRun.ids[i]}, CPU ${t.best} with a clear margin`);
        }
        let num = 0, den = 0;
        for (let i = 0; i < V; i++) {
          num += (gemvRun.after[i] - blasRun.after[i]) ** 2;
          den += blasRun.after[i] ** 2;
        }
        // Identical histories give rel L2 ~1e-3 (bf16 roundings of other fp32 sums); diverged ids would show more.
        const sameIds = gemvRun.ids.every((id, i) => id === blasRun.ids[i]);
        console.log(`# ${f.name}: gemv vs cuBLAS ids ${sameIds ? 'equal' : 'differ'}, logits after rel L2 ${Math.sqrt(num / den).toExponential(2)}`);
        if (sameIds) assert.ok(Math.sqrt(num / den) < 2e-2, `${f.name}: logits after the steps differ by ${Math.sqrt(num / den)} (rel L2)`);
      } finally {
        gpu.dispose();
      }
    }
  });
});

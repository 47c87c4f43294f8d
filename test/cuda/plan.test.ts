/**
 * The GPU method plan (src/backends/cuda/methods/plan.ts) inside the whole CudaTransformerModel, on
 * small random checkpoints wide enough for the sparse kernels (head dim 128 / 64, GQA group 2):
 *   - the dense plan gives the model's own dense attention bit for bit, sliding layers included;
 *   - every registered GPU method at sparsity 0, where its CPU reference attends every pair, gives
 *     dense logits (prefill and teacher-forced decode steps, within bf16 tolerance);
 *   - the plan's pair counts equal the CPU engine's for the same method, prompt and steps;
 *   - an experiment with `backend: cuda` and the sparse methods records every example with the
 *     achieved sparsity the CPU run records.
 * Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CudaTransformerModel } from '../../src/backends/cuda/model.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';
import { parseModelConfig } from '../../src/engine/config.js';
import type { AttentionCounts } from '../../src/engine/forward-state.js';
import { generateTokens } from '../../src/engine/generate.js';
import type { ModelConfig } from '../../src/engine/model-config.js';
import { TransformerModel } from '../../src/engine/model.js';
import { writeSafetensors } from '../../src/engine/safetensors-writer.js';
import { InMemoryWeights, type WeightStore } from '../../src/engine/weights.js';
import { createAttentionPlan, getMethod } from '../../src/methods/index.js';
import { echoGetTask } from '../experiments/echo-task.js';
import { toPythonStyleJson } from '../helpers/python-json.js';
import { type TinyArch, tinyConfigJson, tinyTensors } from '../helpers/tiny-checkpoint.js';
import { TINY_BOS_ID, TINY_EOS_ID, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { countNaN } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA plan tests');

/** Sparse kernels vs dense kernels, both bf16: per logits row max |Δ| ≤ ROW_BOUND · max |row|. */
const ROW_BOUND = 0.03;
const PROMPT = 300;
const STEPS = 4;

/** A tiny architecture widened to head dim D (hidden 128, 2 layers, H 4, Hkv 2), positions up to 1024. */
function wideJson(arch: TinyArch, headDim: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...tinyConfigJson(arch), head_dim: headDim, hidden_size: 128, intermediate_size: 256, max_position_embeddings: 1024, ...extra };
}

function wideModel(json: Record<string, unknown>): { config: ModelConfig; weights: WeightStore } {
  const config = parseModelConfig(json, 'wide test config');
  const weights = new InMemoryWeights(new Map(tinyTensors(json, 91).map((t) => [t.name, { shape: t.shape, data: t.data }])));
  return { config, weights };
}

function promptOf(n: number, V: number, salt = 0): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + 11 + salt * 101) % V);
}

/** Whether the CPU reference attends every pair of this prompt and these steps (so the GPU must give dense). */
function cpuIsDense(cpu: TransformerModel, method: string, prompt: number[]): boolean {
  const [r] = generateTokens(cpu, [prompt], { plan: createAttentionPlan(method, { sparsity: 0 }), maxNewTokens: STEPS, stopTokenIds: [], chunkSize: 64 });
  for (const p of [r.counts.prefill, r.counts.decode]) for (let i = 0; i < p.dense.length; i++) if (p.attended[i] !== p.dense[i]) return false;
  return true;
}

function rowError(got: Float32Array, ref: Float32Array): number {
  let worst = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return worst / scale;
}

describe('GPU method plan in the whole model', { skip }, () => {
  let rt: CudaRuntime;
  let mod: {
    Model: typeof CudaTransformerModel;
    StoreWeightSource: typeof import('../../src/backends/cuda/weight-source.js').StoreWeightSource;
    PlanDeviceAttention: typeof import('../../src/backends/cuda/methods/plan.js').PlanDeviceAttention;
    registry: typeof import('../../src/backends/cuda/methods/index.js');
    generateTokensOnDevice: typeof import('../../src/backends/cuda/generate.js').generateTokensOnDevice;
  };
  before(async () => {
    rt = new (await import('../../src/backends/cuda/runtime.js')).CudaRuntime();
    mod = {
      Model: (await import('../../src/backends/cuda/model.js')).CudaTransformerModel,
      StoreWeightSource: (await import('../../src/backends/cuda/weight-source.js')).StoreWeightSource,
      PlanDeviceAttention: (await import('../../src/backends/cuda/methods/plan.js')).PlanDeviceAttention,
      registry: await import('../../src/backends/cuda/methods/index.js'),
      generateTokensOnDevice: (await import('../../src/backends/cuda/generate.js')).generateTokensOnDevice,
    };
  });
  after(() => rt?.dispose());

  /** Last-prompt-token logits, then STEPS teacher-forced decode steps' logits, [1 + STEPS, V]. */
  function runLogits(model: CudaTransformerModel, plan: InstanceType<typeof mod.PlanDeviceAttention> | null, prompt: number[], forced: number[], chunk: number): Float32Array {
    const V = model.config.vocabSize;
    const out = new Float32Array((1 + forced.length) * V);
    const seq = model.newSequence(prompt.length + forced.length + 1);
    const take = (buf: DeviceBuffer, row: number) => {
      rt.synchronize();
      rt.cuda.download(out.subarray(row * V, (row + 1) * V), buf.ptr);
      rt.pool.release(buf);
    };
    try {
      plan?.startSequence(prompt.length);
      take(model.prefill(seq, prompt, plan?.requiresWholePrompt ? prompt.length : chunk), 0);
      forced.forEach((t, i) => take(model.forward(seq, [t], 'last')!, i + 1));
    } finally {
      rt.synchronize();
      plan?.reset();
      seq.release();
    }
    return out;
  }

  test('the dense plan is the model\'s dense attention bit for bit (gemma3 D=128, sliding window 16; chunks of 64)', () => {
    const { config, weights } = wideModel(wideJson('gemma3', 128, { sliding_window: 16 }));
    const { Model, StoreWeightSource, PlanDeviceAttention, registry } = mod;
    const plain = new Model(rt, config, new StoreWeightSource(rt, weights));
    const plan = PlanDeviceAttention.onDevice(rt, config, registry.createDeviceAttentionPlan(rt, config, 'dense'));
    const planned = new Model(rt, config, new StoreWeightSource(rt, weights), plan);
    try {
      const prompt = promptOf(PROMPT, config.vocabSize);
      const forced = promptOf(STEPS, config.vocabSize, 1);
      const a = runLogits(plain, null, prompt, forced, 64);
      const b = runLogits(planned, plan, prompt, forced, 64);
      assert.equal(countNaN(b), 0);
      assert.deepEqual(b, a);
    } finally {
      plan.dispose();
      plain.dispose();
      planned.dispose();
    }
  });

  for (const [arch, D] of [['llama', 128], ['qwen2', 64]] as const) {
    test(`${arch} D=${D}: each GPU method at sparsity 0 gives dense logits where its CPU reference attends every pair`, () => {
      const { config, weights } = wideModel(wideJson(arch, D));
      const { Model, StoreWeightSource, PlanDeviceAttention, registry } = mod;
      const cpu = new TransformerModel(config, weights);
      const plan = PlanDeviceAttention.onDevice(rt, config, registry.createDeviceAttentionPlan(rt, config, 'dense'));
      const model = new Model(rt, config, new StoreWeightSource(rt, weights), plan);
      try {
        const prompt = promptOf(PROMPT, config.vocabSize);
        const forced = promptOf(STEPS, config.vocabSize, 2);
        const dense = runLogits(model, plan, prompt, forced, 64);
        let compared = 0;
        for (const entry of registry.listDeviceMethods()) {
          const id = entry.factory.methodId;
          const reason = entry.factory.unsupported(config);
          if (reason) {
            console.log(`# ${id}: not on this shape (${reason})`);
            continue;
          }
          try {
            createAttentionPlan(id, { sparsity: 0 });
          } catch (e) {
            console.log(`# ${id}: sparsity 0 refused by the CPU registry (${(e as Error).message})`);
            continue;
          }
          if (!cpuIsDense(cpu, id, prompt)) {
            console.log(`# ${id}: its CPU reference drops pairs at sparsity 0 (forced budgets); not compared with dense`);
            continue;
          }
          plan.use(registry.createDeviceAttentionPlan(rt, config, id, { sparsity: 0 }));
          const got = runLogits(model, plan, prompt, forced, 64);
          assert.equal(countNaN(got), 0, `${id}: NaN in logits`);
          const V = config.vocabSize;
          for (let r = 0; r <= STEPS; r++) {
            const e = rowError(got.subarray(r * V, (r + 1) * V), dense.subarray(r * V, (r + 1) * V));
            assert.ok(e <= ROW_BOUND, `${id}: row ${r} (${r === 0 ? 'prefill' : `decode step ${r}`}) max |Δ| is ${e.toExponential(2)} of max |logit|`);
          }
          console.log(`# ${id} s=0 equals dense (${1 + STEPS} logits rows)`);
          compared++;
        }
        console.log(`# ${arch} D=${D}: ${compared} methods compared with dense`);
      } finally {
        plan.dispose();
        model.dispose();
      }
    });
  }

  test('the plan\'s pair counts equal the CPU engine\'s for each GPU method (llama D=128, s = 0.5, 4 decode steps)', () => {
    const { config, weights } = wideModel(wideJson('llama', 128));
    const { Model, StoreWeightSource, PlanDeviceAttention, registry, generateTokensOnDevice } = mod;
    const cpu = new TransformerModel(config, weights);
    const plan = PlanDeviceAttention.onDevice(rt, config, registry.createDeviceAttentionPlan(rt, config, 'dense'));
    const model = new Model(rt, config, new StoreWeightSource(rt, weights), plan);
    const prompt = promptOf(PROMPT, config.vocabSize, 3);
    const compare = (id: string, got: AttentionCounts, ref: AttentionCounts) => {
      for (const phase of ['prefill', 'decode'] as const) {
        assert.deepEqual(Array.from(got[phase].dense), Array.from(ref[phase].dense), `${id} ${phase}: dense pair counts`);
        const g = got[phase].attended, r = ref[phase].attended;
        const differing = g.filter((x, i) => x !== r[i]).length;
        if (differing === 0) continue;
        // Content-dependent selections see bf16 activations on the GPU and float32 ones on the CPU:
        // near-ties may go either way (a few pairs); a per-head adaptive budget (FlexPrefill's
        // coverage threshold) may move further.
        const sum = (a: Float64Array) => a.reduce((s, x) => s + x, 0);
        const rel = Math.abs(sum(g) - sum(r)) / sum(r);
        const bound = getMethod(id).taxonomy.budget === 'adaptive per head' ? 0.1 : 0.01;
        console.log(`# ${id} ${phase}: ${differing} of ${g.length} head counts differ from the CPU's; totals within ${(100 * rel).toFixed(3)}%`);
        assert.ok(rel <= bound, `${id} ${phase}: attended pairs ${sum(g)} on the GPU vs ${sum(r)} on the CPU (bound ${bound})`);
      }
    };
    try {
      for (const id of registry.deviceMethodIds()) {
        if (id !== 'dense' && registry.listDeviceMethods().find((e) => e.factory.methodId === id)!.factory.unsupported(config)) continue;
        const options = id === 'dense' ? {} : { sparsity: 0.5 };
        const [ref] = generateTokens(cpu, [prompt], { plan: createAttentionPlan(id, options), maxNewTokens: STEPS, stopTokenIds: [], chunkSize: 64 });
        plan.use(registry.createDeviceAttentionPlan(rt, config, id, options));
        const [got] = generateTokensOnDevice(model, [prompt], { maxNewTokens: STEPS, stopTokenIds: [], chunkSize: 64 });
        assert.equal(got.generatedTokens, STEPS);
        compare(id, got.counts, ref.counts);
        console.log(`# ${id}: counts checked (GPU prefill sparsity ${sparsityOf(got.counts, 'prefill').toFixed(3)}, decode ${sparsityOf(got.counts, 'decode').toFixed(3)})`);
      }
    } finally {
      plan.dispose();
      model.dispose();
    }
  });

  test('an experiment with backend cuda runs the sparse methods and records the CPU run\'s achieved sparsity', async (t) => {
    // Imported here: the runner needs better-sqlite3 and yaml, which the GPU machine's slim node_modules
    // (tools/device/prepare.sh) lacks unless they are carried (tools/device/README.md).
    let experiments;
    try {
      experiments = {
        ...(await import('../../src/experiments/results-db.js')),
        ...(await import('../../src/experiments/runner.js')),
        ...(await import('../../src/experiments/spec.js')),
      };
    } catch (e) {
      t.skip(`the experiment runner cannot load here: ${(e as Error).message.split('\n')[0]}`);
      return;
    }
    const { ResultsDb, runExperiment, parseExperimentSpec } = experiments;
    const root = mkdtempSync(join(tmpdir(), 'sf-cuda-plan-exp-'));
    try {
      const json = wideJson('llama', 128);
      const modelDir = join(root, 'wide');
      writeWideCheckpoint(modelDir, json);
      const config = parseModelConfig(json);
      const methods = mod.registry.listDeviceMethods().filter((e) => e.factory.unsupported(config) === null).map((e) => e.factory.methodId);
      assert.ok(methods.length > 0, 'at least one sparse GPU method runs on this shape');
      const input = {
        name: 'cuda-plan', models: [{ path: modelDir, name: 'wide' }], tasks: ['echo'], lengths: [160], examples: 2,
        generation: { maxNewTokens: 3 }, chunkSize: 64, methods, sparsities: [0.5],
      };
      const lines: string[] = [];
      const gpu = await runExperiment({ dir: join(root, 'gpu'), spec: parseExperimentSpec({ ...input, backend: 'cuda' }), getTask: echoGetTask, log: (l) => lines.push(l) });
      assert.equal(gpu.backend, 'cuda', lines.join('\n'));
      assert.equal(gpu.failedExamples.length, 0, lines.join('\n'));
      const cpu = await runExperiment({ dir: join(root, 'cpu'), spec: parseExperimentSpec({ ...input, backend: 'cpu' }), getTask: echoGetTask });
      const rows = (dir: string) => {
        const db = ResultsDb.openDir(dir);
        try {
          return new Map(db.examples().map((e) => [`${e.configKey}#${e.exampleIndex}`, e]));
        } finally {
          db.close();
        }
      };
      const g = rows(join(root, 'gpu')), c = rows(join(root, 'cpu'));
      assert.deepEqual([...g.keys()].sort(), [...c.keys()].sort());
      assert.equal(g.size, gpu.recorded);
      for (const [key, e] of g) {
        const ref = c.get(key)!;
        console.log(`# ${key}: sparsity prefill ${e.prefillSparsity} / decode ${e.decodeSparsity} (CPU ${ref.prefillSparsity} / ${ref.decodeSparsity})`);
        // Decode sparsity over the generated steps: equal when both runs generated as many tokens.
        if (e.outputTokens !== ref.outputTokens) continue;
        const bound = getMethod(e.method).taxonomy.budget === 'adaptive per head' ? 0.1 : 0.01; // as in the counts test
        for (const k of ['prefillSparsity', 'decodeSparsity'] as const) {
          assert.ok(Math.abs((e[k] ?? 0) - (ref[k] ?? 0)) <= bound, `${key} ${k}: GPU ${e[k]} vs CPU ${ref[k]}`);
        }
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

function sparsityOf(c: AttentionCounts, phase: 'prefill' | 'decode'): number {
  const p = c[phase];
  const a = p.attended.reduce((s, x) => s + x, 0), d = p.dense.reduce((s, x) => s + x, 0);
  return d === 0 ? 0 : 1 - a / d;
}

/** A checkpoint directory of the widened config: bf16 safetensors, the tiny tokenizer, generation config. */
function writeWideCheckpoint(dir: string, json: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  writeTinyTokenizer(dir);
  writeSafetensors(join(dir, 'model.safetensors'), tinyTensors(json, 91), { dtype: 'BF16', metadata: { format: 'pt' } });
  writeFileSync(join(dir, 'config.json'), toPythonStyleJson(json));
  writeFileSync(join(dir, 'generation_config.json'), toPythonStyleJson({ bos_token_id: TINY_BOS_ID, eos_token_id: [TINY_EOS_ID], pad_token_id: null, do_sample: false }));
}

/**
 * One task prompt through the CPU engine's dense prefill, keeping every layer's rotated q and cached keys:
 * the inputs the CPU Block-Sparse studies (block-sparse-union-cpu, block-sparse-chunk-recall) select on.
 */
import type { HeadCounts, PrefillAttention, PrefillCall } from '../src/engine/attention.js';
import { loadCheckpoint } from '../src/engine/checkpoint.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { TransformerModel } from '../src/engine/model.js';
import { densePlan } from '../src/methods/dense.js';
import { getTask } from '../src/tasks/index.js';

/** One layer's whole-prompt inputs: q [n, H, D], keys per KV head [n, D]. */
export interface LayerQk { q: Float32Array; keys: Float32Array[] }

/** Dense prefill that keeps a copy of every layer's rotated q and cached keys (whole prompt in one call). */
class QkRecorder implements PrefillAttention {
  readonly id = 'qk-recorder';
  readonly requiresWholePrompt = true;
  readonly layers: LayerQk[] = [];
  constructor(private readonly inner: PrefillAttention) {}

  prefill(call: PrefillCall): HeadCounts {
    const { numHeads: H, headDim: D } = call.shape;
    const n = call.numQueries;
    if (call.queryStart !== 0) throw new Error(`q/k recorder: layer ${call.layer} got a chunk at ${call.queryStart}, need the whole prompt`);
    this.layers.push({ q: call.queries.slice(0, n * H * D), keys: call.cache.keys.map((k) => k.slice(0, n * D)) });
    return this.inner.prefill(call);
  }
}

/**
 * Loads `model`, builds `task`'s first example at `length` with `seed`, prefills it densely on the CPU and
 * returns each layer's q/k (prints one line: the prompt's length and the prefill's time).
 */
export function recordPromptQk(model: string, task: string, length: number, seed: number): { config: ModelConfig; n: number; layers: LayerQk[] } {
  const ckpt = loadCheckpoint(model);
  const config = ckpt.config;
  const ex = getTask(task).generate({ tokenizer: ckpt.tokenizer, length, count: 1, seed })[0];
  const n = ex.inputIds.length;
  const dense = densePlan();
  const recorder = new QkRecorder(dense.prefill);
  const plan = { prefill: recorder, decode: dense.decode };
  const t0 = performance.now();
  const cpu = new TransformerModel(config, ckpt.weights);
  cpu.prefill(cpu.newSequence(plan), ex.inputIds, plan, n);
  console.log(`${task} n=${n} (target ${length}, seed ${seed}): CPU dense prefill ${((performance.now() - t0) / 1000).toFixed(1)} s, ${recorder.layers.length} layers recorded`);
  return { config, n, layers: recorder.layers };
}

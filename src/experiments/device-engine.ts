/**
 * The GPU side of an experiment run with backend cuda: one checkpoint uploaded to the GPU model
 * (src/backends/cuda) and greedy generation with the CPU engine's SequenceResult shape, so the slot
 * runner records GPU examples exactly as CPU ones. Attention runs through one PlanDeviceAttention
 * (src/backends/cuda/methods/plan.ts) whose method pair is switched per configuration: the sparse
 * method in its phase, dense in the other, sliding layers dense; pair counts (achieved sparsity, the
 * attention FLOPs) are the ones the methods report, as on the CPU. Every CUDA module is imported here,
 * lazily: the slot runner imports this module only when the resolved backend is cuda.
 */
import type { Checkpoint } from '../engine/checkpoint.js';
import type { SequenceResult } from '../engine/generate.js';
import type { PlanOptions } from '../methods/types.js';

export interface DeviceGenerateRequest {
  maxNewTokens: number;
  stopTokenIds: number[];
  chunkSize: number;
  /** Attention method id (the CPU registry's) and its options ({} for dense). */
  method: string;
  methodOptions: PlanOptions;
}

export interface DeviceEngine {
  /** Which GPU and how the weights went up, for the run's log. */
  readonly description: string;
  /** Throws, naming the method, when it cannot run on the GPU for this model (nothing is allocated). */
  check(method: string, methodOptions: PlanOptions): void;
  /** Greedy generation of one prompt (token ids) under the requested method. */
  generate(prompt: number[], request: DeviceGenerateRequest): SequenceResult;
  /** Frees the weights, the methods' state and the CUDA context. */
  dispose(): void;
}

export async function openDeviceEngine(ckpt: Checkpoint): Promise<DeviceEngine> {
  const { CudaRuntime } = await import('../backends/cuda/runtime.js');
  const { CudaTransformerModel } = await import('../backends/cuda/model.js');
  const { StoreWeightSource } = await import('../backends/cuda/weight-source.js');
  const { generateTokensOnDevice } = await import('../backends/cuda/generate.js');
  const { checkDeviceMethod, createDeviceAttentionPlan } = await import('../backends/cuda/methods/index.js');
  const { PlanDeviceAttention } = await import('../backends/cuda/methods/plan.js');
  type MethodPair = ReturnType<typeof createDeviceAttentionPlan>;
  const rt = new CudaRuntime();
  try {
    const t0 = performance.now();
    const config = ckpt.config;
    const source = new StoreWeightSource(rt, ckpt.weights);
    const plan = PlanDeviceAttention.onDevice(rt, config, createDeviceAttentionPlan(rt, config, 'dense'));
    const model = new CudaTransformerModel(rt, config, source, plan);
    const seconds = (performance.now() - t0) / 1000;
    // Method objects are made once per (method, options) and reused: they keep compiled kernels and
    // scratch; reset() between sequences drops their per-sequence state.
    const pairs = new Map<string, MethodPair>();
    let current = '';
    const select = (method: string, options: PlanOptions): void => {
      const key = JSON.stringify([method, options.sparsity ?? null, options.params ?? {}]);
      if (key === current) return;
      let pair = pairs.get(key);
      if (!pair) pairs.set(key, (pair = createDeviceAttentionPlan(rt, config, method, options)));
      plan.use(pair);
      current = key;
    };
    return {
      description:
        `on ${rt.cuda.info.name} (${(model.weightBytes / 2 ** 30).toFixed(2)} GiB bf16 weights, ${source.counts.raw} tensors uploaded as stored, ` +
        `${source.counts.converted} converted, in ${seconds.toFixed(2)} s)`,
      check: (method, options) => checkDeviceMethod(config, method, options),
      generate: (prompt, request) => {
        select(request.method, request.methodOptions);
        return generateTokensOnDevice(model, [prompt], request)[0];
      },
      dispose: () => {
        plan.dispose();
        model.dispose();
        rt.dispose();
      },
    };
  } catch (e) {
    rt.dispose();
    throw e;
  }
}

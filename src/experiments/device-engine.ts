/**
 * The GPU side of an experiment run with backend cuda: one checkpoint uploaded to the GPU model
 * (src/backends/cuda, dense attention) and greedy generation with the CPU engine's SequenceResult
 * shape, so the slot runner records GPU examples exactly as CPU ones (pair counts are the dense
 * counts, FLOPs and timings alike). Every CUDA module is imported here, lazily: the slot runner
 * imports this module only when the resolved backend is cuda.
 */
import type { Checkpoint } from '../engine/checkpoint.js';
import type { SequenceResult } from '../engine/generate.js';

export interface DenseDeviceEngine {
  /** Which GPU and how the weights went up, for the run's log. */
  readonly description: string;
  /** Greedy generation of one prompt (token ids) with dense attention in both phases. */
  generate(prompt: number[], options: { maxNewTokens: number; stopTokenIds: number[]; chunkSize: number }): SequenceResult;
  /** Frees the weights and the CUDA context. */
  dispose(): void;
}

export async function openDenseDeviceEngine(ckpt: Checkpoint): Promise<DenseDeviceEngine> {
  const { CudaRuntime } = await import('../backends/cuda/runtime.js');
  const { CudaTransformerModel } = await import('../backends/cuda/model.js');
  const { StoreWeightSource } = await import('../backends/cuda/weight-source.js');
  const { generateTokensOnDevice } = await import('../backends/cuda/generate.js');
  const rt = new CudaRuntime();
  try {
    const t0 = performance.now();
    const source = new StoreWeightSource(rt, ckpt.weights);
    const model = new CudaTransformerModel(rt, ckpt.config, source);
    const seconds = (performance.now() - t0) / 1000;
    return {
      description:
        `on ${rt.cuda.info.name} (${(model.weightBytes / 2 ** 30).toFixed(2)} GiB bf16 weights, ${source.counts.raw} tensors uploaded as stored, ` +
        `${source.counts.converted} converted, in ${seconds.toFixed(2)} s)`,
      generate: (prompt, options) => generateTokensOnDevice(model, [prompt], options)[0],
      dispose: () => {
        model.dispose();
        rt.dispose();
      },
    };
  } catch (e) {
    rt.dispose();
    throw e;
  }
}

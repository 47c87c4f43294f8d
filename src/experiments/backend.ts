/**
 * Which engine runs an experiment: `backend: cpu|cuda|auto` of the experiment file, or `run
 * --backend` overriding it. The GPU model (src/backends/cuda) runs dense attention and the sparse
 * methods of the GPU method registry (src/backends/cuda/methods/index.ts), so:
 *   cpu  — the CPU engine, always; the GPU is never probed.
 *   cuda — the GPU when every method of the experiment has a GPU implementation; otherwise it is
 *          refused before anything is loaded, naming the methods that have none; no usable GPU is
 *          an error.
 *   auto — the GPU when every method has a GPU implementation and a GPU is usable; otherwise the
 *          CPU, with a note saying why (the methods without one, or the probe's reason).
 * The CUDA modules are imported only when the GPU may be chosen, so CPU runs never load the driver.
 */
import type { CudaProbe } from '../backends/cuda/availability.js';
import type { ExperimentConfiguration } from './spec.js';

export const RUN_BACKENDS = ['cpu', 'cuda', 'auto'] as const;
export type RunBackend = (typeof RUN_BACKENDS)[number];
/** The engine a run ends up on. */
export type ResolvedBackend = 'cpu' | 'cuda';

export type CudaProber = () => Promise<CudaProbe>;

/** Probes the real GPU, importing the CUDA availability module only now. */
export const probeCudaLazily: CudaProber = async () => (await import('../backends/cuda/availability.js')).probeCuda();

/** The method ids with a GPU implementation. */
export type GpuMethodLister = () => Promise<string[]>;

/** Reads the GPU method registry, importing it only now. */
export const gpuMethodsLazily: GpuMethodLister = async () => (await import('../backends/cuda/methods/index.js')).deviceMethodIds();

/** `--backend` text → a backend, or an error naming the choices. */
export function parseRunBackend(text: string): RunBackend {
  if (!(RUN_BACKENDS as readonly string[]).includes(text)) throw new Error(`--backend must be one of ${RUN_BACKENDS.join(', ')}, got "${text}"`);
  return text as RunBackend;
}

/** A configuration of dense attention in both phases. */
export function runsDenseOnly(c: ExperimentConfiguration): boolean {
  return c.phase === 'dense' || c.method === 'dense';
}

/** The distinct sparse methods of the configurations, in grid order. */
export function sparseMethodsOf(configs: readonly ExperimentConfiguration[]): string[] {
  return [...new Set(configs.filter((c) => !runsDenseOnly(c)).map((c) => c.method))];
}

export interface BackendChoice {
  backend: ResolvedBackend;
  /** A line for the run's log when the choice is worth saying (auto's outcome and why). */
  note: string | null;
}

/**
 * Resolves the requested backend for these configurations. Throws, before any model is loaded, when
 * cuda is requested and cannot be honoured (methods without a GPU implementation, or no usable GPU).
 * Whether a method runs on a particular model's shape is checked when the model is loaded.
 */
export async function chooseRunBackend(
  requested: RunBackend, configs: readonly ExperimentConfiguration[], probe: CudaProber = probeCudaLazily,
  gpuMethods: GpuMethodLister = gpuMethodsLazily,
): Promise<BackendChoice> {
  if (!(RUN_BACKENDS as readonly string[]).includes(requested)) throw new Error(`backend must be one of ${RUN_BACKENDS.join(', ')}, got "${String(requested)}"`);
  if (requested === 'cpu') return { backend: 'cpu', note: null };
  const sparse = sparseMethodsOf(configs);
  const onGpu = sparse.length > 0 ? await gpuMethods() : [];
  const missing = sparse.filter((m) => !onGpu.includes(m));
  if (missing.length > 0) {
    if (requested === 'cuda') {
      throw new Error(
        `backend: cuda cannot run this experiment: these methods have no GPU implementation yet: ${missing.join(', ')} ` +
          `(methods on the GPU: ${onGpu.join(', ')}). Run it with backend cpu (or auto), or leave them out.`,
      );
    }
    return { backend: 'cpu', note: `backend auto: CPU (no GPU implementation yet for ${missing.join(', ')})` };
  }
  const gpu = await probe();
  if (!gpu.available) {
    if (requested === 'cuda') throw new Error(`backend: cuda: no usable CUDA device (${gpu.reason})`);
    return { backend: 'cpu', note: `backend auto: CPU (no usable CUDA device: ${gpu.reason})` };
  }
  const what = sparse.length > 0 ? `dense and ${sparse.join(', ')} on the GPU model` : 'dense configurations on the GPU model';
  return { backend: 'cuda', note: `backend ${requested}: CUDA (${gpu.devices} device${gpu.devices === 1 ? '' : 's'}; ${what})` };
}

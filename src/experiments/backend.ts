/**
 * Which engine runs an experiment: `backend: cpu|cuda|auto` of the experiment file, or `run
 * --backend` overriding it. The GPU model (src/backends/cuda) runs dense attention only, so:
 *   cpu  — the CPU engine, always; the GPU is never probed.
 *   cuda — the GPU for an experiment of dense configurations only; an experiment with sparse
 *          methods is refused before anything is loaded, naming them; no usable GPU is an error.
 *   auto — the GPU when the experiment is dense-only and a GPU is usable; otherwise the CPU, with a
 *          note saying why (the sparse methods, or the probe's reason).
 * The CUDA modules are imported only when the GPU is probed, so CPU runs never load the driver.
 */
import type { CudaProbe } from '../backends/cuda/availability.js';
import type { ExperimentConfiguration } from './spec.js';

export const RUN_BACKENDS = ['cpu', 'cuda', 'auto'] as const;
export type RunBackend = (typeof RUN_BACKENDS)[number];
/** The engine a run ends up on. */
export type ResolvedBackend = 'cpu' | 'cuda';

/** Why sparse configurations cannot run on the GPU (the tracking issue). */
export const SPARSE_ON_GPU_PENDING = 'sparse methods on the GPU arrive with issue 9';

export type CudaProber = () => Promise<CudaProbe>;

/** Probes the real GPU, importing the CUDA availability module only now. */
export const probeCudaLazily: CudaProber = async () => (await import('../backends/cuda/availability.js')).probeCuda();

/** `--backend` text → a backend, or an error naming the choices. */
export function parseRunBackend(text: string): RunBackend {
  if (!(RUN_BACKENDS as readonly string[]).includes(text)) throw new Error(`--backend must be one of ${RUN_BACKENDS.join(', ')}, got "${text}"`);
  return text as RunBackend;
}

/** A configuration the GPU model can run: dense attention in both phases. */
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
 * cuda is requested and cannot be honoured (sparse methods, or no usable GPU).
 */
export async function chooseRunBackend(
  requested: RunBackend, configs: readonly ExperimentConfiguration[], probe: CudaProber = probeCudaLazily,
): Promise<BackendChoice> {
  if (!(RUN_BACKENDS as readonly string[]).includes(requested)) throw new Error(`backend must be one of ${RUN_BACKENDS.join(', ')}, got "${String(requested)}"`);
  if (requested === 'cpu') return { backend: 'cpu', note: null };
  const sparse = sparseMethodsOf(configs);
  if (sparse.length > 0) {
    if (requested === 'cuda') {
      throw new Error(
        `backend: cuda cannot run this experiment: ${SPARSE_ON_GPU_PENDING}, and these methods are sparse: ${sparse.join(', ')}. ` +
          'Run it with backend cpu (or auto), or run only dense (no methods) on cuda.',
      );
    }
    return { backend: 'cpu', note: `backend auto: CPU (${SPARSE_ON_GPU_PENDING}; this experiment has ${sparse.join(', ')})` };
  }
  const gpu = await probe();
  if (!gpu.available) {
    if (requested === 'cuda') throw new Error(`backend: cuda: no usable CUDA device (${gpu.reason})`);
    return { backend: 'cpu', note: `backend auto: CPU (no usable CUDA device: ${gpu.reason})` };
  }
  return { backend: 'cuda', note: `backend ${requested}: CUDA (${gpu.devices} device${gpu.devices === 1 ? '' : 's'}; dense configurations on the GPU model)` };
}

/**
 * Whether this machine can run the CUDA backend, and if not, why: a missing driver library, no
 * device, cuInit failing, or NVRTC missing. Probed once and remembered.
 */
import { CudaUnavailableError } from './driver/check.js';
import { loadDriver, loadNvrtc } from './driver/ffi.js';
import { describeDriverError } from './context.js';

export type CudaProbe = { available: true; devices: number } | { available: false; reason: string };

let probed: CudaProbe | null = null;

export function probeCuda(): CudaProbe {
  if (probed) return probed;
  probed = runProbe();
  return probed;
}

function runProbe(): CudaProbe {
  try {
    const api = loadDriver();
    const status = api.cuInit(0);
    if (status !== 0) {
      const [name, text] = describeDriverError(api, status);
      return { available: false, reason: `cuInit failed: ${name}: ${text}` };
    }
    const count = new Int32Array(1);
    const countStatus = api.cuDeviceGetCount(count);
    if (countStatus !== 0 || count[0] === 0) return { available: false, reason: 'the CUDA driver reports no device' };
    loadNvrtc();
    return { available: true, devices: count[0] };
  } catch (err) {
    if (err instanceof CudaUnavailableError) return { available: false, reason: err.reason };
    return { available: false, reason: (err as Error).message };
  }
}

export function isCudaAvailable(): boolean {
  return probeCuda().available;
}

/** Why CUDA cannot be used here ('' when it can). */
export function cudaUnavailableReason(): string {
  const p = probeCuda();
  return p.available ? '' : p.reason;
}

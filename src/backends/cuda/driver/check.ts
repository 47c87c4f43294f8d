/**
 * The one funnel every CUDA driver and NVRTC call goes through: a non-zero status becomes a thrown
 * error that names the call, the error's enum name and the driver's own description.
 */

/** Thrown for a failed driver or NVRTC call; `code` is the raw CUresult / nvrtcResult. */
export class CudaError extends Error {
  readonly code: number;
  readonly errorName: string;
  constructor(call: string, code: number, errorName: string, description: string) {
    super(`${call} failed: ${errorName} (${code}): ${description}`);
    this.name = 'CudaError';
    this.code = code;
    this.errorName = errorName;
  }
}

/** Thrown when the machine has no usable CUDA driver, device or NVRTC; `reason` says which. */
export class CudaUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`CUDA is not available: ${reason}`);
    this.name = 'CudaUnavailableError';
  }
}

/** Describes a status code: [enum name, description]. */
export type ErrorDescriber = (code: number) => [string, string];

/** Throws a CudaError when `code` is not 0 (CUDA_SUCCESS / NVRTC_SUCCESS). */
export function checkStatus(code: number, call: string, describe: ErrorDescriber): void {
  if (code === 0) return;
  const [name, text] = describe(code);
  throw new CudaError(call, code, name, text);
}

/**
 * The skip option of a GPU test suite: false where a CUDA device is usable, else the reason, printed
 * once as a TAP comment so that a CPU-only run says which suite did not run and why.
 */
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';

/** suite: how the printed line names the tests ("CUDA Quest tests"). */
export function cudaSkip(suite: string): false | string {
  const skip = isCudaAvailable() ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
  if (skip) console.log(`# ${suite} skipped: ${skip}`);
  return skip;
}

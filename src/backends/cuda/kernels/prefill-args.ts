/**
 * Argument checks shared by the dense prefill kernels (mma.sync and wgmma): both read the same
 * tensors (flash-prefill.ts, FlashPrefillArgs) with cp.async, so both need the same guarantees.
 */
import type { FlashPrefillArgs, PrefillShape } from './flash-prefill.js';

/** The kernels' "no window" value: wider than any context. */
export const NO_WINDOW = 1 << 30;
const LOG2E = 1.4426950408889634;

/** The softmax scale as the kernels take it: exponents are computed in base 2. */
export function prefillScaleLog2(scale: number): number {
  return scale * LOG2E;
}

/**
 * Validates a launch and returns the derived row stride of q and the window (NO_WINDOW for full
 * causal). Errors start with `who`.
 */
export function checkedPrefillArgs(who: string, shape: PrefillShape, a: FlashPrefillArgs): { qRowStride: number; window: number } {
  const { numHeads: H, headDim: D } = shape;
  const T = a.numQueries;
  if (!(T > 0) || !Number.isInteger(T)) throw new Error(`${who}: numQueries must be a positive integer (got ${T})`);
  if (a.queryStart < 0 || a.kvLen < a.queryStart + 1 || a.kvLen > a.kvStride) {
    throw new Error(`${who}: need 0 <= queryStart < kvLen <= kvStride (got ${a.queryStart}, ${a.kvLen}, ${a.kvStride})`);
  }
  // cp.async moves 16-byte pieces: every tensor must start on a 16-byte boundary.
  for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['out', a.out]] as const) {
    if (ptr % 16n !== 0n) throw new Error(`${who}: ${name} must be 16-byte aligned`);
  }
  const qRowStride = a.qRowStride ?? H * D;
  if (!Number.isInteger(qRowStride) || qRowStride < H * D || qRowStride % 8 !== 0) {
    throw new Error(`${who}: qRowStride must be an integer >= H·D and a multiple of 8 (got ${qRowStride})`);
  }
  const window = a.slidingWindow ?? NO_WINDOW;
  if (!Number.isInteger(window) || window < 1) throw new Error(`${who}: sliding window must be a positive integer (got ${window})`);
  return { qRowStride, window };
}

/**
 * What the two block-sparse prefill launchers (mma.sync: block-sparse-prefill.ts, Hopper wgmma:
 * block-sparse-prefill-wgmma.ts) share: the checks of a launch's arguments, which take the same
 * tensors and chunk lists, and the growth of their per-launch workspaces.
 */
import { assertDeviceChunkSize } from '../block-sparse-layout.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaRuntime } from '../runtime.js';
import type { BlockSparsePrefillArgs } from './block-sparse-prefill.js';
import type { PrefillShape } from './flash-prefill.js';
import { checkQueryRowStride } from './vertical-slash-estimate.js';

/** Checks a launch's arguments against the shape; returns the query row stride. Errors start with `what`. */
export function checkBlockSparsePrefillArgs(what: string, shape: PrefillShape, a: BlockSparsePrefillArgs): number {
  const { numHeads: H, headDim: D } = shape;
  const T = a.numQueries;
  const l = a.lists;
  if (!(T > 0)) throw new Error(`${what}: numQueries must be positive (got ${T})`);
  if (a.kvLen < T || a.kvLen > a.kvStride) throw new Error(`${what}: need T <= kvLen <= kvStride (got ${T}, ${a.kvLen}, ${a.kvStride})`);
  if (l.numHeads !== H || l.numTokens !== T) throw new Error(`${what}: lists are for ${l.numHeads} heads x ${l.numTokens} tokens, the call has ${H} x ${T}`);
  assertDeviceChunkSize(l.chunkSize);
  for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['out', a.out]] as const) {
    if (ptr % 16n !== 0n) throw new Error(`${what}: ${name} must be 16-byte aligned`);
  }
  const qRowStride = a.qRowStride ?? H * D;
  checkQueryRowStride(what, shape, qRowStride);
  return qRowStride;
}

/**
 * `buf` when it holds `bytes`, else a larger pool buffer in its place (contents not kept); waits for
 * the stream before releasing the old one, which the previous launch may still read.
 */
export function growWorkspace(rt: CudaRuntime, buf: DeviceBuffer | null, bytes: number): DeviceBuffer {
  if (buf && buf.capacity >= bytes) return buf;
  if (buf) {
    rt.synchronize();
    rt.pool.release(buf);
  }
  return rt.pool.acquire(Math.max(4, bytes));
}

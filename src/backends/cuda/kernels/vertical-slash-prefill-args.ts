/**
 * The arguments of a Vertical-Slash prefill launch and their checks, shared by the mma.sync launcher
 * (vertical-slash-prefill.ts) and the Hopper wgmma one (vertical-slash-prefill-wgmma.ts), which take
 * the same tensors and the same device index.
 */
import type { DevicePtr } from '../context.js';
import type { PrefillShape } from './flash-prefill.js';
import { checkQueryRowStride } from './vertical-slash-estimate.js';
import type { VerticalSlashKernelIndex } from './vertical-slash-index.js';
import { PATTERN_BLOCK } from './vertical-slash-index.js';

export interface VerticalSlashPrefillArgs {
  /** [T, qRowStride] bf16 queries (head h at h·D); query t sits at position queryStart + t. */
  q: DevicePtr;
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys and values; rows [0, queryStart + T) hold positions 0.. in order. */
  k: DevicePtr;
  v: DevicePtr;
  kvStride: number;
  /** [T, H, D] bf16 output. */
  out: DevicePtr;
  numQueries: number; // T
  queryStart?: number; // default 0 (the whole prompt)
  index: VerticalSlashKernelIndex;
  /**
   * Per-row window (sink + local): query t sees a range key only if it is below sinkCount or at least
   * rowLow[t] ([T] int32 on the device). Absent: every range key up to the query's position.
   */
  rowWindow?: { rowLow: DevicePtr; sinkCount: number };
  scale: number;
}

/** The launch's scalars once every argument is checked; an error names the bad one. */
export interface CheckedVerticalSlashArgs {
  T: number;
  queryStart: number;
  qRowStride: number;
  sinkCount: number;
}

export function checkVerticalSlashPrefillArgs(what: string, shape: PrefillShape, a: VerticalSlashPrefillArgs): CheckedVerticalSlashArgs {
  const { numHeads: H, headDim: D } = shape;
  const idx = a.index;
  const T = a.numQueries, queryStart = a.queryStart ?? 0;
  if (!Number.isInteger(T) || T < 1) throw new Error(`${what}: numQueries must be a positive integer (got ${T})`);
  if (!Number.isInteger(queryStart) || queryStart < 0 || queryStart + T > a.kvStride) {
    throw new Error(`${what}: need 0 <= queryStart and queryStart + T <= kvStride (got ${queryStart}, ${T}, ${a.kvStride})`);
  }
  if (idx.numHeads !== H) throw new Error(`${what}: index is for ${idx.numHeads} heads, the shape has ${H}`);
  if (idx.numBlocks !== Math.ceil(T / PATTERN_BLOCK)) {
    throw new Error(`${what}: index has ${idx.numBlocks} query blocks, ${T} queries need ${Math.ceil(T / PATTERN_BLOCK)}`);
  }
  for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['out', a.out]] as const) {
    if (ptr % 16n !== 0n) throw new Error(`${what}: ${name} must be 16-byte aligned`);
  }
  const qRowStride = a.qRowStride ?? H * D;
  checkQueryRowStride(what, shape, qRowStride);
  const sinkCount = a.rowWindow?.sinkCount ?? 0;
  if (!Number.isInteger(sinkCount) || sinkCount < 0) throw new Error(`${what}: sinkCount must be a non-negative integer (got ${sinkCount})`);
  return { T, queryStart, qRowStride, sinkCount };
}

/**
 * Sink + local prefill (src/methods/sink-local.ts) as an index of the Vertical-Slash attention kernel:
 * per 64-row query block one key range from the earliest window start of its rows to its last row,
 * the sink tokens left of that range as listed columns, and a per-row window start (rowLow) with
 * which the kernel drops range keys between a row's sinks and its own window. Built on the host: the
 * rule has no estimate, and the index is a few integers per block.
 */
import { type SinkLocalRule, sinkLocalKeys } from '../../methods/sink-local.js';

export const SINK_LOCAL_BLOCK = 64;

/** One head's index for queries at positions queryStart .. queryStart + T - 1 (every head shares it). */
export interface SinkLocalLayout {
  numBlocks: number;
  /** [T] first local-window key of each query row. */
  rowLow: Int32Array;
  /** [2·numBlocks] per block the key range [start, end) (end = the block's last position + 1). */
  ranges: Int32Array;
  /** [numBlocks + 1] CSR offsets into columns. */
  columnStart: Int32Array;
  /** Sink columns left of each block's range, ascending. */
  columns: Int32Array;
  /** Exact attended pairs of one head, and the dense causal pairs. */
  pairs: number;
  densePairs: number;
}

export function sinkLocalLayout(rule: SinkLocalRule, queryStart: number, T: number): SinkLocalLayout {
  if (!Number.isInteger(queryStart) || queryStart < 0 || !Number.isInteger(T) || T < 1) {
    throw new Error(`sink-local layout: need queryStart >= 0 and T >= 1 (got ${queryStart}, ${T})`);
  }
  const numBlocks = Math.ceil(T / SINK_LOCAL_BLOCK);
  const rowLow = new Int32Array(T);
  const ranges = new Int32Array(2 * numBlocks);
  const columnStart = new Int32Array(numBlocks + 1);
  const columns: number[] = [];
  const keys = new Int32Array(2);
  let pairs = 0, densePairs = 0;
  for (let m = 0; m < numBlocks; m++) {
    const t0 = m * SINK_LOCAL_BLOCK, t1 = Math.min(t0 + SINK_LOCAL_BLOCK, T);
    let rangeStart = Infinity;
    for (let t = t0; t < t1; t++) {
      const p = queryStart + t;
      sinkLocalKeys(p, rule, keys);
      rowLow[t] = keys[1];
      rangeStart = Math.min(rangeStart, keys[1]);
      pairs += keys[0] + (p + 1 - keys[1]);
      densePairs += p + 1;
    }
    ranges[2 * m] = rangeStart;
    ranges[2 * m + 1] = queryStart + t1;
    // A window start is at most its position + 1, so these sinks lie at or before the block's first row.
    for (let j = 0; j < Math.min(rule.sinkTokens, rangeStart); j++) columns.push(j);
    columnStart[m + 1] = columns.length;
  }
  return { numBlocks, rowLow, ranges, columnStart, columns: Int32Array.from(columns), pairs, densePairs };
}

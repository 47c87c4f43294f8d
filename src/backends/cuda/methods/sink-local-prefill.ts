/**
 * Sink + local prefill on the GPU (src/methods/sink-local.ts, 'sink_local_prefill'): the CPU rule
 * (sinkTokens, and a fixed localWindow or the target sparsity's per-query window). On Hopper (head dims
 * 64 and 128) the dense wgmma kernel runs it with the rule inside (flash-prefill-wgmma-sink-local.ts:
 * tile 0 for the sinks, then each block's window tiles; nothing to build or upload; the kernel's variant is
 * DEFAULT_SINK_LOCAL_WINDOW_VARIANT unless one is given: sinks folded, persistent blocks, mask forms).
 * Elsewhere, or when
 * a Vertical-Slash kernel is asked for, the Vertical-Slash attention kernel runs it with a per-row window
 * (vertical-slash-sink-local.ts builds the index on the host: one range and the sinks per 64-row block).
 * Chunked prefill works as on the CPU: the rule needs no prompt length.
 */
import { type HeadCounts, emptyCounts } from '../../../engine/attention.js';
import { intParam, optionalIntParam, resolveOptions } from '../../../methods/options.js';
import { type SinkLocalRule, sinkLocalPairs, sinkLocalPrefillMethod } from '../../../methods/sink-local.js';
import type { DevicePtr } from '../context.js';
import type { PrefillShape } from '../kernels/flash-prefill.js';
import { wgmmaPrefillUnsupported } from '../kernels/flash-prefill-wgmma.js';
import {
  DEFAULT_SINK_LOCAL_WINDOW_VARIANT, type SinkLocalKernelRule, type SinkLocalWindowVariant, WgmmaSinkLocalPrefill,
  sinkLocalKernelRule,
} from '../kernels/flash-prefill-wgmma-sink-local.js';
import type { VerticalSlashKernelIndex } from '../kernels/vertical-slash-index.js';
import {
  type VerticalSlashKernelChoice, VerticalSlashFlashPrefill, type VerticalSlashPrefillArgs,
} from '../kernels/vertical-slash-prefill.js';
import type { CudaRuntime } from '../runtime.js';
import { GrowableDeviceBuffer } from '../vertical-slash-layout.js';
import { sinkLocalLayout } from '../vertical-slash-sink-local.js';
import type { DeviceMethodOptions, DevicePrefillCall, DevicePrefillFactory, DevicePrefillMethod } from './contract.js';
import { verticalSlashFamilyFactory } from './kernel-family-factories.js';
import { assertPrefillShape } from './shape-check.js';

/** An uploaded sink-local index: what the kernel reads, and one head's exact and dense pairs. */
export interface SinkLocalPreparedIndex {
  index: VerticalSlashKernelIndex;
  rowWindow: { rowLow: DevicePtr; sinkCount: number };
  pairs: { attended: number; dense: number };
}

/**
 * Which kernel runs the rule: 'window' (the dense wgmma kernel with the rule inside; Hopper, head dims 64
 * and 128), or a Vertical-Slash kernel choice (an mma.sync row tiling 1 | 2, or `{ wgmma }`).
 */
export type SinkLocalKernelChoice = 'window' | VerticalSlashKernelChoice;

export class SinkLocalDevicePrefill implements DevicePrefillMethod {
  readonly id = 'sink_local_prefill';
  readonly requiresWholePrompt = false;
  private readonly attention: VerticalSlashFlashPrefill;
  /** The window kernel and the rule in its form, when it runs the calls; null: the Vertical-Slash kernel does. */
  private readonly window: { kernel: WgmmaSinkLocalPrefill; rule: SinkLocalKernelRule } | null;
  private readonly buf: Record<'rowLow' | 'ranges' | 'rangeCount' | 'colStart' | 'colList', GrowableDeviceBuffer>;
  /**
   * One head's pairs per (queryStart, T): every layer of a prompt asks the same, and the host's loop over
   * the rows (~1 ms at 128K) would outlast the window kernel on small models, whose end the caller's timing
   * waits for.
   */
  private readonly pairsMemo = new Map<string, { attended: number; dense: number }>();

  /**
   * kernel absent: the window kernel where it runs (Hopper, head dims 64 and 128), else the Vertical-Slash
   * launcher's choice (verticalSlashKernelChoice). 'window' where it cannot run is an error naming why.
   * windowVariant: the window kernel's variant (SinkLocalWindowVariant; default DEFAULT_SINK_LOCAL_WINDOW_VARIANT;
   * ignored by the Vertical-Slash kernel).
   */
  constructor(
    private readonly rt: CudaRuntime, readonly shape: PrefillShape, readonly rule: SinkLocalRule, kernel?: SinkLocalKernelChoice,
    windowVariant: SinkLocalWindowVariant = DEFAULT_SINK_LOCAL_WINDOW_VARIANT,
  ) {
    const windowProblem = wgmmaPrefillUnsupported(rt.cuda.info, shape.headDim);
    if (kernel === 'window' && windowProblem !== null) throw new Error(`${this.id}: the window kernel cannot run here: ${windowProblem}`);
    const useWindow = kernel === 'window' || (kernel === undefined && windowProblem === null);
    if (windowVariant.mask === 'off') throw new Error(`${this.id}: the window kernel's mask 'off' gives wrong outputs (benchmarks time it on the kernel alone)`);
    this.window = useWindow ? { kernel: new WgmmaSinkLocalPrefill(rt, shape, {}, windowVariant), rule: sinkLocalKernelRule(rule) } : null;
    this.attention = new VerticalSlashFlashPrefill(rt, shape, kernel === 'window' ? undefined : kernel);
    const names = ['rowLow', 'ranges', 'rangeCount', 'colStart', 'colList'] as const;
    this.buf = Object.fromEntries(names.map((k) => [k, new GrowableDeviceBuffer(rt, `sink-local ${k}`)])) as SinkLocalDevicePrefill['buf'];
  }

  prefill(call: DevicePrefillCall): HeadCounts {
    const H = this.shape.numHeads;
    const T = call.numQueries, queryStart = call.queryStart;
    assertPrefillShape(this.id, call.layer, call.shape, this.shape);
    if (call.cache.length !== queryStart + T) {
      throw new Error(`${this.id} (layer ${call.layer}): the cache holds ${call.cache.length} rows, expected positions 0..${queryStart + T - 1}`);
    }
    const pairs = this.attend({
      q: call.q, qRowStride: call.qRowStride, k: call.cache.keys.ptr, v: call.cache.values.ptr, kvStride: call.cache.capacity,
      out: call.out, numQueries: T, queryStart, scale: call.shape.scale,
    });
    const counts = emptyCounts(H);
    counts.attended.fill(pairs.attended);
    counts.dense.fill(pairs.dense);
    return counts;
  }

  /** The kernel that runs attend(): 'window' or the Vertical-Slash kernel's. */
  get kernelLabel(): string {
    return this.window !== null ? this.window.kernel.label : 'vertical-slash';
  }

  /**
   * Enqueues the attention of T queries from queryStart (the window kernel, or the Vertical-Slash kernel
   * over an index built and uploaded first). Returns one head's pairs.
   */
  attend(a: Omit<VerticalSlashPrefillArgs, 'index' | 'rowWindow'> & { queryStart: number }): { attended: number; dense: number } {
    if (this.window !== null) {
      this.window.kernel.run({
        q: a.q, qRowStride: a.qRowStride, k: a.k, v: a.v, out: a.out, numQueries: a.numQueries, queryStart: a.queryStart,
        kvLen: a.queryStart + a.numQueries, kvStride: a.kvStride, scale: a.scale,
      }, this.window.rule);
      // Counted after the launch, so the host's loop over the rows overlaps the kernel (once per prompt shape).
      const key = `${a.queryStart}:${a.numQueries}`;
      let pairs = this.pairsMemo.get(key);
      if (pairs === undefined) {
        if (this.pairsMemo.size >= 256) this.pairsMemo.clear();
        pairs = sinkLocalPairs(this.rule, a.queryStart, a.numQueries);
        this.pairsMemo.set(key, pairs);
      }
      return pairs;
    }
    const prepared = this.prepareIndex(a.queryStart, a.numQueries);
    this.runPrepared(a, prepared);
    return prepared.pairs;
  }

  /** The kernel over an index from prepareIndex (valid until the next prepareIndex). */
  runPrepared(a: Omit<VerticalSlashPrefillArgs, 'index' | 'rowWindow'>, prepared: SinkLocalPreparedIndex): void {
    this.attention.run({ ...a, index: prepared.index, rowWindow: prepared.rowWindow });
  }

  /** The index for queries at positions queryStart .. queryStart + T - 1, uploaded (synchronises first). */
  prepareIndex(queryStart: number, T: number): SinkLocalPreparedIndex {
    const H = this.shape.numHeads;
    const layout = sinkLocalLayout(this.rule, queryStart, T);
    const B = layout.numBlocks;
    // Every head shares the layout; the kernel indexes per head, so the per-block arrays are repeated.
    const ranges = new Int32Array(2 * H * B), rangeCount = new Int32Array(H * B).fill(1), colStart = new Int32Array(H * B + 1);
    const perHeadCols = layout.columns.length;
    const colList = new Int32Array(Math.max(1, H * perHeadCols));
    for (let h = 0; h < H; h++) {
      ranges.set(layout.ranges, 2 * h * B);
      for (let m = 0; m < B; m++) colStart[h * B + m] = h * perHeadCols + layout.columnStart[m];
      colList.set(layout.columns, h * perHeadCols);
    }
    colStart[H * B] = H * perHeadCols;
    // Uploads do not wait for the stream: the previous call's kernel may still read these buffers.
    this.rt.synchronize();
    const put = (name: keyof SinkLocalDevicePrefill['buf'], data: Int32Array) => {
      const b = this.buf[name].ensure(data.byteLength);
      this.rt.cuda.upload(b.ptr, data);
      return b.ptr;
    };
    return {
      index: {
        numHeads: H, numBlocks: B, rangeCap: 1, rangeSlotsPerHead: B,
        ranges: put('ranges', ranges), rangeCount: put('rangeCount', rangeCount), colStart: put('colStart', colStart), colList: put('colList', colList),
      },
      rowWindow: { rowLow: put('rowLow', layout.rowLow), sinkCount: this.rule.sinkTokens },
      pairs: { attended: layout.pairs, dense: layout.densePairs },
    };
  }

  reset(): void {
    this.rt.synchronize();
    for (const b of Object.values(this.buf)) b.release();
  }
}

export function sinkLocalRuleFrom(options: DeviceMethodOptions): SinkLocalRule {
  const resolved = resolveOptions(sinkLocalPrefillMethod, options);
  return {
    sinkTokens: intParam(resolved.params, 'sinkTokens'),
    localWindow: optionalIntParam(resolved.params, 'localWindow'),
    sparsity: resolved.sparsity,
  };
}

export const sinkLocalPrefillDeviceFactory: DevicePrefillFactory = verticalSlashFamilyFactory('sink_local_prefill',
  (rt, shape, options) => new SinkLocalDevicePrefill(rt, shape, sinkLocalRuleFrom(options)));

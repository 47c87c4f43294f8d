/**
 * Sink + local decoding on the device (the CPU SinkLocalDecode, src/methods/sink-local.ts, is the
 * reference): a step at position p reads the sink rows [0, sinkEnd) and the window [localStart, p]
 * (sinkLocalKeys), as one listed segment plus the tail of the segment-list decode (in the model's CUDA
 * graph, graphSteps, the tail start comes from a per-position table on the device). The CPU method
 * may evict rows that left the window; here nothing moves (rows are positions), which reads the
 * same rows and so gives the same output and counts; the `evict` parameter is accepted for that reason.
 */
import { type HeadCounts, emptyCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { resolveOptions } from '../../../methods/options.js';
import { type SinkLocalRule, sinkLocalDecodeMethod, sinkLocalKeys } from '../../../methods/sink-local.js';
import type { CudaRuntime } from '../runtime.js';
import { SegmentDecodeKernel, SegmentLists, encodeSegmentLists, segmentListStride, segmentWorkspaceBytes } from '../kernels/segment-decode.js';
import type { DeviceDecodeCall, DeviceDecodeFactory, DeviceDecodeMethod, DeviceGraphDecodeSetup, DeviceGraphDecodeSteps } from './contract.js';
import { segmentDecodeFactory } from './kernel-family-factories.js';
import { assertShape } from './shape-check.js';

export class SinkLocalDeviceDecode implements DeviceDecodeMethod {
  readonly id = 'sink_local_decode';
  readonly observationWindow = 0;
  private readonly decoder: SegmentDecodeKernel;
  /** One list for every layer and KV head: [0, sinkEnd). */
  private segments: SegmentLists | null = null;
  private listedSinkEnd = -1;
  private readonly keys = new Int32Array(2);

  constructor(private readonly rt: CudaRuntime, private readonly config: ModelConfig, readonly rule: SinkLocalRule) {
    this.decoder = new SegmentDecodeKernel(rt, { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim });
  }

  decode(call: DeviceDecodeCall): HeadCounts {
    assertShape(this.id, call.shape, this.config);
    const p = call.position;
    if (call.cache.length !== p + 1) throw new Error(`${this.id}: the new token at ${p} must be the last cached row (cache holds ${call.cache.length})`);
    sinkLocalKeys(p, this.rule, this.keys);
    const [sinkEnd, localStart] = this.keys;
    if (!this.segments) this.segments = new SegmentLists(this.rt, this.config.numKvHeads, 1);
    if (sinkEnd !== this.listedSinkEnd) {
      // Changes only while p < sinkTokens: wait for queued reads of the list before rewriting it.
      this.rt.synchronize();
      this.segments.upload(Array.from({ length: this.config.numKvHeads }, () => [{ start: 0, length: sinkEnd }]));
      this.listedSinkEnd = sinkEnd;
    }
    const tailRows = p + 1 - localStart;
    this.decoder.run({
      q: call.q, k: call.cache.keys.ptr, v: call.cache.values.ptr, kvStride: call.cache.capacity, out: call.out,
      segments: this.segments, tailStart: localStart, tailRows, maxRows: sinkEnd + tailRows, scale: call.shape.scale,
    });
    return this.stepCounts(p);
  }

  /** Every query head of a step at p reads the sink rows and the window [localStart, p]. */
  private stepCounts(p: number): HeadCounts {
    sinkLocalKeys(p, this.rule, this.keys);
    const [sinkEnd, localStart] = this.keys;
    const counts = emptyCounts(this.config.numHeads);
    counts.attended.fill(sinkEnd + p + 1 - localStart);
    counts.dense.fill(p + 1);
    return counts;
  }

  /**
   * Graph steps from a position where the sink is whole (p + 1 >= sinkTokens; before that it grows
   * with p and the steps stay eager): the sink list and a table of every replayed position's window
   * start (sinkLocalKeys, so the rows equal decode()'s) live in the graph's memory; every layer reads
   * them, with p from device memory.
   */
  graphSteps(setup: DeviceGraphDecodeSetup): DeviceGraphDecodeSteps | null {
    assertShape(this.id, setup.shape, this.config);
    const first = setup.firstPosition, capacity = setup.capacity;
    if (first + 1 < this.rule.sinkTokens) return null;
    if (capacity <= first) throw new Error(`${this.id}: no position to replay (first ${first}, capacity ${capacity})`);
    const Hkv = this.config.numKvHeads;
    const sinkEnd = this.rule.sinkTokens;
    const starts = new Int32Array(capacity);
    for (let p = first; p < capacity; p++) {
      sinkLocalKeys(p, this.rule, this.keys);
      starts[p] = this.keys[1];
    }
    const rows = (p: number): number => sinkEnd + p + 1 - starts[p];
    // The rows read never shrink as p grows (a fixed window, or a share of the visible rows).
    const launch = this.decoder.planGraph(rows(first), rows(capacity - 1));
    const listWords = encodeSegmentLists(Array.from({ length: Hkv }, () => [{ start: 0, length: sinkEnd }]), 1);
    const segments = { ptr: setup.own(listWords.byteLength), stride: segmentListStride(1), units: Hkv };
    const tailStarts = setup.own(starts.byteLength);
    const workspace = setup.own(segmentWorkspaceBytes(this.config.numHeads, this.config.headDim, launch.splits));
    // Synchronous copies outside the stream: fresh pool blocks may still be read by queued kernels.
    this.rt.synchronize();
    this.rt.cuda.upload(segments.ptr, listWords);
    this.rt.cuda.upload(tailStarts, starts);
    return {
      record: (call) => {
        if (call.cache.capacity < capacity) throw new Error(`${this.id}: cache of ${call.cache.capacity} rows for positions up to ${capacity - 1}`);
        this.decoder.runGraph({
          q: call.q, k: call.cache.keys.ptr, v: call.cache.values.ptr, kvStride: call.cache.capacity, out: call.out, segments,
          position: call.position, tailStart: 0, tailStarts, maxListRows: sinkEnd, launch, workspace, scale: setup.shape.scale,
        });
      },
      counts: (_layer, position) => this.stepCounts(position),
    };
  }

  reset(): void {
    if (this.segments) {
      this.rt.synchronize();
      this.segments.release();
    }
    this.segments = null;
    this.listedSinkEnd = -1;
  }
}

export const sinkLocalDecodeDeviceFactory: DeviceDecodeFactory = segmentDecodeFactory('sink_local_decode', (rt, config, options) => {
  const resolved = resolveOptions(sinkLocalDecodeMethod, options);
  const localWindow = typeof resolved.params.localWindow === 'number' ? resolved.params.localWindow : null;
  return new SinkLocalDeviceDecode(rt, config, { sinkTokens: resolved.params.sinkTokens as number, localWindow, sparsity: resolved.sparsity });
});

/**
 * Sink + local decoding on the device (the CPU SinkLocalDecode, src/methods/sink-local.ts, is the
 * reference): a step at position p reads the sink rows [0, sinkEnd) and the window [localStart, p]
 * (sinkLocalKeys), as one listed segment plus the tail of the segment-list decode. The CPU method
 * may evict rows that left the window; here nothing moves (rows are positions), which reads the
 * same rows and so gives the same output and counts; the `evict` parameter is accepted for that reason.
 */
import { type HeadCounts, emptyCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { resolveOptions } from '../../../methods/options.js';
import { type SinkLocalRule, sinkLocalDecodeMethod, sinkLocalKeys } from '../../../methods/sink-local.js';
import type { CudaRuntime } from '../runtime.js';
import { SegmentDecodeKernel, SegmentLists } from '../kernels/segment-decode.js';
import type { DeviceDecodeCall, DeviceDecodeFactory, DeviceDecodeMethod } from './contract.js';
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
    const counts = emptyCounts(this.config.numHeads);
    counts.attended.fill(sinkEnd + tailRows);
    counts.dense.fill(p + 1);
    return counts;
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

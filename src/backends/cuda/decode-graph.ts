/**
 * One captured decode step of one sequence (CudaTransformerModel.decodeGreedy): a CUDA graph whose
 * kernels read the token id and its position from two device slots, write the greedy next id back
 * into the id slot and advance the position, so consecutive replays need neither host writes nor
 * ~15 kernel launches per layer from JavaScript. The graph owns every buffer its kernels touch
 * (activations, logits, attention workspace): pool blocks released after capture could be handed to
 * someone else while the graph still writes them.
 */
import type { ModelConfig } from '../../engine/model-config.js';
import type { DevicePtr, GraphExec } from './context.js';
import type { DeviceLayerKvCache } from './kv-cache.js';
import type { DeviceBuffer } from './memory-pool.js';
import type { CudaKernel } from './module.js';
import type { CudaRuntime } from './runtime.js';

const DECODE_HEAD_DIMS = [64, 128, 256];
const DECODE_MAX_GROUP = 8;

/**
 * Why a model's decode steps cannot be captured, or null. `denseAttention`: the model's attention is
 * the dense one; sparse methods choose rows on the host every step, so their steps stay launch-by-launch.
 */
export function decodeGraphUnsupported(c: ModelConfig, denseAttention: boolean): string | null {
  if (!denseAttention) return 'attention is not the dense kernels (a method decides on the host each step)';
  if (!DECODE_HEAD_DIMS.includes(c.headDim)) return `head dim ${c.headDim} has no split-K decode kernel (64, 128 or 256)`;
  if (c.numHeads / c.numKvHeads > DECODE_MAX_GROUP) return `GQA group ${c.numHeads / c.numKvHeads} > ${DECODE_MAX_GROUP}`;
  return null;
}

export class DecodeGraph {
  private readonly owned: DeviceBuffer[] = [];
  private exec: GraphExec | null = null;
  private ids: DevicePtr = 0n;
  private positions: DevicePtr = 0n;
  /** What the device slots hold now (null: unknown, written before the next replay). */
  private deviceToken: number | null = null;
  private devicePosition: number | null = null;
  private readonly appendKernel: CudaKernel;
  private readonly idOut = new Int32Array(1);
  /** replayAsync() ran since the last step(): the slots hold whatever those replays left. */
  private replayed = false;

  constructor(private readonly rt: CudaRuntime, private readonly vocabSize: number) {
    this.appendKernel = rt.module('kv-append.cu', {}).kernel('kv_append_at', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']);
  }

  /** A buffer that lives as long as the graph. */
  own(bytes: number): DeviceBuffer {
    const b = this.rt.pool.acquire(Math.max(16, bytes));
    this.owned.push(b);
    return b;
  }

  /**
   * Records `body` (kernels on rt.stream only; nothing that synchronises or allocates) as the step.
   * ids / positions: the int32 slots the body reads the token and its position from.
   */
  capture(ids: DevicePtr, positions: DevicePtr, body: () => void): void {
    if (this.exec !== null) throw new Error('decode graph: already captured');
    this.ids = ids;
    this.positions = positions;
    this.rt.synchronize();
    this.exec = this.rt.cuda.captureGraph(this.rt.stream, body);
  }

  /**
   * K and V of the step's token (rows of its fused qkv projection) into row *position of every KV
   * head of `cache`, the row read on the device.
   */
  appendAt(cache: DeviceLayerKvCache, k: DevicePtr, v: DevicePtr, position: DevicePtr): void {
    const chunks = cache.numKvHeads * (cache.headDim / 8);
    this.appendKernel.launch(
      { grid: [Math.ceil(chunks / 256), 1, 1], block: [256, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [k, v, cache.keys.ptr, cache.values.ptr, position, cache.numKvHeads, cache.headDim, cache.capacity],
    );
  }

  /**
   * Replays the step for `token` at `position` and returns the greedy next id (waits for the device).
   * The slots are written from the host only when they do not already hold these values (the first
   * step after a prefill); afterwards the graph itself leaves the next id and position there.
   */
  step(token: number, position: number): number {
    if (this.exec === null) throw new Error('decode graph: step before capture');
    if (this.replayed || this.deviceToken !== token || this.devicePosition !== position) {
      this.replayed = false;
      // The synchronous copies run outside the (non-blocking) stream: wait for it first (upload itself
      // waits for its copy to land).
      this.rt.synchronize();
      this.rt.cuda.upload(this.ids, Int32Array.of(token));
      this.rt.cuda.upload(this.positions, Int32Array.of(position));
    }
    this.rt.cuda.launchGraph(this.exec, this.rt.stream);
    this.rt.synchronize();
    this.rt.cuda.download(this.idOut, this.ids);
    const next = this.idOut[0];
    if (!(next >= 0 && next < this.vocabSize)) throw new Error(`decode graph: argmax ${next} outside the vocabulary`);
    this.deviceToken = next;
    this.devicePosition = position + 1;
    return next;
  }

  /**
   * Benchmarks: launches the step on the stream without writing the slots or waiting, so replays can
   * be timed with events. The slots must hold a valid token and position already (a step() before);
   * what the graph leaves there is unknown afterwards, so the next step() writes them.
   */
  replayAsync(): void {
    if (this.exec === null) throw new Error('decode graph: replay before capture');
    if (this.deviceToken === null || this.devicePosition === null) throw new Error('decode graph: replay before a step() filled the slots');
    this.rt.cuda.launchGraph(this.exec, this.rt.stream);
    this.replayed = true;
  }

  /** Destroys the graph and returns its buffers (after the stream has drained). */
  dispose(): void {
    this.rt.synchronize();
    if (this.exec !== null) this.rt.cuda.destroyGraph(this.exec);
    this.exec = null;
    for (const b of this.owned.splice(0)) this.rt.pool.release(b);
  }
}

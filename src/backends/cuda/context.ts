/**
 * A CUDA device and its primary context: device facts, raw allocations, copies, streams, events and
 * module loading. Every driver call goes through `check`, so failures carry the CUDA error name.
 */
import { CudaUnavailableError, checkStatus } from './driver/check.js';
import { type DriverApi, loadDriver, readCString } from './driver/ffi.js';

// CUdevice_attribute values (cuda.h).
const ATTR_MULTIPROCESSOR_COUNT = 16;
const ATTR_L2_CACHE_SIZE = 38;
const ATTR_COMPUTE_CAPABILITY_MAJOR = 75;
const ATTR_COMPUTE_CAPABILITY_MINOR = 76;
const ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
const CU_EVENT_DEFAULT = 0;
const CU_STREAM_NON_BLOCKING = 1;
// cuda.h's CU_STREAM_LEGACY: the implicit stream the synchronous copies (cuMemcpyHtoD/DtoH) run on.
const CU_STREAM_LEGACY = 1n;
const CU_STREAM_CAPTURE_MODE_RELAXED = 2;

export interface DeviceInfo {
  ordinal: number;
  name: string;
  /** e.g. [9, 0] */
  computeCapability: [number, number];
  /** NVRTC / nvcc real architecture, e.g. 'sm_90'. */
  arch: string;
  multiprocessors: number;
  l2Bytes: number;
  maxSharedPerBlockOptin: number;
  /** cuDriverGetVersion, e.g. 13000. */
  driverVersion: number;
  totalMemoryBytes: number;
}

export type DevicePtr = bigint;
export type StreamHandle = bigint;
export type EventHandle = bigint;
export type GraphExec = bigint;

export class CudaContext {
  readonly api: DriverApi;
  readonly info: DeviceInfo;
  private readonly ctx: bigint;
  private released = false;

  private constructor(api: DriverApi, info: DeviceInfo, ctx: bigint) {
    this.api = api;
    this.info = info;
    this.ctx = ctx;
  }

  /** Initialises the driver and makes device `ordinal`'s primary context current on this thread. */
  static create(ordinal = 0): CudaContext {
    const api = loadDriver();
    const check = (status: number, call: string) => checkStatus(status, call, (c) => describeDriverError(api, c));
    const initStatus = api.cuInit(0);
    if (initStatus !== 0) {
      const [name, text] = describeDriverError(api, initStatus);
      throw new CudaUnavailableError(`cuInit failed: ${name}: ${text}`);
    }
    const count = new Int32Array(1);
    check(api.cuDeviceGetCount(count), 'cuDeviceGetCount');
    if (count[0] <= ordinal) throw new CudaUnavailableError(`no CUDA device ${ordinal} (${count[0]} found)`);
    const dev = new Int32Array(1);
    check(api.cuDeviceGet(dev, ordinal), 'cuDeviceGet');
    const attr = (a: number, what: string): number => {
      const out = new Int32Array(1);
      check(api.cuDeviceGetAttribute(out, a, dev[0]), `cuDeviceGetAttribute(${what})`);
      return out[0];
    };
    const nameBuf = Buffer.alloc(256);
    check(api.cuDeviceGetName(nameBuf, nameBuf.length, dev[0]), 'cuDeviceGetName');
    const version = new Int32Array(1);
    check(api.cuDriverGetVersion(version), 'cuDriverGetVersion');
    const ctxOut = new BigUint64Array(1);
    check(api.cuDevicePrimaryCtxRetain(ctxOut, dev[0]), 'cuDevicePrimaryCtxRetain');
    check(api.cuCtxSetCurrent(ctxOut[0]), 'cuCtxSetCurrent');
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    check(api.cuMemGetInfo(free, total), 'cuMemGetInfo');
    const major = attr(ATTR_COMPUTE_CAPABILITY_MAJOR, 'compute capability major');
    const minor = attr(ATTR_COMPUTE_CAPABILITY_MINOR, 'compute capability minor');
    const info: DeviceInfo = {
      ordinal,
      name: nameBuf.toString('utf8', 0, nameBuf.indexOf(0)),
      computeCapability: [major, minor],
      arch: `sm_${major}${minor}`,
      multiprocessors: attr(ATTR_MULTIPROCESSOR_COUNT, 'multiprocessor count'),
      l2Bytes: attr(ATTR_L2_CACHE_SIZE, 'L2 size'),
      maxSharedPerBlockOptin: attr(ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 'opt-in shared memory'),
      driverVersion: version[0],
      totalMemoryBytes: Number(total[0]),
    };
    return new CudaContext(api, info, ctxOut[0]);
  }

  /** Throws a CudaError naming `call` when `status` is not CUDA_SUCCESS. */
  check(status: number, call: string): void {
    checkStatus(status, call, (c) => describeDriverError(this.api, c));
  }

  alloc(bytes: number): DevicePtr {
    if (!(bytes > 0) || !Number.isSafeInteger(bytes)) throw new Error(`cuMemAlloc: bad size ${bytes}`);
    const out = new BigUint64Array(1);
    this.check(this.api.cuMemAlloc(out, bytes), `cuMemAlloc(${bytes} bytes)`);
    return out[0];
  }

  free(ptr: DevicePtr): void {
    this.check(this.api.cuMemFree(ptr), 'cuMemFree');
  }

  /**
   * Host → device copy of the whole view; the data is on the device when this returns. cuMemcpyHtoD
   * from pageable memory (every JS buffer) returns once the source is staged, its DMA possibly still
   * running on the legacy stream (CUDA's "API synchronization behavior"), and the non-blocking streams
   * our kernels run on do not wait for that stream: a kernel launched right after can read the previous
   * contents of a reused pool block (the likely cause of a wrong wgmma v2 test result: docs/perf.md,
   * Hopper kernel, the 2026-11-24 note). Hence the wait.
   * It does not wait for queued work that may still read `dst`: synchronise that stream first.
   */
  upload(dst: DevicePtr, src: ArrayBufferView): void {
    this.check(this.api.cuMemcpyHtoD(dst, src, src.byteLength), `cuMemcpyHtoD(${src.byteLength} bytes)`);
    this.check(this.api.cuStreamSynchronize(CU_STREAM_LEGACY), 'cuStreamSynchronize(legacy stream) after cuMemcpyHtoD');
  }

  /**
   * Synchronous device → host copy filling the whole view. It runs on the legacy stream, which does not
   * wait for non-blocking streams: synchronise the stream that wrote `src` first.
   */
  download(dst: ArrayBufferView, src: DevicePtr): void {
    this.check(this.api.cuMemcpyDtoH(dst, src, dst.byteLength), `cuMemcpyDtoH(${dst.byteLength} bytes)`);
  }

  copyDeviceAsync(dst: DevicePtr, src: DevicePtr, bytes: number, stream: StreamHandle): void {
    this.check(this.api.cuMemcpyDtoDAsync(dst, src, bytes, stream), `cuMemcpyDtoDAsync(${bytes} bytes)`);
  }

  /** Fills `count` 16-bit words (bf16 NaN poisoning: 0x7fc0). */
  fill16Async(dst: DevicePtr, value: number, count: number, stream: StreamHandle): void {
    this.check(this.api.cuMemsetD16Async(dst, value, count, stream), 'cuMemsetD16Async');
  }

  /** Fills `count` 32-bit words (fp32 NaN poisoning: 0x7fc00000). */
  fill32Async(dst: DevicePtr, value: number, count: number, stream: StreamHandle): void {
    this.check(this.api.cuMemsetD32Async(dst, value, count, stream), 'cuMemsetD32Async');
  }

  createStream(): StreamHandle {
    const out = new BigUint64Array(1);
    this.check(this.api.cuStreamCreate(out, CU_STREAM_NON_BLOCKING), 'cuStreamCreate');
    return out[0];
  }

  synchronize(stream: StreamHandle): void {
    this.check(this.api.cuStreamSynchronize(stream), 'cuStreamSynchronize');
  }

  destroyStream(stream: StreamHandle): void {
    this.check(this.api.cuStreamDestroy(stream), 'cuStreamDestroy');
  }

  createEvent(): EventHandle {
    const out = new BigUint64Array(1);
    this.check(this.api.cuEventCreate(out, CU_EVENT_DEFAULT), 'cuEventCreate');
    return out[0];
  }

  record(event: EventHandle, stream: StreamHandle): void {
    this.check(this.api.cuEventRecord(event, stream), 'cuEventRecord');
  }

  /** Milliseconds between two recorded events (waits for `end`). */
  elapsedMs(start: EventHandle, end: EventHandle): number {
    this.check(this.api.cuEventSynchronize(end), 'cuEventSynchronize');
    const ms = new Float32Array(1);
    this.check(this.api.cuEventElapsedTime(ms, start, end), 'cuEventElapsedTime');
    return ms[0];
  }

  destroyEvent(event: EventHandle): void {
    this.check(this.api.cuEventDestroy(event), 'cuEventDestroy');
  }

  /**
   * Records the device work `body` enqueues on `stream` into a graph (relaxed capture: host-side
   * calls in between are allowed) and returns an executable graph to replay with launchGraph.
   */
  captureGraph(stream: StreamHandle, body: () => void): GraphExec {
    this.check(this.api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_RELAXED), 'cuStreamBeginCapture');
    const graphOut = new BigUint64Array(1);
    try {
      body();
    } catch (err) {
      // Leave capture mode whatever the body broke, and report the body's error, not the end's.
      this.api.cuStreamEndCapture(stream, graphOut);
      if (graphOut[0] !== 0n) this.api.cuGraphDestroy(graphOut[0]);
      throw err;
    }
    this.check(this.api.cuStreamEndCapture(stream, graphOut), 'cuStreamEndCapture');
    const execOut = new BigUint64Array(1);
    try {
      this.check(this.api.cuGraphInstantiate(execOut, graphOut[0], 0), 'cuGraphInstantiate');
    } finally {
      this.check(this.api.cuGraphDestroy(graphOut[0]), 'cuGraphDestroy');
    }
    return execOut[0];
  }

  launchGraph(exec: GraphExec, stream: StreamHandle): void {
    this.check(this.api.cuGraphLaunch(exec, stream), 'cuGraphLaunch');
  }

  destroyGraph(exec: GraphExec): void {
    this.check(this.api.cuGraphExecDestroy(exec), 'cuGraphExecDestroy');
  }

  /** Releases the primary context reference taken by create(). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.check(this.api.cuDevicePrimaryCtxRelease(this.info.ordinal), 'cuDevicePrimaryCtxRelease');
  }

  get contextHandle(): bigint {
    return this.ctx;
  }
}

/** [enum name, description] of a CUresult, as the driver words them. */
export function describeDriverError(api: DriverApi, code: number): [string, string] {
  const name = new BigUint64Array(1);
  const text = new BigUint64Array(1);
  const nameOk = api.cuGetErrorName(code, name) === 0;
  const textOk = api.cuGetErrorString(code, text) === 0;
  return [nameOk ? readCString(name[0]) : `CUDA_ERROR_${code}`, textOk ? readCString(text[0]) : 'unknown error code'];
}

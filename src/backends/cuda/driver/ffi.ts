/**
 * koffi bindings to the CUDA driver (libcuda.so.1) and NVRTC (libnvrtc.so.13), the only place that
 * knows C signatures. Handles (CUcontext, CUmodule, CUfunction, CUstream, CUevent, nvrtcProgram) are
 * koffi pointers, i.e. bigints; device pointers (CUdeviceptr) are uint64 bigints too. Output
 * parameters are passed as one-element typed arrays, which koffi hands to C as in-place pointers.
 * Every function returns its raw status: callers go through check() (driver/check.ts).
 */
import koffi, { type LibraryHandle } from 'koffi';
import { CudaUnavailableError } from './check.js';

type Status = number;
type Ptr = bigint;
type OutPtr = BigUint64Array; // one-element array receiving a handle or device pointer
type OutInt = Int32Array;
type OutSize = BigUint64Array;

export interface DriverApi {
  cuInit(flags: number): Status;
  cuDriverGetVersion(out: OutInt): Status;
  cuDeviceGetCount(out: OutInt): Status;
  cuDeviceGet(out: OutInt, ordinal: number): Status;
  cuDeviceGetName(out: Buffer, len: number, device: number): Status;
  cuDeviceGetAttribute(out: OutInt, attribute: number, device: number): Status;
  cuDevicePrimaryCtxRetain(out: OutPtr, device: number): Status;
  cuDevicePrimaryCtxRelease(device: number): Status;
  cuCtxSetCurrent(ctx: Ptr): Status;
  cuCtxSynchronize(): Status;
  cuMemGetInfo(free: OutSize, total: OutSize): Status;
  cuMemAlloc(out: OutPtr, bytes: number): Status;
  cuMemFree(ptr: Ptr): Status;
  cuMemcpyHtoD(dst: Ptr, src: ArrayBufferView, bytes: number): Status;
  cuMemcpyDtoH(dst: ArrayBufferView, src: Ptr, bytes: number): Status;
  cuMemcpyDtoD(dst: Ptr, src: Ptr, bytes: number): Status;
  cuMemcpyDtoDAsync(dst: Ptr, src: Ptr, bytes: number, stream: Ptr): Status;
  cuMemsetD16Async(dst: Ptr, value: number, count: number, stream: Ptr): Status;
  cuMemsetD32Async(dst: Ptr, value: number, count: number, stream: Ptr): Status;
  cuStreamCreate(out: OutPtr, flags: number): Status;
  cuStreamSynchronize(stream: Ptr): Status;
  cuStreamDestroy(stream: Ptr): Status;
  cuEventCreate(out: OutPtr, flags: number): Status;
  cuEventRecord(event: Ptr, stream: Ptr): Status;
  cuEventSynchronize(event: Ptr): Status;
  cuEventElapsedTime(outMs: Float32Array, start: Ptr, end: Ptr): Status;
  cuEventDestroy(event: Ptr): Status;
  cuModuleLoadData(out: OutPtr, image: Buffer): Status;
  cuModuleUnload(module: Ptr): Status;
  cuModuleGetFunction(out: OutPtr, module: Ptr, name: string): Status;
  cuFuncSetAttribute(fn: Ptr, attribute: number, value: number): Status;
  cuFuncGetAttribute(out: OutInt, attribute: number, fn: Ptr): Status;
  cuOccupancyMaxActiveBlocksPerMultiprocessor(out: OutInt, fn: Ptr, blockSize: number, dynamicSharedBytes: number): Status;
  cuLaunchKernel(
    fn: Ptr, gx: number, gy: number, gz: number, bx: number, by: number, bz: number,
    sharedBytes: number, stream: Ptr, params: Ptr, extra: Ptr | null,
  ): Status;
  /** cuLaunchKernelEx (CUDA 12+), bound when the driver has it: launches with attributes. */
  cuLaunchKernelEx?: (config: Ptr, fn: Ptr, params: Ptr, extra: Ptr | null) => Status;
  /** cuOccupancyMaxActiveClusters (CUDA 12+), bound when the driver has it: clusters of a launch config resident at once. */
  cuOccupancyMaxActiveClusters?: (out: OutInt, fn: Ptr, config: Ptr) => Status;
  cuStreamBeginCapture(stream: Ptr, mode: number): Status;
  cuStreamEndCapture(stream: Ptr, outGraph: OutPtr): Status;
  cuGraphInstantiate(outExec: OutPtr, graph: Ptr, flags: number): Status;
  cuGraphLaunch(exec: Ptr, stream: Ptr): Status;
  cuGraphExecDestroy(exec: Ptr): Status;
  cuGraphDestroy(graph: Ptr): Status;
  cuGetErrorName(code: number, out: OutPtr): Status;
  cuGetErrorString(code: number, out: OutPtr): Status;
}

export interface NvrtcApi {
  nvrtcVersion(major: OutInt, minor: OutInt): Status;
  nvrtcGetErrorString(code: number): string;
  nvrtcCreateProgram(out: OutPtr, source: string, name: string, numHeaders: number, headers: null, includeNames: null): Status;
  nvrtcCompileProgram(prog: Ptr, numOptions: number, options: string[]): Status;
  nvrtcGetProgramLogSize(prog: Ptr, out: OutSize): Status;
  nvrtcGetProgramLog(prog: Ptr, out: Buffer): Status;
  nvrtcGetPTXSize(prog: Ptr, out: OutSize): Status;
  nvrtcGetPTX(prog: Ptr, out: Buffer): Status;
  nvrtcGetCUBINSize(prog: Ptr, out: OutSize): Status;
  nvrtcGetCUBIN(prog: Ptr, out: Buffer): Status;
  nvrtcDestroyProgram(progRef: OutPtr): Status;
}

/** C prototypes; `{name}` is replaced by the first exported symbol among the candidates. */
const DRIVER_PROTOTYPES: Array<[keyof DriverApi, string[], string]> = [
  ['cuInit', ['cuInit'], 'int {name}(unsigned int flags)'],
  ['cuDriverGetVersion', ['cuDriverGetVersion'], 'int {name}(int *out)'],
  ['cuDeviceGetCount', ['cuDeviceGetCount'], 'int {name}(int *out)'],
  ['cuDeviceGet', ['cuDeviceGet'], 'int {name}(int *out, int ordinal)'],
  ['cuDeviceGetName', ['cuDeviceGetName'], 'int {name}(char *out, int len, int dev)'],
  ['cuDeviceGetAttribute', ['cuDeviceGetAttribute'], 'int {name}(int *out, int attr, int dev)'],
  ['cuDevicePrimaryCtxRetain', ['cuDevicePrimaryCtxRetain'], 'int {name}(void *out, int dev)'],
  ['cuDevicePrimaryCtxRelease', ['cuDevicePrimaryCtxRelease_v2', 'cuDevicePrimaryCtxRelease'], 'int {name}(int dev)'],
  ['cuCtxSetCurrent', ['cuCtxSetCurrent'], 'int {name}(void *ctx)'],
  ['cuCtxSynchronize', ['cuCtxSynchronize'], 'int {name}(void)'],
  ['cuMemGetInfo', ['cuMemGetInfo_v2'], 'int {name}(void *free, void *total)'],
  ['cuMemAlloc', ['cuMemAlloc_v2'], 'int {name}(void *out, size_t bytes)'],
  ['cuMemFree', ['cuMemFree_v2'], 'int {name}(uint64_t ptr)'],
  ['cuMemcpyHtoD', ['cuMemcpyHtoD_v2'], 'int {name}(uint64_t dst, const void *src, size_t bytes)'],
  ['cuMemcpyDtoH', ['cuMemcpyDtoH_v2'], 'int {name}(void *dst, uint64_t src, size_t bytes)'],
  ['cuMemcpyDtoD', ['cuMemcpyDtoD_v2'], 'int {name}(uint64_t dst, uint64_t src, size_t bytes)'],
  ['cuMemcpyDtoDAsync', ['cuMemcpyDtoDAsync_v2'], 'int {name}(uint64_t dst, uint64_t src, size_t bytes, void *stream)'],
  ['cuMemsetD16Async', ['cuMemsetD16Async'], 'int {name}(uint64_t dst, uint16_t value, size_t count, void *stream)'],
  ['cuMemsetD32Async', ['cuMemsetD32Async'], 'int {name}(uint64_t dst, uint32_t value, size_t count, void *stream)'],
  ['cuStreamCreate', ['cuStreamCreate'], 'int {name}(void *out, unsigned int flags)'],
  ['cuStreamSynchronize', ['cuStreamSynchronize'], 'int {name}(void *stream)'],
  ['cuStreamDestroy', ['cuStreamDestroy_v2'], 'int {name}(void *stream)'],
  ['cuEventCreate', ['cuEventCreate'], 'int {name}(void *out, unsigned int flags)'],
  ['cuEventRecord', ['cuEventRecord'], 'int {name}(void *event, void *stream)'],
  ['cuEventSynchronize', ['cuEventSynchronize'], 'int {name}(void *event)'],
  ['cuEventElapsedTime', ['cuEventElapsedTime_v2', 'cuEventElapsedTime'], 'int {name}(float *ms, void *start, void *end)'],
  ['cuEventDestroy', ['cuEventDestroy_v2'], 'int {name}(void *event)'],
  ['cuModuleLoadData', ['cuModuleLoadData'], 'int {name}(void *out, const void *image)'],
  ['cuModuleUnload', ['cuModuleUnload'], 'int {name}(void *module)'],
  ['cuModuleGetFunction', ['cuModuleGetFunction'], 'int {name}(void *out, void *module, const char *name)'],
  ['cuFuncSetAttribute', ['cuFuncSetAttribute'], 'int {name}(void *fn, int attr, int value)'],
  ['cuFuncGetAttribute', ['cuFuncGetAttribute'], 'int {name}(int *out, int attr, void *fn)'],
  ['cuOccupancyMaxActiveBlocksPerMultiprocessor', ['cuOccupancyMaxActiveBlocksPerMultiprocessor'],
    'int {name}(int *out, void *fn, int blockSize, size_t dynamicSharedBytes)'],
  ['cuLaunchKernel', ['cuLaunchKernel'],
    'int {name}(void *fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, ' +
    'unsigned int bz, unsigned int shared, void *stream, void *params, void *extra)'],
  ['cuStreamBeginCapture', ['cuStreamBeginCapture_v2'], 'int {name}(void *stream, int mode)'],
  ['cuStreamEndCapture', ['cuStreamEndCapture'], 'int {name}(void *stream, void *outGraph)'],
  ['cuGraphInstantiate', ['cuGraphInstantiateWithFlags'], 'int {name}(void *outExec, void *graph, unsigned long long flags)'],
  ['cuGraphLaunch', ['cuGraphLaunch'], 'int {name}(void *exec, void *stream)'],
  ['cuGraphExecDestroy', ['cuGraphExecDestroy'], 'int {name}(void *exec)'],
  ['cuGraphDestroy', ['cuGraphDestroy'], 'int {name}(void *graph)'],
  ['cuGetErrorName', ['cuGetErrorName'], 'int {name}(int code, void *out)'],
  ['cuGetErrorString', ['cuGetErrorString'], 'int {name}(int code, void *out)'],
];

const NVRTC_PROTOTYPES: Array<[keyof NvrtcApi, string]> = [
  ['nvrtcVersion', 'int nvrtcVersion(int *major, int *minor)'],
  ['nvrtcGetErrorString', 'const char *nvrtcGetErrorString(int code)'],
  ['nvrtcCreateProgram',
    'int nvrtcCreateProgram(void *out, const char *src, const char *name, int numHeaders, void *headers, void *includeNames)'],
  ['nvrtcCompileProgram', 'int nvrtcCompileProgram(void *prog, int numOptions, const char **options)'],
  ['nvrtcGetProgramLogSize', 'int nvrtcGetProgramLogSize(void *prog, void *out)'],
  ['nvrtcGetProgramLog', 'int nvrtcGetProgramLog(void *prog, char *out)'],
  ['nvrtcGetPTXSize', 'int nvrtcGetPTXSize(void *prog, void *out)'],
  ['nvrtcGetPTX', 'int nvrtcGetPTX(void *prog, char *out)'],
  ['nvrtcGetCUBINSize', 'int nvrtcGetCUBINSize(void *prog, void *out)'],
  ['nvrtcGetCUBIN', 'int nvrtcGetCUBIN(void *prog, char *out)'],
  ['nvrtcDestroyProgram', 'int nvrtcDestroyProgram(void *progRef)'],
];

function openLibrary(candidates: string[], what: string): LibraryHandle {
  const failures: string[] = [];
  for (const path of candidates) {
    try {
      return koffi.load(path);
    } catch (err) {
      failures.push(`${path}: ${(err as Error).message}`);
    }
  }
  throw new CudaUnavailableError(`cannot load ${what} (${failures.join('; ')})`);
}

function bindFirst(lib: LibraryHandle, names: string[], prototype: string): (...args: unknown[]) => unknown {
  let lastError: unknown;
  for (const name of names) {
    try {
      return lib.func(prototype.replace('{name}', name));
    } catch (err) {
      lastError = err;
    }
  }
  throw new CudaUnavailableError(`driver lacks ${names.join(' / ')}: ${(lastError as Error).message}`);
}

let driverApi: DriverApi | null = null;
let nvrtcApi: NvrtcApi | null = null;

/** Loads libcuda.so.1 once; throws CudaUnavailableError when the library or a symbol is missing. */
export function loadDriver(): DriverApi {
  if (driverApi) return driverApi;
  const lib = openLibrary(['libcuda.so.1', 'libcuda.so'], 'the CUDA driver (libcuda.so.1)');
  const api: Record<string, unknown> = {};
  for (const [key, names, proto] of DRIVER_PROTOTYPES) api[key] = bindFirst(lib, names, proto);
  // Optional: older drivers lack it, and only launches that ask for attributes need it.
  try {
    api.cuLaunchKernelEx = lib.func('int cuLaunchKernelEx(void *config, void *fn, void *params, void *extra)');
  } catch {
    api.cuLaunchKernelEx = undefined;
  }
  try {
    api.cuOccupancyMaxActiveClusters = lib.func('int cuOccupancyMaxActiveClusters(int *numClusters, void *fn, void *config)');
  } catch {
    api.cuOccupancyMaxActiveClusters = undefined;
  }
  driverApi = api as unknown as DriverApi;
  return driverApi;
}

/** NVRTC sonames to try; CUDA 13 first (what the GPU machine has), then an unversioned link. */
const NVRTC_CANDIDATES = ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so'];

/** Loads NVRTC once; throws CudaUnavailableError when it is missing. */
export function loadNvrtc(): NvrtcApi {
  if (nvrtcApi) return nvrtcApi;
  const lib = openLibrary(NVRTC_CANDIDATES, 'NVRTC (libnvrtc.so.13)');
  const api: Record<string, unknown> = {};
  for (const [key, proto] of NVRTC_PROTOTYPES) api[key] = lib.func(proto);
  nvrtcApi = api as unknown as NvrtcApi;
  return nvrtcApi;
}

/** Reads a NUL-terminated C string behind a pointer (for cuGetErrorName/String). */
export function readCString(ptr: bigint): string {
  if (ptr === 0n) return '';
  return koffi.decode(ptr, 'char', -1) as string;
}

/** A block of host memory that does not move, for kernel-argument packing (see launch.ts). */
export function allocStable(bytes: number): { ptr: bigint; view: DataView } {
  const ptr = koffi.alloc('uint8_t', bytes) as bigint;
  return { ptr, view: new DataView(koffi.view(ptr, bytes)) };
}

/**
 * Loaded modules and launchable kernels. Kernel arguments are packed into a host block that koffi
 * allocated once per kernel (it never moves), with a parallel array of pointers to each slot, which
 * is what cuLaunchKernel's kernelParams expects; a launch only writes numbers into that block.
 */
import type { CudaContext, DevicePtr, StreamHandle } from './context.js';
import { allocStable } from './driver/ffi.js';

const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
const CU_FUNC_ATTRIBUTE_NUM_REGS = 4;
const CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14;
/** Blocks per cluster every sm_90 device supports; larger clusters need the non-portable attribute. */
export const PORTABLE_CLUSTER_BLOCKS = 8;

/** The C type of each kernel parameter, in order. */
export type ParamKind = 'ptr' | 'i32' | 'f32' | 'f64';
export type ParamValue = DevicePtr | number;

export interface LaunchConfig {
  grid: [number, number, number];
  block: [number, number, number];
  sharedBytes: number;
  stream: StreamHandle;
  /**
   * Programmatic dependent launch (sm_90): this grid may start before the previous kernel on the
   * stream has finished; the kernel must execute `griddepcontrol.wait` before it reads that kernel's
   * output. Needs cuLaunchKernelEx (CUDA 12+); an error names the driver when it is missing.
   */
  programmaticDependency?: boolean;
  /**
   * Cooperative launch (cuLaunchKernelEx with the cooperative attribute): every block of the grid is
   * resident at once, so blocks may wait for each other (a grid-wide barrier). The grid must fit the
   * device at once (occupancy x multiprocessors); the driver refuses it otherwise.
   */
  cooperative?: boolean;
  /**
   * Thread-block clusters (sm_90; cuLaunchKernelEx with the cluster-dimension attribute): blocks in
   * groups of x · y · z, co-scheduled on one GPC and sharing their shared memory (distributed shared
   * memory). Each grid dimension must be a multiple of the cluster's. More than 8 blocks per cluster
   * needs allowNonPortableClusters() first.
   */
  clusterDims?: [number, number, number];
}

// CUlaunchConfig (cuda.h): 7 unsigned ints, CUstream at 32, CUlaunchAttribute* at 40, numAttrs at 48.
const LAUNCH_CONFIG_BYTES = 56;
// CUlaunchAttribute: id, 4 bytes of padding, a 64-byte value union.
const LAUNCH_ATTRIBUTE_BYTES = 72;
const CU_LAUNCH_ATTRIBUTE_COOPERATIVE = 2;
const CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4;
const CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;

export class CudaModule {
  constructor(private readonly cuda: CudaContext, readonly handle: bigint, readonly label: string) {}

  static load(cuda: CudaContext, image: Buffer, label: string): CudaModule {
    const out = new BigUint64Array(1);
    cuda.check(cuda.api.cuModuleLoadData(out, image), `cuModuleLoadData(${label})`);
    return new CudaModule(cuda, out[0], label);
  }

  kernel(name: string, params: ParamKind[]): CudaKernel {
    const out = new BigUint64Array(1);
    this.cuda.check(this.cuda.api.cuModuleGetFunction(out, this.handle, name), `cuModuleGetFunction(${this.label}:${name})`);
    return new CudaKernel(this.cuda, out[0], `${this.label}:${name}`, params);
  }

  unload(): void {
    this.cuda.check(this.cuda.api.cuModuleUnload(this.handle), `cuModuleUnload(${this.label})`);
  }
}

export class CudaKernel {
  private readonly args: DataView;
  private readonly paramArray: bigint;
  private sharedLimit = 48 * 1024;
  /** CUlaunchConfig with one attribute after it, built on the first programmatic launch. */
  private exConfig: { ptr: bigint; view: DataView } | null = null;

  constructor(
    private readonly cuda: CudaContext,
    readonly handle: bigint,
    readonly label: string,
    readonly params: ParamKind[],
  ) {
    // One 8-byte slot per argument, then the pointer array that points at each slot.
    const n = params.length;
    const block = allocStable(16 * Math.max(1, n));
    this.args = block.view;
    for (let i = 0; i < n; i++) block.view.setBigUint64(8 * n + 8 * i, block.ptr + BigInt(8 * i), true);
    this.paramArray = block.ptr + BigInt(8 * n);
  }

  /** Registers the kernel uses per thread (from the loaded image). */
  get registersPerThread(): number {
    const out = new Int32Array(1);
    this.cuda.check(this.cuda.api.cuFuncGetAttribute(out, CU_FUNC_ATTRIBUTE_NUM_REGS, this.handle), 'cuFuncGetAttribute');
    return out[0];
  }

  /** Blocks of `blockSize` threads one multiprocessor can hold at once (registers, shared memory). */
  maxActiveBlocksPerSM(blockSize: number, dynamicSharedBytes = 0): number {
    this.ensureSharedBytes(dynamicSharedBytes);
    const out = new Int32Array(1);
    this.cuda.check(
      this.cuda.api.cuOccupancyMaxActiveBlocksPerMultiprocessor(out, this.handle, blockSize, dynamicSharedBytes),
      `cuOccupancyMaxActiveBlocksPerMultiprocessor(${this.label})`,
    );
    return out[0];
  }

  /** Raises the dynamic shared-memory limit (needed above 48 KB). */
  ensureSharedBytes(bytes: number): void {
    if (bytes <= this.sharedLimit) return;
    if (bytes > this.cuda.info.maxSharedPerBlockOptin) {
      throw new Error(`${this.label}: needs ${bytes} B of shared memory, device allows ${this.cuda.info.maxSharedPerBlockOptin}`);
    }
    this.cuda.check(
      this.cuda.api.cuFuncSetAttribute(this.handle, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
      `cuFuncSetAttribute(${this.label}, max dynamic shared = ${bytes})`,
    );
    this.sharedLimit = bytes;
  }

  /** Lets clusters of more than 8 blocks launch (up to 16 on an H100); the launch still fails where none fits. */
  allowNonPortableClusters(): void {
    this.cuda.check(
      this.cuda.api.cuFuncSetAttribute(this.handle, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1),
      `cuFuncSetAttribute(${this.label}, non-portable cluster size allowed)`,
    );
  }

  /**
   * Clusters of `clusterDims` blocks of `blockSize` threads (with that much dynamic shared memory) the
   * device holds at once (cuOccupancyMaxActiveClusters; the grid shape matters only through the
   * cluster's). 0: such a cluster cannot run on this device.
   */
  maxActiveClusters(clusterDims: [number, number, number], blockSize: number, dynamicSharedBytes = 0): number {
    const occupancy = this.cuda.api.cuOccupancyMaxActiveClusters;
    if (!occupancy) throw new Error(`${this.label}: cluster occupancy needs cuOccupancyMaxActiveClusters, which this driver lacks`);
    this.ensureSharedBytes(dynamicSharedBytes);
    const ex = this.writeExConfig({ grid: clusterDims, block: [blockSize, 1, 1], sharedBytes: dynamicSharedBytes, stream: 0n },
      CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION, clusterDims);
    const out = new Int32Array(1);
    this.cuda.check(occupancy(out, this.handle, ex.ptr), `cuOccupancyMaxActiveClusters(${this.label}, cluster ${clusterDims.join('x')})`);
    return out[0];
  }

  launch(config: LaunchConfig, values: ParamValue[]): void {
    if (values.length !== this.params.length) {
      throw new Error(`${this.label}: expected ${this.params.length} arguments, got ${values.length}`);
    }
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      switch (this.params[i]) {
        case 'ptr':
          if (typeof v !== 'bigint') throw new Error(`${this.label}: argument ${i} must be a device pointer`);
          this.args.setBigUint64(8 * i, v, true);
          break;
        case 'i32':
          if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${this.label}: argument ${i} must be an integer`);
          this.args.setInt32(8 * i, v, true);
          break;
        case 'f32':
          if (typeof v !== 'number') throw new Error(`${this.label}: argument ${i} must be a number`);
          this.args.setFloat32(8 * i, v, true);
          break;
        case 'f64':
          if (typeof v !== 'number') throw new Error(`${this.label}: argument ${i} must be a number`);
          this.args.setFloat64(8 * i, v, true);
          break;
      }
    }
    this.ensureSharedBytes(config.sharedBytes);
    const [gx, gy, gz] = config.grid;
    const [bx, by, bz] = config.block;
    const special = [config.programmaticDependency, config.cooperative, config.clusterDims !== undefined].filter(Boolean).length;
    if (special > 1) throw new Error(`${this.label}: a launch is programmatic, cooperative or clustered, only one of them`);
    if (config.programmaticDependency) {
      this.launchWithAttribute(config, CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, [1], 'programmatic dependency');
      return;
    }
    if (config.cooperative) {
      this.launchWithAttribute(config, CU_LAUNCH_ATTRIBUTE_COOPERATIVE, [1], 'cooperative');
      return;
    }
    if (config.clusterDims) {
      const c = config.clusterDims;
      if (!c.every((x, i) => Number.isInteger(x) && x >= 1 && config.grid[i] % x === 0)) {
        throw new Error(`${this.label}: grid ${config.grid.join('x')} is not a whole number of clusters ${c.join('x')}`);
      }
      this.launchWithAttribute(config, CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION, c, `cluster ${c.join('x')}`);
      return;
    }
    this.cuda.check(
      this.cuda.api.cuLaunchKernel(this.handle, gx, gy, gz, bx, by, bz, config.sharedBytes, config.stream, this.paramArray, null),
      `cuLaunchKernel(${this.label}, grid ${gx}x${gy}x${gz}, block ${bx}x${by}x${bz}, ${config.sharedBytes} B shared)`,
    );
  }

  /**
   * Fills the CUlaunchConfig (grid, block, shared bytes, stream) with one attribute whose value is the
   * given unsigned integers (1 for the flags; x, y, z for a cluster's dimensions).
   */
  private writeExConfig(config: Pick<LaunchConfig, 'grid' | 'block' | 'sharedBytes' | 'stream'>, attribute: number, value: number[]) {
    if (!this.exConfig) {
      this.exConfig = allocStable(LAUNCH_CONFIG_BYTES + LAUNCH_ATTRIBUTE_BYTES);
      const v = this.exConfig.view;
      v.setBigUint64(40, this.exConfig.ptr + BigInt(LAUNCH_CONFIG_BYTES), true);
      v.setUint32(48, 1, true);
    }
    const v = this.exConfig.view;
    v.setUint32(LAUNCH_CONFIG_BYTES, attribute, true);
    for (let i = 0; i < 3; i++) v.setUint32(LAUNCH_CONFIG_BYTES + 8 + 4 * i, value[i] ?? 0, true);
    [...config.grid, ...config.block, config.sharedBytes].forEach((x, i) => v.setUint32(4 * i, x, true));
    v.setBigUint64(32, config.stream, true);
    return this.exConfig;
  }

  /** cuLaunchKernelEx with one attribute (see writeExConfig). */
  private launchWithAttribute(config: LaunchConfig, attribute: number, value: number[], what: string): void {
    const ex = this.cuda.api.cuLaunchKernelEx;
    if (!ex) throw new Error(`${this.label}: a ${what} launch needs cuLaunchKernelEx, which this driver lacks`);
    const exConfig = this.writeExConfig(config, attribute, value);
    const [gx, gy, gz] = config.grid;
    const [bx, by, bz] = config.block;
    this.cuda.check(
      ex(exConfig.ptr, this.handle, this.paramArray, null),
      `cuLaunchKernelEx(${this.label}, grid ${gx}x${gy}x${gz}, block ${bx}x${by}x${bz}, ${what})`,
    );
  }
}

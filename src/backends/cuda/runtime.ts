/**
 * The CUDA backend's runtime: one device context, its memory pool, a default stream and the kernel
 * compiler with its on-disk cache. Kernel launchers take a CudaRuntime and ask it for modules by
 * source file and codegen defines; each distinct (file, defines) is compiled once per process.
 */
import { CompileCache, defaultCacheDir } from './compile-cache.js';
import { CudaContext, type StreamHandle } from './context.js';
import { readKernelSource } from './kernel-source.js';
import { DeviceMemoryPool } from './memory-pool.js';
import { CudaModule } from './module.js';
import { compileWithNvrtc, nvrtcVersion } from './nvrtc.js';

export interface CompileStats {
  compiled: number;
  cacheHits: number;
}

export class CudaRuntime {
  readonly cuda: CudaContext;
  readonly pool: DeviceMemoryPool;
  readonly stream: StreamHandle;
  private readonly cache: CompileCache;
  private readonly compilerVersion: string;
  private readonly modules = new Map<string, CudaModule>();
  readonly compileStats: CompileStats = { compiled: 0, cacheHits: 0 };

  constructor(options: { ordinal?: number; cacheDir?: string } = {}) {
    this.cuda = CudaContext.create(options.ordinal ?? 0);
    this.pool = new DeviceMemoryPool(this.cuda);
    this.stream = this.cuda.createStream();
    this.compilerVersion = `nvrtc-${nvrtcVersion()}`;
    this.cache = new CompileCache(options.cacheDir ?? defaultCacheDir(), compileWithNvrtc);
  }

  /**
   * The module built from kernels/<file> with the given -D defines, for this device's architecture.
   * defines: e.g. { HEAD_DIM: 128, WARPS: 4 }. arch: a target other than the device's own, e.g.
   * 'sm_90a' for kernels that use Hopper's architecture-specific instructions (wgmma, setmaxnreg).
   */
  module(file: string, defines: Record<string, number>, target: { arch?: string } = {}): CudaModule {
    const options = Object.entries(defines).map(([k, v]) => `-D${k}=${v}`);
    const arch = target.arch ?? this.cuda.info.arch;
    const memoKey = `${file} ${options.join(' ')} ${arch}`;
    const known = this.modules.get(memoKey);
    if (known) return known;
    const name = file.replace(/\.cu$/, '');
    const result = this.cache.get({
      name,
      source: readKernelSource(file),
      arch,
      options: [...options, '-lineinfo'],
      compilerVersion: this.compilerVersion,
    });
    if (result.hit) this.compileStats.cacheHits++;
    else this.compileStats.compiled++;
    const mod = CudaModule.load(this.cuda, result.image, memoKey);
    this.modules.set(memoKey, mod);
    return mod;
  }

  synchronize(): void {
    this.cuda.synchronize(this.stream);
  }

  dispose(): void {
    this.synchronize();
    this.pool.trim();
    this.cuda.destroyStream(this.stream);
  }
}

/**
 * cuBLAS (libcublas.so.13) through koffi, for the model's linear layers: bf16 operands, fp32
 * accumulation, bf16 or fp32 output. Row-major tensors as the engine stores them:
 *   Y[T, N] = X[T, K] · W[N, K]ᵀ     (W is an HF Linear weight, [out, in])
 * which in cuBLAS's column-major terms is Yᵀ = op(W) · Xᵀ with op = transpose.
 */
import koffi from 'koffi';
import type { DevicePtr, StreamHandle } from './context.js';
import { CudaUnavailableError, checkStatus } from './driver/check.js';

const CUBLAS_OP_N = 0;
const CUBLAS_OP_T = 1;
const CUDA_R_32F = 0;
const CUDA_R_16BF = 14;
const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_GEMM_DEFAULT = -1;

interface CublasApi {
  create(out: BigUint64Array): number;
  destroy(handle: bigint): number;
  setStream(handle: bigint, stream: bigint): number;
  setWorkspace(handle: bigint, workspace: DevicePtr, bytes: number): number;
  gemmEx(
    handle: bigint, transa: number, transb: number, m: number, n: number, k: number, alpha: Float32Array,
    a: DevicePtr, aType: number, lda: number, b: DevicePtr, bType: number, ldb: number, beta: Float32Array,
    c: DevicePtr, cType: number, ldc: number, computeType: number, algo: number,
  ): number;
  statusName(status: number): string;
  statusString(status: number): string;
}

let api: CublasApi | null = null;

function loadCublas(): CublasApi {
  if (api) return api;
  let lib: ReturnType<typeof koffi.load> | null = null;
  const failures: string[] = [];
  for (const name of ['libcublas.so.13', 'libcublas.so.12', 'libcublas.so']) {
    try {
      lib = koffi.load(name);
      break;
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
    }
  }
  if (!lib) throw new CudaUnavailableError(`cannot load cuBLAS (${failures.join('; ')})`);
  api = {
    create: lib.func('int cublasCreate_v2(void *out)'),
    destroy: lib.func('int cublasDestroy_v2(void *handle)'),
    setStream: lib.func('int cublasSetStream_v2(void *handle, void *stream)'),
    setWorkspace: lib.func('int cublasSetWorkspace_v2(void *handle, uint64_t workspace, size_t bytes)'),
    gemmEx: lib.func(
      'int cublasGemmEx(void *handle, int transa, int transb, int m, int n, int k, const float *alpha, ' +
      'uint64_t A, int Atype, int lda, uint64_t B, int Btype, int ldb, const float *beta, ' +
      'uint64_t C, int Ctype, int ldc, int computeType, int algo)'),
    statusName: lib.func('const char *cublasGetStatusName(int status)'),
    statusString: lib.func('const char *cublasGetStatusString(int status)'),
  };
  return api;
}

export interface LinearArgs {
  /** [T, K] bf16 activations. */
  x: DevicePtr;
  /** [N, K] bf16 weight (HF Linear layout). */
  w: DevicePtr;
  /** [T, N] output: bf16, or fp32 with outFloat32 (logits). */
  y: DevicePtr;
  tokens: number; // T
  inFeatures: number; // K
  outFeatures: number; // N
  outFloat32?: boolean;
}

export class Cublas {
  private readonly api: CublasApi;
  private readonly handle: bigint;
  private readonly one = new Float32Array([1]);
  private readonly zero = new Float32Array([0]);

  constructor(stream: StreamHandle) {
    this.api = loadCublas();
    const out = new BigUint64Array(1);
    this.check(this.api.create(out), 'cublasCreate');
    this.handle = out[0];
    this.check(this.api.setStream(this.handle, stream), 'cublasSetStream');
  }

  private check(status: number, call: string): void {
    checkStatus(status, call, (c) => [this.api.statusName(c), this.api.statusString(c)]);
  }

  /**
   * A caller-owned workspace for every later GEMM on this handle: cuBLAS then allocates nothing
   * itself, which graph capture requires. The buffer must outlive the handle's use.
   */
  setWorkspace(workspace: DevicePtr, bytes: number): void {
    if (!Number.isInteger(bytes) || bytes <= 0) throw new Error(`cublasSetWorkspace: bad size ${bytes}`);
    if (workspace % 256n !== 0n) throw new Error('cublasSetWorkspace: the workspace must be 256-byte aligned');
    this.check(this.api.setWorkspace(this.handle, workspace, bytes), `cublasSetWorkspace(${bytes} bytes)`);
  }

  /** Y = X · Wᵀ on the handle's stream. */
  linear(a: LinearArgs): void {
    for (const [what, n] of [['tokens', a.tokens], ['inFeatures', a.inFeatures], ['outFeatures', a.outFeatures]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new Error(`linear: ${what} must be a positive integer (got ${n})`);
    }
    const { tokens: T, inFeatures: K, outFeatures: N } = a;
    this.check(
      this.api.gemmEx(this.handle, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, this.one, a.w, CUDA_R_16BF, K, a.x, CUDA_R_16BF, K,
        this.zero, a.y, a.outFloat32 ? CUDA_R_32F : CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      `cublasGemmEx(linear ${T}x${K} -> ${N})`,
    );
  }

  dispose(): void {
    this.check(this.api.destroy(this.handle), 'cublasDestroy');
  }
}

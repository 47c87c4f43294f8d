/**
 * Kernel oracle, GPU half: runs each case of bench/kernel-oracle-cases.ts (one model kernel at a
 * model-like shape on seeded random bf16 inputs) through its TypeScript launcher, the way
 * src/backends/cuda/model.ts calls it, with the output buffers poisoned with NaN first, and writes
 * inputs + outputs + meta.json per case to DIR/<case name>/ for tools/peers/kernel_oracle.py to
 * recompute with PyTorch / transformers.
 *
 * Usage: node dist/bench/kernel-oracle.js --out DIR [--cases NAME,...] (--help lists the case names)
 * Prints a skip message (exit 0) where there is no CUDA device.
 */
import { join } from 'node:path';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { type BenchOptionsOf, defineBenchArgs, labels, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { ORACLE_CASES, type HostTensor, type OracleCase, POISON_BITS, caseInputs, caseTensorSpecs, writeCase } from './kernel-oracle-cases.js';

/** The command line (`--help` prints it). */
export const KERNEL_ORACLE_ARGS = defineBenchArgs('kernel-oracle', 'Runs each model kernel on seeded inputs and writes inputs + outputs per case for tools/peers/kernel_oracle.py (GPU only).', {
  out: text({ describe: 'folder for one sub-folder per case', placeholder: 'DIR', required: true }),
  cases: labels({ describe: 'cases to run, by name (default all)', choices: ORACLE_CASES.map((c) => c.name) }),
}, 'node dist/bench/kernel-oracle.js');

export type KernelOracleOptions = BenchOptionsOf<typeof KERNEL_ORACLE_ARGS.table>;

export function parseKernelOracleArgs(argv: string[]): KernelOracleOptions {
  return KERNEL_ORACLE_ARGS.parse(argv);
}

/** Device buffers of one case and the transfers around them (bit-exact: bf16 travels as raw words). */
class CaseBuffers {
  private readonly held: DeviceBuffer[] = [];
  constructor(private readonly rt: CudaRuntime) {}

  upload(t: HostTensor): DeviceBuffer {
    const b = this.rt.pool.acquire(Math.max(4, t.data.byteLength));
    this.rt.cuda.upload(b.ptr, t.data);
    this.held.push(b);
    return b;
  }

  poisoned(dtype: 'bf16' | 'f32' | 'i32', count: number): DeviceBuffer {
    const b = this.rt.pool.acquire(Math.max(4, count * (dtype === 'bf16' ? 2 : 4)));
    if (dtype === 'bf16') this.rt.cuda.fill16Async(b.ptr, POISON_BITS.bf16, count, this.rt.stream);
    else this.rt.cuda.fill32Async(b.ptr, POISON_BITS.f32, count, this.rt.stream); // i32 outputs: the same bits
    this.held.push(b);
    return b;
  }

  download(b: DeviceBuffer, like: { dtype: HostTensor['dtype']; shape: number[] }): HostTensor {
    this.rt.synchronize();
    const n = like.shape.reduce((x, y) => x * y, 1);
    const data = like.dtype === 'bf16' ? new Uint16Array(n) : like.dtype === 'f32' ? new Float32Array(n) : new Int32Array(n);
    this.rt.cuda.download(data, b.ptr);
    return { dtype: like.dtype, shape: like.shape, data } as HostTensor;
  }

  release(): void {
    for (const b of this.held) this.rt.pool.release(b);
    this.held.length = 0;
  }
}

type Launched = { outputs: Record<string, HostTensor>; run: Record<string, number | string | boolean> };

async function runCase(rt: CudaRuntime, c: OracleCase, inputs: Record<string, HostTensor>): Promise<Launched> {
  const { ElementwiseKernels } = await import('../src/backends/cuda/kernels/elementwise.js');
  const { ModelOpsKernels } = await import('../src/backends/cuda/kernels/model-ops.js');
  const ew = new ElementwiseKernels(rt);
  const ops = new ModelOpsKernels(rt);
  const spec = caseTensorSpecs(c);
  const bufs = new CaseBuffers(rt);
  const at = (b: DeviceBuffer, elements: number) => b.ptr + BigInt(elements * 2);
  try {
    switch (c.kernel) {
      case 'rmsnorm': {
        const x = bufs.upload(inputs.x), w = bufs.upload(inputs.weight), out = bufs.poisoned('bf16', c.rows * c.cols);
        ew.rmsNorm({ x: x.ptr, weight: w.ptr, out: out.ptr, rows: c.rows, cols: c.cols, eps: c.eps, weightOffset: c.weightOffset });
        return { outputs: { out: bufs.download(out, spec.out) }, run: {} };
      }
      case 'rmsnorm_heads': {
        const x = bufs.upload(inputs.x), w = bufs.upload(inputs.weight);
        ops.rmsNormHeads({ x: at(x, c.columnOffset), weight: w.ptr, tokens: c.tokens, heads: c.heads, headDim: c.headDim, rowStride: c.rowStride, eps: c.eps, weightOffset: c.weightOffset });
        return { outputs: { out: bufs.download(x, spec.out) }, run: {} };
      }
      case 'rope_rotate_half': {
        const x = bufs.upload(inputs.x), pos = bufs.upload(inputs.positions), inv = bufs.upload(inputs.inv_freq);
        ew.ropeRotateHalf({ x: x.ptr, positions: pos.ptr, invFreq: inv.ptr, tokens: c.tokens, heads: c.heads, headDim: c.headDim });
        return { outputs: { out: bufs.download(x, spec.out) }, run: {} };
      }
      case 'rope_heads': {
        const x = bufs.upload(inputs.x), pos = bufs.upload(inputs.positions), inv = bufs.upload(inputs.inv_freq);
        ops.ropeHeads({ x: at(x, c.columnOffset), positions: pos.ptr, invFreq: inv.ptr, tokens: c.tokens, heads: c.heads, headDim: c.headDim, rowStride: c.rowStride });
        return { outputs: { out: bufs.download(x, spec.out) }, run: {} };
      }
      case 'swiglu': {
        const n = c.rows * c.cols;
        const g = bufs.upload(inputs.gate), u = bufs.upload(inputs.up), out = bufs.poisoned('bf16', n);
        ew.swiglu({ gate: g.ptr, up: u.ptr, out: out.ptr, n });
        return { outputs: { out: bufs.download(out, spec.out) }, run: {} };
      }
      case 'gated_act_rows': {
        const gu = bufs.upload(inputs.gate_up), out = bufs.poisoned('bf16', c.rows * c.inner);
        ops.gatedActivation({ gateUp: gu.ptr, out: out.ptr, rows: c.rows, inner: c.inner, activation: c.activation });
        return { outputs: { out: bufs.download(out, spec.out) }, run: {} };
      }
      case 'add': {
        const n = c.rows * c.cols;
        const a = bufs.upload(inputs.a), b = bufs.upload(inputs.b), out = bufs.poisoned('bf16', n);
        ew.add({ a: a.ptr, b: b.ptr, out: out.ptr, n });
        return { outputs: { out: bufs.download(out, spec.out) }, run: {} };
      }
      case 'bias_add_rows': {
        const y = bufs.upload(inputs.y), bias = bufs.upload(inputs.bias);
        ops.biasAdd({ y: y.ptr, bias: bias.ptr, rows: c.rows, cols: c.cols });
        return { outputs: { out: bufs.download(y, spec.out) }, run: {} };
      }
      case 'embed_rows': {
        const ids = bufs.upload(inputs.ids), table = bufs.upload(inputs.table), out = bufs.poisoned('bf16', c.tokens * c.cols);
        ops.embed({ ids: ids.ptr, table: table.ptr, out: out.ptr, tokens: c.tokens, cols: c.cols, scale: c.scale });
        return { outputs: { out: bufs.download(out, spec.out) }, run: {} };
      }
      case 'softcap_f32': {
        const x = bufs.upload(inputs.logits);
        ops.softcap({ x: x.ptr, n: c.rows * c.vocab, cap: c.cap });
        return { outputs: { out: bufs.download(x, spec.out) }, run: {} };
      }
      case 'argmax_rows': {
        const logits = bufs.upload(inputs.logits), out = bufs.poisoned('i32', c.rows);
        ew.argmaxRows({ logits: logits.ptr, out: out.ptr, rows: c.rows, vocab: c.vocab });
        return { outputs: { out: bufs.download(out, spec.out) }, run: {} };
      }
      case 'kv_append': {
        // The cache's own append path (DeviceLayerKvCache, as the model uses it) over fused qkv rows.
        const { DeviceLayerKvCache } = await import('../src/backends/cuda/kv-cache.js');
        const cache = new DeviceLayerKvCache(rt, c.kvHeads, c.headDim, c.capacity);
        try {
          rt.cuda.upload(cache.keys.ptr, inputs.k_cache_before.data);
          rt.cuda.upload(cache.values.ptr, inputs.v_cache_before.data);
          cache.length = c.startRow;
          const qkv = bufs.upload(inputs.qkv);
          const width = (c.heads + 2 * c.kvHeads) * c.headDim;
          cache.appendTokens({ k: at(qkv, c.heads * c.headDim), v: at(qkv, (c.heads + c.kvHeads) * c.headDim), rowStride: width }, c.tokens);
          return { outputs: { k_cache: bufs.download(cache.keys, spec.k_cache), v_cache: bufs.download(cache.values, spec.v_cache) }, run: {} };
        } finally {
          cache.release();
        }
      }
      case 'decode_attention': {
        const { DecodeAttentionKernel, decodeTuningLabel } = await import('../src/backends/cuda/kernels/decode-attention.js');
        const kernel = new DecodeAttentionKernel(rt, { numHeads: c.heads, numKvHeads: c.kvHeads, headDim: c.headDim });
        const q = bufs.upload(inputs.q), k = bufs.upload(inputs.k), v = bufs.upload(inputs.v), out = bufs.poisoned('bf16', c.heads * c.headDim);
        const plan = kernel.run({ q: q.ptr, k: k.ptr, v: v.ptr, out: out.ptr, kvLen: c.kvLen, kvStride: c.kvStride, scale: c.scale, slidingWindow: c.slidingWindow });
        return { outputs: { out: bufs.download(out, spec.out) }, run: { splits: plan.splits, chunk: plan.chunk, tuning: decodeTuningLabel(kernel.tuning) } };
      }
    }
  } finally {
    bufs.release();
  }
}

async function main(argv: string[]): Promise<void> {
  const o = parseKernelOracleArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`kernel oracle skipped: no CUDA device here: ${cudaUnavailableReason()}`);
    return;
  }
  const { CudaRuntime } = await import('../src/backends/cuda/runtime.js');
  const rt = new CudaRuntime();
  try {
    for (const c of ORACLE_CASES) {
      if (o.cases && !o.cases.includes(c.name)) continue;
      const inputs = caseInputs(c);
      const { outputs, run } = await runCase(rt, c, inputs);
      writeCase(join(o.out, c.name), c, { ...inputs, ...outputs }, run);
      console.log(`kernel oracle: ${c.name} (${c.kernel}) written${Object.keys(run).length ? ` ${JSON.stringify(run)}` : ''}`);
    }
  } finally {
    rt.dispose();
  }
}

runIfDirect(import.meta.url, main);

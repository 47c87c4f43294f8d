/**
 * Run-time compilation of CUDA C++ with NVRTC. Kernels in this backend include no headers (bf16 is
 * handled as raw 16-bit words and inline PTX), so a compile needs nothing but the source.
 */
import { checkStatus } from './driver/check.js';
import { type NvrtcApi, loadNvrtc } from './driver/ffi.js';

export interface CompiledImage {
  /** 'cubin' for a real architecture (sm_XX), 'ptx' for a virtual one (compute_XX). */
  format: 'cubin' | 'ptx';
  image: Buffer;
  log: string;
}

/** Thrown when the source does not compile; carries NVRTC's log. */
export class NvrtcCompileError extends Error {
  constructor(readonly kernelName: string, readonly log: string) {
    super(`NVRTC could not compile ${kernelName}:\n${log}`);
    this.name = 'NvrtcCompileError';
  }
}

function describe(api: NvrtcApi, code: number): [string, string] {
  const text = api.nvrtcGetErrorString(code);
  return [text, `nvrtcResult ${code}`];
}

/**
 * Compiles `source` for `arch` ('sm_90' gives a cubin, 'compute_90' PTX). `options` come after the
 * architecture flag (e.g. ['-DHEAD_DIM=128', '-O3']).
 */
export function compileWithNvrtc(source: string, name: string, arch: string, options: string[]): CompiledImage {
  const api = loadNvrtc();
  const check = (status: number, call: string) => checkStatus(status, call, (c) => describe(api, c));
  const progOut = new BigUint64Array(1);
  check(api.nvrtcCreateProgram(progOut, source, `${name}.cu`, 0, null, null), 'nvrtcCreateProgram');
  const prog = progOut[0];
  try {
    const allOptions = [`--gpu-architecture=${arch}`, '--std=c++17', ...options];
    const status = api.nvrtcCompileProgram(prog, allOptions.length, allOptions);
    const log = readLog(api, prog);
    if (status !== 0) throw new NvrtcCompileError(`${name} [${allOptions.join(' ')}]`, log || api.nvrtcGetErrorString(status));
    const format = arch.startsWith('sm_') ? 'cubin' : 'ptx';
    const size = new BigUint64Array(1);
    if (format === 'cubin') {
      check(api.nvrtcGetCUBINSize(prog, size), 'nvrtcGetCUBINSize');
      const image = Buffer.alloc(Number(size[0]));
      check(api.nvrtcGetCUBIN(prog, image), 'nvrtcGetCUBIN');
      return { format, image, log };
    }
    check(api.nvrtcGetPTXSize(prog, size), 'nvrtcGetPTXSize');
    const image = Buffer.alloc(Number(size[0]));
    check(api.nvrtcGetPTX(prog, image), 'nvrtcGetPTX');
    return { format, image, log };
  } finally {
    api.nvrtcDestroyProgram(progOut);
  }
}

function readLog(api: NvrtcApi, prog: bigint): string {
  const size = new BigUint64Array(1);
  if (api.nvrtcGetProgramLogSize(prog, size) !== 0 || size[0] <= 1n) return '';
  const buf = Buffer.alloc(Number(size[0]));
  if (api.nvrtcGetProgramLog(prog, buf) !== 0) return '';
  return buf.toString('utf8', 0, Math.max(0, buf.indexOf(0))).trim();
}

/** NVRTC's version as 'major.minor', or throws CudaUnavailableError when NVRTC is missing. */
export function nvrtcVersion(): string {
  const api = loadNvrtc();
  const major = new Int32Array(1);
  const minor = new Int32Array(1);
  checkStatus(api.nvrtcVersion(major, minor), 'nvrtcVersion', (c) => describe(api, c));
  return `${major[0]}.${minor[0]}`;
}

/**
 * On-disk cache of compiled kernel images. The key covers everything that changes the machine code:
 * kernel name, compile options (the codegen parameters arrive as -D defines), target architecture,
 * compiler version and a hash of the source. A hit skips NVRTC entirely (a flash-attention compile
 * takes seconds).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CompiledImage } from './nvrtc.js';

export interface CompileRequest {
  /** Kernel file name without extension, e.g. 'flash-prefill'. */
  name: string;
  source: string;
  /** 'sm_90' (cubin) or 'compute_90' (PTX). */
  arch: string;
  /** Extra compiler options, order-sensitive (-DHEAD_DIM=128 ...). */
  options: string[];
  /** Compiler identity (NVRTC version) so an upgrade never reuses stale images. */
  compilerVersion: string;
}

export type Compiler = (source: string, name: string, arch: string, options: string[]) => CompiledImage;

export function sourceHash(source: string): string {
  return createHash('sha256').update(source).digest('hex');
}

/** Hex key naming one compiled image; equal requests give equal keys, any field change a new one. */
export function cacheKey(req: CompileRequest): string {
  const material = JSON.stringify({
    name: req.name,
    options: req.options,
    arch: req.arch,
    compiler: req.compilerVersion,
    source: sourceHash(req.source),
  });
  return createHash('sha256').update(material).digest('hex').slice(0, 32);
}

export function defaultCacheDir(): string {
  return process.env.SPARSE_FRONTIER_CUDA_CACHE ?? join(homedir(), '.cache', 'sparse-frontier', 'cuda');
}

export interface CacheResult {
  image: Buffer;
  format: CompiledImage['format'];
  /** True when the image came from disk. */
  hit: boolean;
  path: string;
}

export class CompileCache {
  constructor(private readonly dir: string, private readonly compile: Compiler) {}

  get(req: CompileRequest): CacheResult {
    const format: CompiledImage['format'] = req.arch.startsWith('sm_') ? 'cubin' : 'ptx';
    const path = join(this.dir, `${req.name}-${cacheKey(req)}.${format}`);
    if (existsSync(path)) return { image: readFileSync(path), format, hit: true, path };
    const compiled = this.compile(req.source, req.name, req.arch, req.options);
    mkdirSync(this.dir, { recursive: true });
    // Write then rename, so a concurrent reader never sees half a file.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, compiled.image);
    renameSync(tmp, path);
    return { image: compiled.image, format: compiled.format, hit: false, path };
  }
}

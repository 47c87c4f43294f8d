/**
 * safetensors files: a little-endian u64 header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw data. Reading parses only the header up front; each tensor is
 * read on request by its own byte range (one positioned read into a buffer the size of that tensor),
 * so a 10 GB checkpoint is never held in memory to fetch one matrix. Sharded checkpoints
 * (model.safetensors.index.json) are one store over several files.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { WeightStore, WeightTensor } from './weights.js';
import { bf16ToF32, f16ToF32 } from './float-formats.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Where one tensor lives: file, dtype, shape, absolute byte range [begin, end). */
export interface TensorLocation {
  file: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** A tensor in its stored encoding (for backends that upload bf16/f16 as is). */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

// A header larger than this is not a real checkpoint header (the Rust reference caps it at 100 MB).
const MAX_HEADER_BYTES = 100_000_000;
// One readSync call reads at most 2 GiB - 1; larger tensors are read in pieces.
const MAX_READ_CHUNK = 1 << 30;

if (endianness() !== 'LE') throw new Error('safetensors reader assumes a little-endian host');

function readExactly(fd: number, target: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(MAX_READ_CHUNK, target.length - done);
    const got = readSync(fd, target, done, want, position + done);
    if (got === 0) throw new Error(`safetensors file is truncated: ${file} ended at byte ${position + done}`);
    done += got;
  }
}

function isDtype(x: unknown): x is SafetensorsDtype {
  return x === 'F32' || x === 'F16' || x === 'BF16';
}

/** Parse and check the header of one safetensors file; returns each tensor's location. */
export function readSafetensorsHeader(file: string): { tensors: Map<string, TensorLocation>; metadata: Record<string, string> } {
  if (!existsSync(file)) throw new Error(`safetensors file not found: ${file}`);
  const fd = openSync(file, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) throw new Error(`not a safetensors file (shorter than its 8-byte header length): ${file}`);
    const lengthBytes = new Uint8Array(8);
    readExactly(fd, lengthBytes, 0, file);
    const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
    if (headerLength > MAX_HEADER_BYTES) throw new Error(`bad safetensors header in ${file}: header length ${headerLength} is implausible`);
    if (8 + headerLength > fileSize) {
      throw new Error(`safetensors file is truncated: ${file} has ${fileSize} bytes but its header alone needs ${8 + headerLength}`);
    }
    const headerBytes = new Uint8Array(headerLength);
    readExactly(fd, headerBytes, 8, file);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
    } catch (e) {
      throw new Error(`bad safetensors header in ${file}: not valid JSON (${(e as Error).message})`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw new Error(`bad safetensors header in ${file}: not a JSON object`);

    const dataStart = 8 + headerLength;
    const dataSize = fileSize - dataStart;
    const tensors = new Map<string, TensorLocation>();
    let metadata: Record<string, string> = {};
    for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = (entry ?? {}) as Record<string, string>;
        continue;
      }
      const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const where = `tensor "${name}" in ${file}`;
      if (!e || typeof e !== 'object') throw new Error(`bad safetensors header: ${where} is not an object`);
      if (typeof e.dtype !== 'string') throw new Error(`bad safetensors header: ${where} has no dtype`);
      if (!isDtype(e.dtype)) throw new Error(`unsupported safetensors dtype ${e.dtype} for ${where} (supported: F32, F16, BF16)`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new Error(`bad safetensors header: ${where} has an invalid shape ${JSON.stringify(e.shape)}`);
      }
      const offsets = e.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
        throw new Error(`bad safetensors header: ${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
      }
      const shape = e.shape as number[];
      const expectedBytes = shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[e.dtype];
      if (offsets[1] - offsets[0] !== expectedBytes) {
        throw new Error(`bad safetensors header: ${where} spans ${offsets[1] - offsets[0]} bytes but shape [${shape}] of ${e.dtype} needs ${expectedBytes}`);
      }
      if (offsets[1] > dataSize) {
        throw new Error(`safetensors file is truncated: ${where} ends at data byte ${offsets[1]} but the file holds only ${dataSize} data bytes`);
      }
      tensors.set(name, { file, dtype: e.dtype, shape, begin: dataStart + offsets[0], end: dataStart + offsets[1] });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/** The stored bytes of one tensor, read by its byte range only. */
export function readTensorBytes(loc: TensorLocation): Uint8Array {
  const bytes = new Uint8Array(loc.end - loc.begin);
  if (!existsSync(loc.file)) throw new Error(`safetensors file disappeared: ${loc.file}`);
  const fd = openSync(loc.file, 'r');
  try {
    readExactly(fd, bytes, loc.begin, loc.file);
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** Stored bytes (little-endian) of a tensor → float32 values. */
export function decodeToFloat32(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  // `bytes` is freshly allocated by readTensorBytes, so its buffer is aligned for typed views.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  switch (dtype) {
    case 'F32':
      return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.length / 4);
    case 'BF16':
      return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length / 2));
    case 'F16':
      return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length / 2));
  }
}

/**
 * A WeightStore over one or more safetensors files. Headers are parsed when it is opened; tensor
 * data is read from disk on every `get` (nothing is cached: callers keep what they need).
 */
export class SafetensorsWeights implements WeightStore {
  private constructor(private readonly locations: Map<string, TensorLocation>, readonly files: string[]) {}

  /** One file. */
  static openFile(file: string): SafetensorsWeights {
    return new SafetensorsWeights(readSafetensorsHeader(file).tensors, [file]);
  }

  /** A sharded checkpoint through its model.safetensors.index.json (weight_map: tensor → shard file). */
  static openIndex(indexFile: string): SafetensorsWeights {
    if (!existsSync(indexFile)) throw new Error(`safetensors index not found: ${indexFile}`);
    let index: unknown;
    try {
      index = JSON.parse(readFileSync(indexFile, 'utf8'));
    } catch (e) {
      throw new Error(`safetensors index is not valid JSON (${indexFile}): ${(e as Error).message}`);
    }
    const weightMap = (index as { weight_map?: unknown })?.weight_map;
    if (!weightMap || typeof weightMap !== 'object') throw new Error(`safetensors index has no weight_map object: ${indexFile}`);
    const dir = dirname(indexFile);
    const shardNames = [...new Set(Object.values(weightMap as Record<string, unknown>))];
    const locations = new Map<string, TensorLocation>();
    const files: string[] = [];
    for (const shard of shardNames) {
      if (typeof shard !== 'string') throw new Error(`safetensors index ${indexFile} maps a tensor to a non-string shard ${JSON.stringify(shard)}`);
      const file = join(dir, shard);
      if (!existsSync(file)) throw new Error(`shard ${shard} listed in ${basename(indexFile)} is missing: ${file}`);
      files.push(file);
      const { tensors } = readSafetensorsHeader(file);
      for (const [name, loc] of tensors) {
        if ((weightMap as Record<string, string>)[name] === shard) locations.set(name, loc);
      }
    }
    for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
      if (!locations.has(name)) throw new Error(`tensor ${name} is listed in ${basename(indexFile)} under ${shard} but that shard does not contain it`);
    }
    return new SafetensorsWeights(locations, files);
  }

  /** The checkpoint's weights in `dir`: model.safetensors.index.json if present, else model.safetensors. */
  static openDirectory(dir: string): SafetensorsWeights {
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(index)) return SafetensorsWeights.openIndex(index);
    const single = join(dir, 'model.safetensors');
    if (existsSync(single)) return SafetensorsWeights.openFile(single);
    throw new Error(`no weights in ${dir}: expected model.safetensors or model.safetensors.index.json`);
  }

  names(): string[] {
    return [...this.locations.keys()];
  }

  has(name: string): boolean {
    return this.locations.has(name);
  }

  /** Dtype, shape and byte range without reading data. */
  location(name: string): TensorLocation {
    const loc = this.locations.get(name);
    if (!loc) throw new Error(`missing tensor in checkpoint: ${name}`);
    return loc;
  }

  get(name: string): WeightTensor {
    const loc = this.location(name);
    return { shape: [...loc.shape], data: decodeToFloat32(loc.dtype, readTensorBytes(loc)) };
  }

  /** The tensor in its stored dtype (no conversion). */
  getRaw(name: string): RawTensor {
    const loc = this.location(name);
    return { dtype: loc.dtype, shape: [...loc.shape], bytes: readTensorBytes(loc) };
  }

  /** Total size in bytes of the tensor data on disk. */
  totalBytes(): number {
    let total = 0;
    for (const loc of this.locations.values()) total += loc.end - loc.begin;
    return total;
  }
}

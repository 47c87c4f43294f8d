/**
 * Writes safetensors files (one file, or several shards plus model.safetensors.index.json) from
 * float32 tensors, stored as F32, BF16 or F16. Used by tests and tools that build checkpoints; the
 * output is byte-for-byte deterministic for the same input (tensor order as given, header padded
 * with spaces to a multiple of 8 bytes, as the reference implementation does).
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { SafetensorsDtype } from './safetensors.js';
import { f32ToBf16, f32ToF16 } from './float-formats.js';

export interface TensorToWrite {
  name: string;
  /** Row-major shape; product must equal data.length. */
  shape: number[];
  data: Float32Array;
}

export interface WriteOptions {
  /** Stored dtype of every tensor (default F32). */
  dtype?: SafetensorsDtype;
  /** Free-form string metadata (`__metadata__`); HF writes {"format": "pt"}. */
  metadata?: Record<string, string>;
}

function encode(dtype: SafetensorsDtype, data: Float32Array): Uint8Array {
  switch (dtype) {
    case 'F32':
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case 'BF16': {
      const bits = f32ToBf16(data);
      return new Uint8Array(bits.buffer);
    }
    case 'F16': {
      const bits = f32ToF16(data);
      return new Uint8Array(bits.buffer);
    }
  }
}

/** Write `tensors` to one safetensors file; returns the file's size in bytes. */
export function writeSafetensors(file: string, tensors: TensorToWrite[], options: WriteOptions = {}): number {
  const dtype = options.dtype ?? 'F32';
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  const payloads: Uint8Array[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`duplicate tensor name ${t.name}`);
    seen.add(t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${t.name}: shape [${t.shape}] has ${count} elements but data has ${t.data.length}`);
    const bytes = encode(dtype, t.data);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    payloads.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  json += ' '.repeat(padded - jsonBytes.length);
  const lengthBytes = new Uint8Array(8);
  new DataView(lengthBytes.buffer).setBigUint64(0, BigInt(padded), true);

  const fd = openSync(file, 'w');
  try {
    writeSync(fd, lengthBytes);
    writeSync(fd, new TextEncoder().encode(json));
    for (const p of payloads) writeSync(fd, p);
  } finally {
    closeSync(fd);
  }
  return 8 + padded + offset;
}

/**
 * Write `tensors` split into `numShards` files named as HF names them
 * (model-00001-of-0000N.safetensors), in order, plus model.safetensors.index.json.
 * Returns the shard file names.
 */
export function writeShardedSafetensors(dir: string, tensors: TensorToWrite[], numShards: number, options: WriteOptions = {}): string[] {
  if (!Number.isInteger(numShards) || numShards < 1 || numShards > tensors.length) {
    throw new Error(`cannot split ${tensors.length} tensors into ${numShards} shards`);
  }
  const dtype = options.dtype ?? 'F32';
  const elementBytes = dtype === 'F32' ? 4 : 2;
  const pad = (n: number) => String(n).padStart(5, '0');
  const names: string[] = [];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let s = 0; s < numShards; s++) {
    const part = tensors.slice(Math.floor((s * tensors.length) / numShards), Math.floor(((s + 1) * tensors.length) / numShards));
    const name = `model-${pad(s + 1)}-of-${pad(numShards)}.safetensors`;
    writeSafetensors(join(dir, name), part, options);
    names.push(name);
    for (const t of part) {
      weightMap[t.name] = name;
      totalSize += t.data.length * elementBytes;
    }
  }
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  writeFileSync(join(dir, 'model.safetensors.index.json'), `${JSON.stringify(index, null, 2)}\n`);
  return names;
}

/**
 * Host-side bfloat16 conversion: float32 ↔ raw 16-bit words (Uint16Array), round to nearest even,
 * NaN kept NaN. The device kernels take and produce these raw words.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function floatToBf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return 0x7fc0; // NaN
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

export function bf16BitsToFloat(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/** [n] float32 → [n] bf16 words. */
export function toBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = floatToBf16Bits(src[i]);
  return out;
}

/** [n] bf16 words → [n] float32 (exact). */
export function fromBf16(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) outBits[i] = src[i] << 16;
  return out;
}

/** Rounds every element of a float32 array to the nearest bf16 value, in place. */
export function roundToBf16InPlace(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = bf16BitsToFloat(floatToBf16Bits(x[i]));
  return x;
}

/** The bf16 quiet NaN used to poison outputs before a kernel runs. */
export const BF16_NAN_BITS = 0x7fc0;
export const F32_NAN_BITS = 0x7fc00000;

/**
 * Conversions between float32 and the 16-bit float formats checkpoints are stored in (bfloat16 and
 * IEEE half). Reading widens exactly; writing rounds to nearest, ties to even, as PyTorch does.
 * Bit patterns are handled as Uint16Array / Uint32Array views of little-endian data.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits [n] → float32 [n]. Exact: bfloat16 is the top half of a float32. */
export function bf16ToF32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** float32 [n] → bfloat16 bits [n], round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const inBits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const x = inBits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x0040;
      continue;
    }
    const lsb = (x >>> 16) & 1;
    out[i] = ((x + 0x7fff + lsb) >>> 16) & 0xffff;
  }
  return out;
}

/** One IEEE half → float32 value (exact). */
export function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** IEEE half bits [n] → float32 [n] (exact, subnormals included). */
export function f16ToF32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  for (let i = 0; i < bits.length; i++) out[i] = halfBitsToNumber(bits[i]);
  return out;
}

/** One float32 value → IEEE half bits, round to nearest even, overflow to ±Infinity. */
export function numberToHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  // Unbiased exponent of the value; half normals cover -14..15.
  const e = exponent - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Normal half: keep 10 mantissa bits, round the 13 dropped ones to nearest even.
    let half = ((e + 15) << 10) | (mantissa >>> 13);
    const dropped = mantissa & 0x1fff;
    if (dropped > 0x1000 || (dropped === 0x1000 && (half & 1))) half += 1; // may carry into the exponent: correct
    return sign | half;
  }
  if (e < -25) return sign; // below half the smallest subnormal: rounds to zero
  // Subnormal half: value = m · 2^-24 with m = full significand shifted right.
  const significand = mantissa | 0x800000; // 24 bits, value = significand · 2^(e-23)
  const shift = -e - 1; // how far to shift so the unit is 2^-24: (e - 23) - (-24) = e + 1 → shift right by -(e+1)
  const m = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  let half = m;
  if (rest > halfway || (rest === halfway && (m & 1))) half += 1;
  return sign | half;
}

/** float32 [n] → IEEE half bits [n]. */
export function f32ToF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = numberToHalfBits(values[i]);
  return out;
}

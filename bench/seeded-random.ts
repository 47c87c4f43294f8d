/**
 * mulberry32: a small seeded 32-bit generator for benchmark inputs, test inputs and tiny checkpoints
 * (not the tasks' generator, src/tasks/random.ts). Its outputs are part of stored fixtures and
 * predictions, so its arithmetic must not change.
 */

/** Uniform in [0, 1) with 2^-32 resolution. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [-1, 1): mulberry32's draw, doubled and shifted. */
export function symmetricUniform(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() * 2 - 1;
}

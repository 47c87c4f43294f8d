/**
 * A small seedable pseudo-random generator (xoshiro128**, state seeded through splitmix32) with the
 * few sampling helpers the task generators need. Every draw the tasks make goes through one of these,
 * so an example is a pure function of its seed. Bit parity with Python's `random` is not a goal.
 */

function splitmix32(state: number): [next: number, output: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

export class SeededRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any safe integer (negative allowed); both 32-bit halves feed the state. */
  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed)) throw new Error(`random seed must be a safe integer, got ${seed}`);
    const low = Number(BigInt.asUintN(32, BigInt(seed)));
    const high = Number(BigInt.asUintN(32, BigInt(seed) >> 32n));
    let state = low ^ Math.imul(high, 0x27d4eb2d);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(state);
      state = next;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  float(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new Error(`int(n) needs an integer 1 ≤ n ≤ 2^32, got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n); // accept draws below the largest multiple of n
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  intBetween(lo: number, hi: number): number {
    if (hi < lo) throw new Error(`intBetween: empty range [${lo}, ${hi}]`);
    return lo + this.int(hi - lo + 1);
  }

  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('choice from an empty list');
    return items[this.int(items.length)] as T;
  }

  /** `k` draws with replacement. */
  choices<T>(items: readonly T[], k: number): T[] {
    const out: T[] = [];
    for (let i = 0; i < k; i++) out.push(this.choice(items));
    return out;
  }

  /** `k` distinct positions drawn without replacement, in draw order. */
  sample<T>(items: readonly T[], k: number): T[] {
    if (!Number.isInteger(k) || k < 0 || k > items.length) {
      throw new Error(`cannot sample ${k} of ${items.length} items without replacement`);
    }
    const pool = items.slice();
    for (let i = 0; i < k; i++) {
      const j = i + this.int(pool.length - i);
      [pool[i], pool[j]] = [pool[j] as T, pool[i] as T];
    }
    return pool.slice(0, k);
  }

  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j] as T, items[i] as T];
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// Seeded randomness for the synthetic-faces generator (and the project's shuffles): a 32-bit hash to derive
// independent streams from (seed, purpose, index), the sfc32 generator for the draws of one stream, a seeded
// Fisher–Yates shuffle, and a keyed permutation of 0..n−1 (a Feistel network with cycle walking) that spreads an
// identity's images over the whole file list.
// Everything here is pure integer arithmetic, so the same seed gives the same numbers on every platform.

/** Murmur3's 32-bit finaliser: a bijective mix of one unsigned 32-bit integer. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A well-mixed unsigned 32-bit hash of a list of integers (each taken modulo 2³²). */
export function hash32(...values: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) h = fmix32(Math.imul(h ^ (v >>> 0), 0x9e3779b1) + 0x7f4a7c15);
  return h;
}

/** Fisher–Yates over a copy of `items` with the stream keyed by `key`: the same key, the same order. */
export function seededShuffle<T>(items: readonly T[], ...key: readonly number[]): T[] {
  const out = [...items];
  const rng = new Rng(...key);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A stream of pseudo-random numbers (sfc32), with the few draws the generator needs. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** A stream keyed by any list of integers, e.g. `new Rng(seed, STREAM_IMAGE, index)`. */
  constructor(...key: readonly number[]) {
    const h = hash32(...key);
    this.a = hash32(h, 1);
    this.b = hash32(h, 2);
    this.c = hash32(h, 3);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** The next unsigned 32-bit integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One of `items`, chosen with the given non-negative weights (uniformly when omitted). */
  pick<T>(items: readonly T[], weights?: readonly number[]): T {
    if (items.length === 0) throw new Error("Rng.pick: no items to choose from");
    if (weights === undefined) return items[Math.floor(this.next() * items.length)];
    if (weights.length !== items.length) throw new Error(`Rng.pick: ${items.length} items but ${weights.length} weights`);
    const total = weights.reduce((s, w) => s + w, 0);
    let r = this.next() * total;
    for (let i = 0; i < items.length; i++) {
      r -= weights[i];
      if (r < 0) return items[i];
    }
    return items[items.length - 1];
  }
}

/**
 * Where `index` goes under a keyed permutation of 0..count−1 (a balanced Feistel network on the smallest even
 * number of bits that holds `count`, with cycle walking to stay below `count`). Pure and O(1) on average.
 */
export function permuteIndex(index: number, count: number, key: number): number {
  if (!Number.isInteger(count) || count < 1 || count > 2 ** 30) throw new Error(`permuteIndex: count ${count} must be an integer in 1..2^30`);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`permuteIndex: index ${index} is outside 0..${count - 1}`);
  if (count === 1) return 0;
  let bits = Math.max(2, Math.ceil(Math.log2(count)));
  if (bits % 2 === 1) bits++;
  const half = bits / 2;
  const mask = (1 << half) - 1;
  let x = index;
  do {
    let left = Math.floor(x / (mask + 1));
    let right = x & mask;
    for (let round = 0; round < 4; round++) {
      const f = hash32(key, round, right) & mask;
      const next = left ^ f;
      left = right;
      right = next;
    }
    x = left * (mask + 1) + right;
  } while (x >= count);
  return x;
}

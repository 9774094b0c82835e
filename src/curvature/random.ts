/**
 * The diagnostics' seeded probe generator: the project's sfc32 generator (src/rng.ts)
 * seeded by the seed alone, so probe vectors are reproducible from `seed`, independent of tfjs's
 * global random state and the backend.
 */
import { Rng } from '../rng.js';

export class ProbeRng extends Rng {
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`seed must be a finite number, got ${seed}.`);
    super(seed, null);
  }

  /** Uniform 32-bit unsigned integer. */
  next(): number {
    return this.nextUint32();
  }

  /** Uniform in [0, 1) with 32 random bits (one draw per value). */
  override uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** A vector of independent +-1 entries (Rademacher). */
  rademacher(n: number): Float64Array {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i += 32) {
      const bits = this.nextUint32();
      for (let j = 0; j < 32 && i + j < n; j++) v[i + j] = (bits >>> j) & 1 ? 1 : -1;
    }
    return v;
  }
}

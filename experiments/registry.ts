/**
 * The `problems` registry: `problems.get(name, options)` -> a fresh Problem.
 *
 * Each problem declares its options as a strict zod object with defaults and descriptions, so
 * that unknown or ill-typed options fail with a message naming the problem and the option, and
 * `curvature list` can print every option with its default.
 */
import { z } from 'zod';
import type { Problem, ProblemEntry } from '../src/harness/problem.js';

/** Every problem accepts `seed`: the seed of its parameter initialisation. */
export const seedOption = z
  .number()
  .int()
  .min(0)
  .default(0)
  .describe('seed of the parameter initialisation (the harness passes the run seed)');

/** Parse options with a strict zod schema; errors name the problem and every bad option. */
export function parseOptions<S extends z.ZodType>(
  problem: string,
  schema: S,
  options: Record<string, unknown> | undefined,
): z.output<S> {
  const r = schema.safeParse(options ?? {});
  if (r.success) return r.data;
  throw new Error(`Problem '${problem}': ${formatZodIssues(r.error)}`);
}

/** One line per zod error: "option 'dim': expected number, received string; ...". */
export function formatZodIssues(error: z.ZodError, what = 'option'): string {
  return error.issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') {
        return i.keys.map((k) => `unknown ${what} '${[...i.path, k].join('.')}'`).join('; ');
      }
      const path = i.path.length > 0 ? `${what} '${i.path.join('.')}': ` : '';
      return `${path}${i.message}`;
    })
    .join('; ');
}

/** Option docs (name, default, description) from a zod object schema with defaults. */
export function optionDocs(schema: z.ZodObject): ProblemEntry['options'] {
  const defaults = schema.parse({}) as Record<string, unknown>;
  return Object.entries(schema.shape).map(([name, s]) => ({
    name,
    default: defaults[name],
    description: (s as z.ZodType).description ?? '',
  }));
}

export class ProblemRegistry {
  private readonly entries = new Map<string, ProblemEntry>();

  register(entry: ProblemEntry): void {
    this.entries.set(entry.name, entry);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  list(): ProblemEntry[] {
    return [...this.entries.values()];
  }

  entry(name: string): ProblemEntry {
    const e = this.entries.get(name);
    if (!e) {
      throw new Error(`Unknown problem '${name}': expected one of ${this.names().join(', ')}.`);
    }
    return e;
  }

  /** A fresh problem instance; options are validated (unknown option -> clear error). */
  get(name: string, options: Record<string, unknown> = {}): Problem {
    return this.entry(name).create(options);
  }
}

export const problems = new ProblemRegistry();

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

/** The schema under `.default()`, `.optional()`, `.nullable()`. */
function valueSchema(s: z.ZodType): z.ZodType {
  let t = s;
  while (['default', 'optional', 'nullable', 'prefault'].includes(t._zod.def.type)) {
    t = (t._zod.def as unknown as { innerType: z.ZodType }).innerType;
  }
  return t;
}

/** The option's type as `curvature list` shows it. */
function typeOf(s: z.ZodType): string {
  const t = valueSchema(s);
  switch (t._zod.def.type) {
    case 'number':
      return (t as z.ZodNumber).isInt ? 'integer' : 'number';
    case 'boolean':
    case 'string':
      return t._zod.def.type;
    case 'enum':
      return (t as z.ZodEnum).options.map((o) => `'${String(o)}'`).join(' | ');
    default:
      return 'JSON';
  }
}

/**
 * `--problem-option name=value` read by the option's zod type: a number as a number, a boolean
 * as true/false, a string or enum as written, anything else (arrays) as JSON. Text that does not
 * read as the type is passed on as the string, so the schema's check names the option.
 */
function fromText(s: z.ZodType, raw: string): unknown {
  const t = valueSchema(s);
  const text = raw.trim();
  switch (t._zod.def.type) {
    case 'number':
      return text === '' || Number.isNaN(Number(text)) ? text : Number(text);
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text;
    case 'string':
    case 'enum':
      return text;
    default:
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return text;
      }
  }
}

/** Option docs (name, default, description, type, text form) from a zod object schema with defaults. */
export function optionDocs(schema: z.ZodObject): ProblemEntry['options'] {
  const defaults = schema.parse({}) as Record<string, unknown>;
  return Object.entries(schema.shape).map(([name, s]) => ({
    name,
    default: defaults[name],
    description: (s as z.ZodType).description ?? '',
    type: typeOf(s as z.ZodType),
    fromText: (raw: string) => fromText(s as z.ZodType, raw),
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

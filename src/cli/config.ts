/**
 * Comparison config files (docs/cli.md): a strict zod schema and a one-line error for anything
 * wrong. Optimizer options are checked by the optimizers' own OptionSpecs (./options.ts).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { formatZodIssues } from '../../experiments/index.js';
import type { ComparisonSpec, ProblemConfig } from '../harness/compare.js';
import { UsageError } from './io.js';
import { optimizerOptionsSchema } from './options.js';

const budgetSchema = z
  .object({
    steps: z.number().int().positive().optional(),
    epochs: z.number().positive().optional(),
    seconds: z.number().positive().optional(),
  })
  .strict()
  .refine((b) => b.steps !== undefined || b.epochs !== undefined || b.seconds !== undefined, {
    message: 'give at least one of steps, epochs, seconds',
  });
const optionsRecord = z.record(z.string(), z.unknown());
const problemConfigSchema = z
  .object({
    id: z.string().min(1).optional(),
    problem: z.string().min(1),
    options: optionsRecord.optional(),
    budget: budgetSchema,
    target: z.number().nullable().optional(),
    stopAtTarget: z.boolean().optional(),
    evalEvery: z.number().int().positive().optional(),
    recordEvery: z.number().int().positive().optional(),
    gradNormEvery: z.number().int().min(0).optional(),
    hyperparameters: optimizerOptionsSchema.optional(),
    optimizerBudgets: z.record(z.string(), budgetSchema).optional(),
    exclude: z.record(z.string(), z.string()).optional(),
  })
  .strict();
export const configSchema = z
  .object({
    name: z.string().optional(),
    problems: z.array(problemConfigSchema).min(1),
    optimizers: z.array(z.string().min(1)).min(1),
    optimizerOptions: optimizerOptionsSchema.optional(),
    seeds: z.union([z.number().int().positive(), z.array(z.number().int().min(0)).min(1)]),
  })
  .strict();

/** The first line of an error message (JSON.parse messages can quote the offending text). */
function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

export async function loadConfig(path: string): Promise<ComparisonSpec> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(
      `Config '${path}': ${code ? `cannot read (${code})` : `not valid JSON (${firstLine((e as Error).message)})`}.`,
    );
  }
  const r = configSchema.safeParse(json);
  if (!r.success) throw new UsageError(`Config '${path}': ${firstLine(formatZodIssues(r.error, 'field'))}.`);
  const c = r.data;
  const spec: ComparisonSpec = {
    problems: c.problems as ProblemConfig[],
    optimizers: c.optimizers,
    seeds: typeof c.seeds === 'number' ? Array.from({ length: c.seeds }, (_, i) => i) : c.seeds,
  };
  if (c.name !== undefined) spec.name = c.name;
  if (c.optimizerOptions !== undefined) spec.optimizerOptions = c.optimizerOptions;
  return spec;
}

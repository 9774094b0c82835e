/**
 * Option values from text and config files, read the library's way: an optimizer's options by
 * its OptionSpecs (src/optim/options.ts, reached through the registry's `optionDocs`), a
 * problem's by its zod schema (experiments/registry.ts). `--set beta1=0.9` is a number because
 * beta1 is declared a number, `--set epsilonMode=relative` a string because it is a choice; there
 * is no guessing from the text. Every bad name or value is a one-line UsageError (exit 2).
 */
import { z } from 'zod';
import { optimizerRegistry, type OptimizerEntry } from '../../optimizers/index.js';
import { problems } from '../../experiments/index.js';
import { UsageError } from './io.js';

/** `key=value` pairs split at the first '='. */
export function splitAssignments(pairs: string[] | undefined): [key: string, raw: string][] {
  return (pairs ?? []).map((p) => {
    const i = p.indexOf('=');
    const key = i < 0 ? '' : p.slice(0, i).trim();
    if (key === '') throw new UsageError(`Invalid assignment '${p}': expected key=value.`);
    return [key, p.slice(i + 1).trim()];
  });
}

function optimizerEntry(name: string): OptimizerEntry {
  const entry = optimizerRegistry.get(name);
  if (!entry) {
    throw new UsageError(`Unknown optimizer '${name}': expected one of ${[...optimizerRegistry.keys()].join(', ')}.`);
  }
  return entry;
}

/** One optimizer option from text, by its spec; `flag` names the assignment in errors. */
export function optimizerOptionFromText(optimizer: string, key: string, raw: string, flag: string): unknown {
  const entry = optimizerEntry(optimizer);
  const doc = entry.options.find((o) => o.name === key);
  if (!doc) {
    throw new UsageError(
      `${flag}: unknown option '${key}' for ${optimizer}: expected one of ${entry.options.map((o) => o.name).join(', ')}.`,
    );
  }
  try {
    return doc.fromText(raw);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}.`);
  }
}

/** `--set key=value ...` for one optimizer. */
export function optimizerOptionsFromText(optimizer: string, pairs: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of splitAssignments(pairs)) {
    out[key] = optimizerOptionFromText(optimizer, key, raw, `--set ${key}=${raw}`);
  }
  return out;
}

/**
 * `--set [optimizer.]key=value` assignments split per optimizer and read by each one's specs; an
 * optimizer prefix that is not in the run is an error (it would silently do nothing).
 */
export function optimizerAssignments(
  pairs: string[] | undefined,
  optimizers: string[],
): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [k, raw] of splitAssignments(pairs)) {
    const dot = k.indexOf('.');
    const targets = dot > 0 ? [k.slice(0, dot)] : optimizers;
    const key = dot > 0 ? k.slice(dot + 1) : k;
    if (dot > 0 && !optimizers.includes(targets[0]!)) {
      throw new UsageError(`--set ${k}: optimizer '${targets[0]}' is not in this run (${optimizers.join(', ')}).`);
    }
    for (const o of targets)
      out[o] = { ...(out[o] ?? {}), [key]: optimizerOptionFromText(o, key, raw, `--set ${k}=${raw}`) };
  }
  return out;
}

/**
 * `--problem-option key=value ...` read by the problem's schema types (numbers, booleans,
 * choices; arrays as JSON). Unknown names and bad values are left to the schema's check, which
 * names the problem and the option.
 */
export function problemOptionsFromText(problem: string, pairs: string[] | undefined): Record<string, unknown> {
  const docs = problems.has(problem) ? problems.entry(problem).options : [];
  const out: Record<string, unknown> = {};
  for (const [key, raw] of splitAssignments(pairs)) {
    const doc = docs.find((o) => o.name === key);
    out[key] = doc?.fromText ? doc.fromText(raw) : raw;
  }
  return out;
}

/**
 * A config file's `{ optimizer: { option: value } }` record, checked by each optimizer's specs
 * (the zod schema's check is derived from them, not written twice).
 */
export const optimizerOptionsSchema = z
  .record(z.string(), z.record(z.string(), z.unknown()))
  .superRefine((record, ctx) => {
    for (const [optimizer, values] of Object.entries(record)) {
      const entry = optimizerRegistry.get(optimizer);
      if (!entry) {
        ctx.addIssue({
          code: 'custom',
          path: [optimizer],
          message: `unknown optimizer (expected one of ${[...optimizerRegistry.keys()].join(', ')})`,
        });
        continue;
      }
      for (const [key, value] of Object.entries(values)) {
        const doc = entry.options.find((o) => o.name === key);
        if (!doc) {
          ctx.addIssue({
            code: 'custom',
            path: [optimizer, key],
            message: `unknown option for ${optimizer} (expected one of ${entry.options.map((o) => o.name).join(', ')})`,
          });
          continue;
        }
        try {
          doc.parse(value);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: [optimizer, key], message: (e as Error).message });
        }
      }
    }
  });

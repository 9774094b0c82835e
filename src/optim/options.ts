/**
 * Option specifications and constructor validation shared by every curvature optimizer.
 *
 * An optimizer declares its options once, as a record of `OptionSpec`s (default, description,
 * parser). `resolveOptions` fills defaults, rejects unknown names and invalid values with
 * PyTorch-style messages that name the option and the bad value
 * (`Invalid learningRate: -1 (must be >= 0)`), and `optionDocs` turns the same record into
 * the registry's documentation, so defaults live in exactly one place.
 *
 * The same record is the one option dialect from the library to the CLI and config files:
 * `optionFromText` reads `--set name=value` by the option's declared text form (`fromText`: a
 * number is a number, a choice is its string, `true`/`false` a boolean; no guessing), a config
 * file's values go through `parse` (src/cli/options.ts derives the config schema's check from
 * these specs), and `optionDocs` adds each option's `type` for `curvature list`.
 */
import { isSchedule, type LearningRate } from './schedules.js';

export interface OptionSpec<T> {
  readonly default: T;
  readonly description: string;
  /** Checks a user-supplied value; returns it (possibly normalised) or throws `invalidOption`. */
  parse(value: unknown, name: string): T;
  /** False for options that cannot go into getConfig (callbacks). Default true. */
  readonly serializable?: boolean;
  /** The value's type as `curvature list` shows it, e.g. 'number', 'integer', "'a' | 'b'". Default 'JSON'. */
  readonly type?: string;
  /**
   * Reads the option written as text (`--set name=value`) into the value `parse` checks. Without
   * it the text must be JSON (arrays, objects, null), read strictly.
   */
  fromText?(raw: string, name: string): unknown;
}

export type OptionSpecs = Record<string, OptionSpec<any>>;

/** The options after defaults are filled in. */
export type ResolvedOptions<S extends OptionSpecs> = {
  -readonly [K in keyof S]: S[K] extends OptionSpec<infer T> ? T : never;
};

/** What a user may pass: every option optional. */
export type OptionsInput<S extends OptionSpecs> = {
  [K in keyof S]?: S[K] extends OptionSpec<infer T> ? T : never;
};

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object' && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/** The error every validator throws: `Invalid <name>: <value> (<reason>)`. */
export function invalidOption(name: string, value: unknown, reason: string): Error {
  return new Error(`Invalid ${name}: ${show(value)} (${reason})`);
}

export interface NumberBounds {
  min?: number;
  max?: number;
  /** Exclude the bound itself, e.g. beta in [0, 1): `{ min: 0, max: 1, maxExclusive: true }`. */
  minExclusive?: boolean;
  maxExclusive?: boolean;
  integer?: boolean;
}

function boundsText(b: NumberBounds): string {
  const { min, max } = b;
  if (min !== undefined && max !== undefined) {
    return `must be in ${b.minExclusive ? '(' : '['}${min}, ${max}${b.maxExclusive ? ')' : ']'}`;
  }
  if (min !== undefined) return `must be ${b.minExclusive ? '>' : '>='} ${min}`;
  if (max !== undefined) return `must be ${b.maxExclusive ? '<' : '<='} ${max}`;
  return 'must be a finite number';
}

function checkNumber(value: unknown, name: string, b: NumberBounds): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalidOption(name, value, `${boundsText(b)}; expected a finite number`);
  }
  const tooLow = b.min !== undefined && (b.minExclusive ? value <= b.min : value < b.min);
  const tooHigh = b.max !== undefined && (b.maxExclusive ? value >= b.max : value > b.max);
  if (tooLow || tooHigh) throw invalidOption(name, value, boundsText(b));
  if (b.integer && !Number.isInteger(value)) {
    throw invalidOption(name, value, 'must be an integer');
  }
  return value;
}

/** A number written as text: `1e-3`, `0.9`, `10`; anything else names the option. */
export function numberFromText(raw: string, name: string, b: NumberBounds = {}): number {
  const n = Number(raw);
  if (raw.trim() === '' || Number.isNaN(n)) throw invalidOption(name, raw, `${boundsText(b)}; expected a number`);
  return n;
}

const numberType = (b: NumberBounds): string => (b.integer ? 'integer' : 'number');

/** Builders for the common kinds of option. */
export const option = {
  number(defaultValue: number, description: string, bounds: NumberBounds = {}): OptionSpec<number> {
    return {
      default: defaultValue,
      description,
      parse: (v, name) => checkNumber(v, name, bounds),
      type: numberType(bounds),
      fromText: (raw, name) => numberFromText(raw, name, bounds),
    };
  },
  /** A coefficient in [0, 1) such as beta1, beta2, alpha, momentum. */
  decay(defaultValue: number, description: string): OptionSpec<number> {
    return option.number(defaultValue, description, { min: 0, max: 1, maxExclusive: true });
  },
  boolean(defaultValue: boolean, description: string): OptionSpec<boolean> {
    return {
      default: defaultValue,
      description,
      parse(v, name) {
        if (typeof v !== 'boolean') throw invalidOption(name, v, 'must be true or false');
        return v;
      },
      type: 'boolean',
      fromText(raw, name) {
        if (raw === 'true' || raw === 'false') return raw === 'true';
        throw invalidOption(name, raw, 'must be true or false');
      },
    };
  },
  /** A non-negative number, or a schedule of the step (see schedules.ts). */
  learningRate(defaultValue: number, description: string): OptionSpec<LearningRate> {
    return {
      default: defaultValue,
      description,
      parse(v, name) {
        if (typeof v === 'function' || isSchedule(v)) return v as LearningRate;
        return checkNumber(v, name, { min: 0 });
      },
      // As text, a number: a schedule is code (it would not survive results.json either).
      type: 'number',
      fromText: (raw, name) => numberFromText(raw, name, { min: 0 }),
    };
  },
  /** One of a fixed set of strings. */
  choice<T extends string>(defaultValue: T, values: readonly T[], description: string): OptionSpec<T> {
    return {
      default: defaultValue,
      description,
      parse(v, name) {
        if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
          throw invalidOption(name, v, `must be one of ${values.map((x) => `'${x}'`).join(', ')}`);
        }
        return v as T;
      },
      type: values.map((x) => `'${x}'`).join(' | '),
      fromText: (raw) => raw,
    };
  },
  /** A number within bounds, or undefined (the default: "derive it", e.g. from another option). */
  optionalNumber(description: string, bounds: NumberBounds = {}): OptionSpec<number | undefined> {
    return {
      default: undefined,
      description,
      parse: (v, name) => (v === undefined ? undefined : checkNumber(v, name, bounds)),
      type: numberType(bounds),
      fromText: (raw, name) => numberFromText(raw, name, bounds),
    };
  },
  /** A function option (callbacks); never serialised. */
  callback<F extends (...args: never[]) => unknown>(description: string): OptionSpec<F | undefined> {
    return {
      default: undefined,
      description,
      serializable: false,
      parse(v, name) {
        if (v !== undefined && typeof v !== 'function') {
          throw invalidOption(name, v, 'must be a function');
        }
        return v as F | undefined;
      },
      type: 'function',
      fromText(raw, name) {
        throw invalidOption(name, raw, 'a function: set it in code, not as text');
      },
    };
  },
};

/**
 * Fill defaults and validate. Unknown names throw
 * `Unknown option 'lr' for Adam: expected one of learningRate, beta1, ...`;
 * `undefined` values mean "use the default".
 */
export function resolveOptions<S extends OptionSpecs>(
  owner: string,
  specs: S,
  given: object | null | undefined,
): ResolvedOptions<S> {
  if (given !== undefined && given !== null && (typeof given !== 'object' || Array.isArray(given))) {
    throw new Error(`${owner} options must be an object, got ${show(given)}`);
  }
  const input = (given ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!Object.prototype.hasOwnProperty.call(specs, key)) {
      throw new Error(`Unknown option '${key}' for ${owner}: expected one of ${Object.keys(specs).join(', ')}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const v = input[key];
    out[key] = v === undefined ? spec.default : spec.parse(v, key);
  }
  return out as ResolvedOptions<S>;
}

/** JSON text, read strictly (no fallback to a string): the text form of compound values. */
function jsonFromText(raw: string, name: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw invalidOption(name, raw, 'expected JSON here, e.g. [1, 2] or null');
  }
}

/**
 * An option written as text (`--set name=value`), read by its spec's text form and checked by
 * its `parse`: the CLI's only way from text to an option value.
 */
export function optionFromText<T>(spec: OptionSpec<T>, raw: string, name: string): T {
  const value = spec.fromText ? spec.fromText(raw.trim(), name) : jsonFromText(raw, name);
  return spec.parse(value, name);
}

/** One option as the registry documents it; `fromText` / `parse` check a value the spec's way. */
export interface OptionDoc {
  name: string;
  default: unknown;
  description: string;
  /** The value's type ('number', 'integer', 'boolean', "'a' | 'b'", 'JSON', ...). */
  type: string;
  /** `--set name=value`: the text read and checked (throws `Invalid name: ...`). */
  fromText(raw: string): unknown;
  /** A value from a config file or code, checked (throws `Invalid name: ...`). */
  parse(value: unknown): unknown;
}

/** The registry's documentation of an option record (`curvature list`, `--set`, config files). */
export function optionDocs(specs: OptionSpecs): OptionDoc[] {
  return Object.entries(specs).map(([name, s]) => ({
    name,
    default: s.default,
    description: s.description,
    type: s.type ?? 'JSON',
    fromText: (raw: string) => optionFromText(s, raw, name),
    parse: (value: unknown) => (value === undefined ? s.default : s.parse(value, name)) as unknown,
  }));
}

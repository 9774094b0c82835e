// One option dialect from the library to the CLI and config files (issue 14): `--set` values are
// read by the optimizers' OptionSpecs, `--problem-option` values by the problems' zod types, config
// files' optimizer options are checked by the same specs, and `list` shows each option's type.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, expectUsageError, tmpDir } from './helpers/cli.js';
import {
  optimizerAssignments,
  optimizerOptionsFromText,
  problemOptionsFromText,
  configSchema,
  loadConfig,
  UsageError,
} from '../src/cli.js';
import { option, optionFromText } from '../src/optim/options.js';
import { formatZodIssues } from '../experiments/index.js';

describe('--set values are read by the option specs', () => {
  it('numbers, booleans, choices and nullable choices by their declared type', () => {
    expect(optimizerOptionsFromText('adam', ['learningRate=1e-3', 'beta1=0.8', 'amsgrad=true'])).toEqual({
      learningRate: 0.001,
      beta1: 0.8,
      amsgrad: true,
    });
    expect(optimizerOptionsFromText('shampoo', ['epsilonMode=absolute'])).toEqual({ epsilonMode: 'absolute' });
    expect(optimizerOptionsFromText('lbfgs', ['lineSearchFn=null', 'maxEval=7'])).toEqual({
      lineSearchFn: null,
      maxEval: 7,
    });
    expect(optimizerOptionsFromText('lbfgs', ['lineSearchFn=strong_wolfe'])).toEqual({ lineSearchFn: 'strong_wolfe' });
    // Compound values without a declared text form are JSON, read strictly.
    expect(optimizerOptionsFromText('muon', ['nsCoeffs=[3, -4, 2]'])).toEqual({ nsCoeffs: [3, -4, 2] });
  });

  it('no guessing: text that is not of the declared type is an error naming the option', () => {
    // JSON guessing read `1` as a number and `"true"` as a string; the spec says boolean.
    expect(() => optimizerOptionsFromText('adam', ['amsgrad=1'])).toThrow(/--set amsgrad=1: Invalid amsgrad: "1"/);
    expect(() => optimizerOptionsFromText('adam', ['beta1=high'])).toThrow(/Invalid beta1: "high".*expected a number/);
    expect(() => optimizerOptionsFromText('adam', ['beta1=1.5'])).toThrow(/Invalid beta1: 1.5 \(must be in \[0, 1\)\)/);
    expect(() => optimizerOptionsFromText('lbfgs', ['maxEval=2.5'])).toThrow(/Invalid maxEval: 2.5/);
    expect(() => optimizerOptionsFromText('muon', ['nsCoeffs=3,4,2'])).toThrow(/Invalid nsCoeffs: "3,4,2".*JSON/);
    expect(() => optimizerOptionsFromText('sgd', ['onSkip=x'])).toThrow(/Invalid onSkip.*function/);
    expect(() => optimizerOptionsFromText('adam', ['lr=0.1'])).toThrow(/unknown option 'lr' for adam: expected one of/);
    expect(() => optimizerOptionsFromText('adam', ['beta1'])).toThrow(UsageError);
  });

  it('--set with and without an optimizer prefix, each read by its own specs', () => {
    const out = optimizerAssignments(['learningRate=0.1', 'sgd.nesterov=true', 'sgd.momentum=0.9'], ['sgd', 'adam']);
    expect(out).toEqual({ sgd: { learningRate: 0.1, nesterov: true, momentum: 0.9 }, adam: { learningRate: 0.1 } });
    // momentum is an SGD option, not Adam's: set for both, it is an error naming adam.
    expect(() => optimizerAssignments(['momentum=0.9'], ['sgd', 'adam'])).toThrow(/unknown option 'momentum' for adam/);
  });

  it('optionFromText trims and checks through parse; a spec without fromText reads JSON', () => {
    const n = option.number(1, 'n', { min: 0, integer: true });
    expect(optionFromText(n, ' 12 ', 'n')).toBe(12);
    expect(() => optionFromText(n, '', 'n')).toThrow(/Invalid n: "".*expected a number/);
    const custom = { default: [0], description: 'a list', parse: (v: unknown) => v as number[] };
    expect(optionFromText(custom, '[1, 2]', 'xs')).toEqual([1, 2]);
    expect(() => optionFromText(custom, 'oops', 'xs')).toThrow(/Invalid xs: "oops" \(expected JSON/);
  });
});

describe('--problem-option values are read by the problem schema types', () => {
  it('numbers, enums and arrays', () => {
    expect(problemOptionsFromText('mlp-mnist', ['hidden=[16, 8]', 'activation=tanh', 'trainSize=500'])).toEqual({
      hidden: [16, 8],
      activation: 'tanh',
      trainSize: 500,
    });
    // Text that does not read as the type is left for the schema's check (which names the option).
    expect(problemOptionsFromText('quadratic', ['dim=abc'])).toEqual({ dim: 'abc' });
  });
});

describe('config files: optimizer options checked by the same specs', () => {
  const base = { problems: [{ problem: 'beale', budget: { steps: 5 } }], optimizers: ['adam'], seeds: 1 };
  const issues = (c: unknown): string => {
    const r = configSchema.safeParse(c);
    return r.success ? '' : formatZodIssues(r.error, 'field');
  };

  it('valid options pass; bad values, unknown options and unknown optimizers are named', () => {
    expect(issues({ ...base, optimizerOptions: { adam: { beta1: 0.5, learningRate: 0.01 } } })).toBe('');
    expect(issues({ ...base, optimizerOptions: { adam: { beta1: 2 } } })).toMatch(
      /field 'optimizerOptions\.adam\.beta1': Invalid beta1: 2 \(must be in \[0, 1\)\)/,
    );
    expect(issues({ ...base, optimizerOptions: { adam: { lr: 0.1 } } })).toMatch(
      /field 'optimizerOptions\.adam\.lr': unknown option for adam/,
    );
    expect(issues({ ...base, optimizerOptions: { adamw: { beta1: 0.5 } } })).toMatch(
      /field 'optimizerOptions\.adamw': unknown optimizer/,
    );
    const hp = { ...base, problems: [{ ...base.problems[0], hyperparameters: { adam: { amsgrad: 'yes' } } }] };
    expect(issues(hp)).toMatch(/field 'problems\.0\.hyperparameters\.adam\.amsgrad': Invalid amsgrad: "yes"/);
  });

  it('loadConfig turns them into one-line usage errors', async () => {
    const dir = tmpDir();
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify({ ...base, optimizerOptions: { adam: { epsilon: -1 } } }));
    await expect(loadConfig(path)).rejects.toThrow(
      /^Config '.*c\.json': field 'optimizerOptions\.adam\.epsilon': Invalid epsilon: -1/,
    );
  });
});

describe('the CLI reads options through the specs', () => {
  it('a bad --set value exits 2 with one line naming the option', async () => {
    expectUsageError(
      await cli('run', '--problem', 'beale', '--optimizer', 'adam', '--set', 'amsgrad=yes'),
      /--set amsgrad=yes: Invalid amsgrad: "yes" \(must be true or false\)/,
    );
    expectUsageError(
      await cli('run', '--problem', 'beale', '--optimizer', 'sgd', '--set', 'beta1=0.9'),
      /unknown option 'beta1' for sgd/,
    );
  });

  it('list shows each option with its type', async () => {
    const r = await cli('list');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--set beta1=0\.9 {2}\(number\) /);
    expect(r.out).toMatch(/--set amsgrad=false {2}\(boolean\) /);
    expect(r.out).toMatch(/--set lineSearchFn=null {2}\('strong_wolfe' \| null\) /);
    expect(r.out).toMatch(/--problem-option activation="relu" {2}\('relu' \| 'tanh' \| 'sigmoid' \| 'linear'\) /);
    const j = JSON.parse((await cli('list', '--json')).out) as {
      optimizers: { name: string; options: { name: string; type: string }[] }[];
    };
    const adam = j.optimizers.find((o) => o.name === 'adam')!;
    expect(adam.options.find((o) => o.name === 'maxEval' || o.name === 'epsilon')!.type).toBe('number');
  });
});

import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'playground/dist/**', 'reports/**', 'node_modules/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // tfjs engine internals and kernel swaps live in src/tfjs-internals/ only (pinned by
    // test/tfjs-internals.test.ts); everything else goes through its functions.
    files: ['src/**/*.ts', 'optimizers/**/*.ts', 'experiments/**/*.ts', 'scripts/**/*.ts', 'playground/src/**/*.ts'],
    ignores: ['src/tfjs-internals/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "CallExpression[callee.property.name=/^(engine|getKernel|registerKernel|unregisterKernel)$/][callee.object.name='tf']",
          message: 'tfjs engine internals and kernel registrations belong in src/tfjs-internals/.',
        },
      ],
    },
  },
);

// ESLint (flat config): typescript-eslint's type-checked recommended rules; Prettier owns formatting
// (eslint-config-prettier turns off the rules it would fight with). Run by `npm test` through `npm run lint`.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'scratch/**', '.silo/**', 'test/artifacts/**', 'bin/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // `_`-prefixed names are deliberately unused (callback positions, destructuring to omit a key).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read HTTP answers, CLI JSON and raw rows as `any` on purpose: the assertions, not the
      // types, check their shape, and typing every answer would only restate the zod schemas.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // tap queues top-level `t.test()` calls and awaits them itself (tap docs, "Subtests").
      '@typescript-eslint/no-floating-promises': 'off',
    },
  },
  prettier,
);

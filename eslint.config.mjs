// Type-aware lint: typescript-eslint's strictTypeChecked, with the rules
// below turned off or narrowed, each for the reason written beside it.
// `npm run lint` (and so .ci/run) runs it; the type information comes from
// tsconfig.json, which covers every linted .ts file.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/fixtures/**', 'scripts/**'] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Haraka loads plugins with require() and several of its packages are CommonJS without types.
      '@typescript-eslint/no-require-imports': 'off',
      // node:test's test()/describe()/it() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      // With noUncheckedIndexedAccess (tsconfig.json) every index read may be undefined; `x[i]!`
      // is how code states an index it has just bounds-checked. Banning it would only move the
      // same claim into `as` casts or dead `?? throw` branches.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Numbers and booleans print as expected in messages; objects, undefined and null stay errors.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
      // `return next(code, msg)` is how a Haraka hook answers, and `(x) => void f(x)` callbacks
      // are the Node idiom; the rule forbids both.
      '@typescript-eslint/no-confusing-void-expression': 'off',
      // Adapters type Haraka's and the milter peer's objects as documented, but guard at run
      // time against what an older peer or a misbehaving plugin actually passes; this rule calls
      // each such guard unnecessary and its autofix would remove the guards.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // An async function without await still turns a throw into a rejected promise, which is
      // what the Promise-returning interfaces it implements (resolvers, key sources) expect.
      '@typescript-eslint/require-await': 'off',
      // Header and note maps are Record<string, …> keyed by name; deleting a key is the intent.
      '@typescript-eslint/no-dynamic-delete': 'off',
    },
  },
  {
    // docs/architecture.md §2: core/keys finds and parses keys; core/verify checks signatures
    // with them. The dependency runs one way only.
    files: ['core/keys/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)verify(/|$)',
              message:
                'core/keys must not import core/verify (docs/architecture.md §2); move what both need into core/keys.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read JSON (decision-log lines, HTTP bodies, Haraka's sink files) and untyped
      // fixtures (haraka-test-fixtures) and assert on their shape; a wrong shape fails the
      // assertion, which is the check these rules would ask for.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      // The case loader (test/cases/load.ts) and the Haraka case runner String() fields of parsed
      // YAML and Haraka replies typed unknown; a field of the wrong type fails the case.
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
  // This file itself: plain JavaScript outside tsconfig.json.
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
)

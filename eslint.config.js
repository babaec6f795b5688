// ESLint flat config. Syntactic rules only (no type information) so that `npm run lint` stays
// fast on a small CI machine; `npm run typecheck` covers what the type checker knows.
// Module boundaries (which folder may import which) are checked by dependency-cruiser, see
// .dependency-cruiser.cjs.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// Globals of Node.js that plain JS files (bin/) may use. Listed here rather than pulled from the
// `globals` package to avoid a dependency for a handful of names.
const nodeGlobals = Object.fromEntries(
  [
    'process',
    'console',
    'Buffer',
    'URL',
    'URLSearchParams',
    'AbortController',
    'AbortSignal',
    'TextEncoder',
    'TextDecoder',
    'fetch',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'setImmediate',
    'clearImmediate',
    'queueMicrotask',
    'structuredClone',
    'globalThis',
  ].map((name) => [name, 'readonly']),
);

// The house rule for exceptions: every eslint-disable comment says why, after `--`, e.g.
// `// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, checked below`.
// A small local rule instead of a plugin dependency.
const slipwayPlugin = {
  rules: {
    'disable-needs-reason': {
      meta: {
        type: 'suggestion',
        docs: { description: 'require a reason (`-- why`) on every eslint-disable comment' },
        schema: [],
        messages: { noReason: 'Say why after `--` in this eslint-disable comment.' },
      },
      create(context) {
        return {
          Program() {
            for (const comment of context.sourceCode.getAllComments()) {
              const text = comment.value.trim();
              if (/^eslint-disable(-next-line|-line)?(\s|$)/.test(text) && !/\s--\s*\S/.test(text)) {
                context.report({ loc: comment.loc, messageId: 'noReason' });
              }
            }
          },
        };
      },
    },
  },
};

export default defineConfig(
  {
    ignores: ['node_modules/', '.slipway/', 'coverage/', 'tmp/'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.{ts,mts,cts,js,mjs,cjs}'],
    plugins: { slipway: slipwayPlugin },
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
      globals: nodeGlobals,
    },
    rules: {
      'slipway/disable-needs-reason': 'error',
      // `any` is allowed only behind an eslint-disable comment that says why.
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'separate-type-imports' },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    // CommonJS config files (.dependency-cruiser.cjs): typescript-eslint's base config sets
    // sourceType 'module' for every file, which would hide `module` and `require`.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // A stale eslint-disable comment is an error, so that exceptions do not outlive their reason.
    // (The reason itself goes after `--` in the comment; that is a review rule, not checked here.)
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
);

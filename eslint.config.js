import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layer rule (docs/architecture.md): values → stack → kit → components → auth-service → targets → ops → cli;
 * an import points only down this list. Each layer lists the folders above it, which its relative imports
 * must not name. ops may use targets/target.ts (the interface) but no adapter: the CLI chooses the adapter.
 */
const layersAbove = {
  'src/values/**': ['stack', 'kit', 'components', 'auth-service', 'targets', 'ops', 'cli'],
  'src/versions.ts': ['stack', 'kit', 'components', 'auth-service', 'targets', 'ops', 'cli'],
  'src/stack/**': ['kit', 'components', 'auth-service', 'targets', 'ops', 'cli'],
  'src/kit/**': ['components', 'auth-service', 'targets', 'ops', 'cli'],
  'src/components/**': ['auth-service', 'targets', 'ops', 'cli'],
  'src/auth-service/**': ['targets', 'ops', 'cli'],
  'src/targets/**': ['auth-service', 'ops', 'cli'],
  'src/ops/**': ['auth-service', 'targets/kubernetes', 'targets/local', 'cli'],
};

const layerRules = Object.entries(layersAbove).map(([files, above]) => ({
  files: [files],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: `^\\.{1,2}/(.*/)?(${above.join('|')})(/|\\.js$)`,
            message: `${files.replace('/**', '/')} may not import ${above.join(', ')}: imports point down the layers (docs/architecture.md).`,
          },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.state/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', AbortController: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...layerRules,
);

#!/usr/bin/env bash
# The full test suite: type check, lint, unit tests, then the integration tests against the real
# programs on the local target (the runtime root filesystem is built or reused first).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== type check"
npx tsc --noEmit
echo "== lint"
npx eslint .
echo "== generated docs are current"
node --import tsx scripts/generate-docs.ts --check

mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
echo "== unit tests (${#unit[@]} files)"
node --import tsx --test --test-reporter=spec "${unit[@]}"

if [ -d test/integration ] && [ -n "$(find test/integration -name '*.test.ts' -print -quit)" ]; then
  echo "== runtime (build or reuse)"
  node bin/mxstack.js runtime setup
  mapfile -t integration < <(find test/integration -name '*.test.ts' | sort)
  echo "== integration tests (${#integration[@]} files)"
  node --import tsx --test --test-concurrency=2 --test-reporter=spec "${integration[@]}"
fi

#!/usr/bin/env bash
# Renders every values fixture (test/fixtures/values/*.yaml) with the checkout's current code into one
# directory: <name>.yaml holds the rendered objects, <name>.err the refusal and <name>.rc the exit status.
# A refactor proves that it changes no output by rendering before and after and comparing the two
# directories byte for byte:
#   git checkout A && scripts/render-fixtures.sh /tmp/before
#   git checkout B && scripts/render-fixtures.sh /tmp/after
#   diff -r /tmp/before /tmp/after && echo identical
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: scripts/render-fixtures.sh OUTPUT-DIR" >&2
  exit 2
fi
out="$1"
cd "$(dirname "$0")/.."
mkdir -p "$out"
# bin/mxstack.js runs dist/ only when it matches the sources: building first makes every render fast.
node scripts/build.js >/dev/null
for fixture in test/fixtures/values/*.yaml; do
  name="$(basename "$fixture" .yaml)"
  rc=0
  node bin/mxstack.js render -f "$fixture" >"$out/$name.yaml" 2>"$out/$name.err" || rc=$?
  echo "$rc" >"$out/$name.rc"
done
echo "rendered $(ls test/fixtures/values/*.yaml | wc -l) fixtures into $out"

#!/usr/bin/env bash
# The full test suite: type check, lint, generated docs, unit tests, the integration tests against the
# real programs on the local target (the runtime root filesystem is built or reused first), then the
# Kubernetes end-to-end suite on a real cluster.
# `scripts/test.sh unit`, `scripts/test.sh integration` or `scripts/test.sh kubernetes` runs one part
# (Node 20's test runner does not expand globs itself, so the files are listed here).
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"

# The entry points run dist/ only when it was built from the current sources (bin/launch.js), else the
# sources through tsx: building first makes the suite's many CLI runs start fast, never run stale code.
echo "== build (src/ -> dist/)"
node scripts/build.js

if [ "$part" = all ]; then
  echo "== type check"
  npx tsc --noEmit
  echo "== lint"
  npx eslint .
  echo "== generated docs are current"
  node --import tsx scripts/generate-docs.ts --check
fi

if [ "$part" = all ]; then
  # Some unit tests check generated files with the real programs; on a fresh machine they need the runtime.
  echo "== runtime (build or reuse)"
  node bin/mxstack.js runtime setup
fi

# The browser tests drive Debian's Chromium through playwright-core (which downloads no browser of its own).
# CI runs as root on a clean machine: install it there; elsewhere say what is missing (those tests skip).
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  if [ "$(id -u)" = 0 ]; then
    echo "== chromium (Debian package, for the browser tests)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
  else
    echo "note: /usr/bin/chromium is missing and this is not root: the browser tests will be skipped" >&2
    echo "      (install it with: sudo apt-get install --no-install-recommends chromium)" >&2
  fi
}

# The tests get a temporary directory of their own (TMPDIR, which os.tmpdir() and mktemp read): it must be
# empty when they end, so a test that leaves files behind (some hold generated secrets) fails the suite.
# Same mode as /tmp: the programs a test starts as other users create their files there too.
# tsx's compile cache (os.tmpdir()/tsx-<uid>) is the test runner's, not a test's: it stays where it was.
system_tmp="${TMPDIR:-/tmp}"
suite_tmp="$(mktemp -d "$system_tmp/mxstack-test-suite.XXXXXX")"
chmod 1777 "$suite_tmp"
tsx_cache="tsx-$(id -u)"
mkdir -p "$system_tmp/$tsx_cache"
ln -s "$system_tmp/$tsx_cache" "$suite_tmp/$tsx_cache"
export TMPDIR="$suite_tmp"
check_nothing_left() {
  rm "$suite_tmp/$tsx_cache"
  local left
  left="$(find "$suite_tmp" -mindepth 1 -maxdepth 1 -printf '  %p\n')"
  if [ -n "$left" ]; then
    echo "FAIL: the tests left these in their temporary directory $suite_tmp (each test must remove what it creates):" >&2
    echo "$left" >&2
    return 1
  fi
  rmdir "$suite_tmp"
  echo "== the tests left nothing in their temporary directory"
}
status=0

# Every test run's output is also kept in one file (outside the tests' TMPDIR), so that the failures are
# repeated at the very end, where a CI log read from its tail still shows them: each failing test with its
# stage and the first lines of its error. `run_tests LABEL COMMAND...` runs one stage's tests.
test_output="$(mktemp "$system_tmp/mxstack-test-output.XXXXXX")"
run_tests() {
  local label="$1"
  shift
  echo "== $label" >> "$test_output"
  "$@" 2>&1 | tee -a "$test_output"
}
repeat_failures() {
  awk '
    /^== / { stage = substr($0, 4); failing = 0; next }
    /failing tests:$/ { failing = 1; print "in " stage ":"; next }
    !failing { next }
    /^ℹ / { failing = 0; next }
    /^test at / { where = substr($0, 9); next }
    /^ *✖ / { sub(/^ */, ""); print "  " $0 " at " where; lines = 0; next }
    /^ +at / || /^ *$/ { next }
    lines < 3 { sub(/^ */, ""); print "      " $0; lines++ }
  ' "$test_output" | head -n 80 || true
}

if [ "$part" = all ] || [ "$part" = unit ]; then
  mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
  echo "== unit tests (${#unit[@]} files)"
  run_tests "unit tests" node --import tsx --test --test-reporter=spec "${unit[@]}" || status=$?
fi

if [ "$part" = all ] || [ "$part" = integration ]; then
  if [ "$part" = integration ]; then node bin/mxstack.js runtime setup; fi
  ensure_chromium
  mapfile -t integration < <(find test/integration -name '*.test.ts' | sort)
  echo "== integration tests (${#integration[@]} files)"
  run_tests "integration tests" node --import tsx --test --test-concurrency=2 --test-reporter=spec "${integration[@]}" || status=$?
fi

if [ "$part" = all ] || [ "$part" = integration ]; then
  # The same journey, SSO sign-in, built-in 2FA sign-in in a browser, federation between two stacks and
  # backup/restore, with Synapse workers (docs/workers.md), once per preset of MXSTACK_TEST_WORKERS_PRESETS
  # (default "sync small large"; MXSTACK_TEST_WORKERS_PRESETS=small runs one). Each file reads
  # MXSTACK_TEST_WORKERS_PRESET and runs the cases that go through the pools (see each file's header).
  workers_files=(test/integration/matrix-client.test.ts test/integration/sso.test.ts test/integration/two-factor.test.ts test/integration/federation.test.ts test/integration/backup-restore.test.ts)
  for preset in ${MXSTACK_TEST_WORKERS_PRESETS:-sync small large}; do
    echo "== with synapse.workers.preset=$preset: the matrix-js-sdk journey, SSO and 2FA sign-in, federation, backup/restore"
    started=$SECONDS
    MXSTACK_TEST_WORKERS_PRESET="$preset" run_tests "workers preset $preset" node --import tsx --test --test-concurrency=1 --test-reporter=spec "${workers_files[@]}" || status=$?
    echo "== workers preset $preset: $((SECONDS - started)) s (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  done
fi

# One production-like release on a real cluster: MXSTACK_TEST_KUBECONFIG's, else the shared test cluster
# (`cluster up` installs its own Debian packages on a fresh machine); test images are built from the
# runtime once and cached. Without a cluster the suite says so loudly and skips.
if [ "$part" = all ] || [ "$part" = kubernetes ]; then
  if [ "$part" = kubernetes ]; then
    node bin/mxstack.js runtime setup
    ensure_chromium
  fi
  mapfile -t kubernetes < <(find test/kubernetes -name '*.test.ts' | sort)
  echo "== Kubernetes end-to-end tests (${#kubernetes[@]} files)"
  # --test-force-exit: a stopped matrix-js-sdk client leaves the timer of its aborted long-poll /sync running
  # (poll timeout + 80 s); a suite whose last step syncs would otherwise linger about two minutes after it ended.
  run_tests "Kubernetes end-to-end tests" node --import tsx --test --test-force-exit --test-reporter=spec "${kubernetes[@]}" || status=$?
fi

check_nothing_left || status=1
failures="$(repeat_failures)"
rm -f "$test_output"
if [ -n "$failures" ]; then
  echo "== the failing tests again (their whole output is above)"
  echo "$failures"
fi
exit "$status"

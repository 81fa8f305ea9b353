#!/usr/bin/env bash
# The full test suite: type check, lint, generated docs, unit tests, the integration tests against the
# real programs on the local target (the runtime root filesystem is built or reused first), then the
# Kubernetes end-to-end suite on a real cluster.
# `scripts/test.sh unit`, `scripts/test.sh integration` or `scripts/test.sh kubernetes` runs one part
# (Node 20's test runner does not expand globs itself, so the files are listed here).
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"

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

if [ "$part" = all ] || [ "$part" = unit ]; then
  mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
  echo "== unit tests (${#unit[@]} files)"
  node --import tsx --test --test-reporter=spec "${unit[@]}"
fi

if [ "$part" = all ] || [ "$part" = integration ]; then
  if [ "$part" = integration ]; then node bin/mxstack.js runtime setup; fi
  ensure_chromium
  mapfile -t integration < <(find test/integration -name '*.test.ts' | sort)
  echo "== integration tests (${#integration[@]} files)"
  node --import tsx --test --test-concurrency=2 --test-reporter=spec "${integration[@]}"
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
  node --import tsx --test --test-reporter=spec "${kubernetes[@]}"
fi

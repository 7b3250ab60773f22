#!/usr/bin/env bash
# Install the browser for the web's end-to-end tests (tests/e2e/web): Debian's chromium and
# chromium-driver (test tools' own browser downloads do not work here). Needs root and apt-get;
# skipped (exit 0, with a message) without them or with RECSYS_BROWSER_TESTS=0. Safe to re-run.
set -euo pipefail
if [ "${RECSYS_BROWSER_TESTS:-1}" != 1 ]; then
  echo "==> browser: skipped (RECSYS_BROWSER_TESTS=${RECSYS_BROWSER_TESTS})"
  exit 0
fi
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "==> browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "==> browser: no apt-get or not root: install chromium and chromium-driver yourself (browser tests skip)"
  exit 0
fi
echo "==> browser: installing chromium and chromium-driver (apt)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium chromium-driver
echo "==> browser: ok: $(/usr/bin/chromium --version 2>/dev/null)"

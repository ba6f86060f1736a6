#!/usr/bin/env bash
# Runs every Bazel test once, uncached, then stops the Bazel server.
#
#   tools/bazel_test.sh [extra bazel test flags, e.g. --test_output=all]
#
# Installs Debian's bazel-bootstrap (Bazel 4.2.3, works offline with the stand-ins in
# third_party/bazel) when no bazel is on PATH. Test results are never cached because the
# virtualenv lies outside Bazel's view. Exits with bazel test's status.
set -u -o pipefail

workspace="$(cd "$(dirname "$(realpath "$0")")/.." && pwd)"
cd "${workspace}"

if ! command -v bazel >/dev/null 2>&1; then
  echo "bazel_test.sh: bazel not found; installing Debian's bazel-bootstrap" >&2
  sudo_cmd=()
  if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "bazel_test.sh: installing bazel-bootstrap needs root or sudo; neither is available" >&2
      exit 2
    fi
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -q || exit 2
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q bazel-bootstrap || exit 2
fi

test_status=0
bazel test //... --cache_test_results=no "$@" || test_status=$?

# The server would otherwise idle for hours holding memory.
if ! bazel shutdown; then
  echo "bazel_test.sh: warning: bazel shutdown failed" >&2
fi
exit "${test_status}"

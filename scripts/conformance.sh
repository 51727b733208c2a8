#!/usr/bin/env bash
# `make conformance`: critest's validation suite (cri-tools v1.29 or newer)
# against cri-server on a private containerd, with critest's images built
# locally (see tests/src/images/critest.rs). critest is $CRITEST, else
# ../shared/tools/critest, else on $PATH. Without one this prints a notice and
# succeeds, unless CRI_REQUIRE_CONFORMANCE=1 (CI sets it). Extra arguments go
# to cri-conformance (e.g. --reference, --focus REGEX).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
BIN=$(realpath -m "${CARGO_TARGET_DIR:-target}")/debug
MIN_MAJOR=1 MIN_MINOR=29

notice() {
  cat >&2 <<TEXT

##########################################################################
#  NOTICE: CRI conformance (critest) was NOT run.
#  $1
#  It needs critest from cri-tools v${MIN_MAJOR}.${MIN_MINOR} or newer: set CRITEST=/path/to/critest,
#  put it at ../shared/tools/critest, or install it on \$PATH.
##########################################################################

TEXT
  if [ "${CRI_REQUIRE_CONFORMANCE:-}" = 1 ]; then
    echo "CRI_REQUIRE_CONFORMANCE=1: failing." >&2
    exit 1
  fi
  exit 0
}

critest=
if [ -n "${CRITEST:-}" ]; then
  critest=$CRITEST
  [ -x "$critest" ] || notice "CRITEST=$critest is not an executable file."
elif [ -x ../shared/tools/critest ]; then
  critest=$(cd ../shared/tools && pwd)/critest
elif command -v critest >/dev/null 2>&1; then
  critest=$(command -v critest)
else
  notice "critest was not found (\$CRITEST, ../shared/tools/critest, \$PATH)."
fi

version=$("$critest" --version 2>/dev/null | sed -n 's/^critest version: v\{0,1\}\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -n1)
read -r major minor <<<"${version:-0 0}"
if ((major < MIN_MAJOR || (major == MIN_MAJOR && minor < MIN_MINOR))); then
  notice "$critest reports version '${major}.${minor}', older than ${MIN_MAJOR}.${MIN_MINOR}."
fi

"$CARGO" build -p cri-server --bins
"$CARGO" build -p cri-tests --bin cri-conformance
CRI_SERVER_BIN=$BIN/cri-server exec "$BIN/cri-conformance" --critest "$critest" "$@"

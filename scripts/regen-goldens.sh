#!/usr/bin/env bash
# `make goldens`: regenerates cri-spec's golden specs
# (cri-spec/testdata/golden/) and cri-metadata's containerd fixtures
# (cri-metadata/testdata/containerd/) from containerd's own CRI plugin: a
# private containerd from the installed package with the plugin enabled runs
# the cases listed in tests/src/differential/goldens.rs, and what it wrote is
# normalized as tests/src/differential/normalize.rs lists. Needs root and the
# harness components (`make deps`). Not part of `make test`; the unit tests
# compare against the files this writes. Review the diff before committing:
# a change in a golden is a change in containerd's output or in the inputs.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
if [ "$(id -u)" != 0 ]; then
  echo "regen-goldens: containerd and its CRI plugin need root" >&2
  exit 1
fi
"$CARGO" build -p cri-server --bin cri-server
"$CARGO" run -p cri-tests --bin regen-goldens
echo "regen-goldens: now run cargo test -p cri-spec -p cri-metadata and review git diff"

#!/usr/bin/env bash
# Installs what building, running and testing cri-server needs on Debian 12.
# Idempotent: installs only what is missing; run as root.
set -euo pipefail

packages=(
  containerd                  # containerd 1.6 and ctr
  runc
  containernetworking-plugins # CNI plugins in /usr/lib/cni
  docker-registry             # a local OCI registry for the tests
  busybox-static              # the test images' userland
  protobuf-compiler           # protoc, for the CRI and containerd protos
  gcc libc6-dev               # the pause program of the test images
  iproute2 iptables           # netns, bridge and portmap CNI plugins
  util-linux                  # mount, nsenter
  pkg-config
  python3 python3-venv        # the grpcio client the interop suite runs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${missing[*]}; run as root or: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# critest's busybox image needs an `ash` built without standalone applets (the
# masked-paths spec masks /bin/ls and expects `sh -c ls` to fail), and
# busybox-static's ash runs its own `ls` whatever is on disk. Debian's dynamically
# linked `busybox` package has such an ash; it conflicts with busybox-static, so
# its binary is only unpacked, next to nothing else.
BUSYBOX_SHELL=/usr/local/lib/cri-tests/busybox
if [ ! -x "$BUSYBOX_SHELL" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing $BUSYBOX_SHELL (Debian's dynamically linked busybox); run as root" >&2
    exit 1
  fi
  echo "unpacking Debian's dynamically linked busybox to $BUSYBOX_SHELL"
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true
  (cd "$tmp" && { apt-get download -qq busybox 2>/dev/null || { apt-get update -qq && apt-get download -qq busybox; }; })
  dpkg-deb -x "$tmp"/busybox_*.deb "$tmp/root"
  install -D -m 0755 "$tmp/root/bin/busybox" "$BUSYBOX_SHELL"
  rm -rf "$tmp"
fi

# A Python grpcio client (from PyPI) for the interop suite, in a virtualenv
# of the project's own; tests find it at .venv/bin/python.
VENV="$(cd "$(dirname "$0")/.." && pwd)/.venv"
if ! "$VENV/bin/python" -c 'import grpc' >/dev/null 2>&1; then
  echo "creating $VENV with grpcio"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'grpcio>=1.57'
fi

# Debian's containerd package may start a system containerd; ours are private
# and never touch it, so leave it alone.

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a Rust toolchain (rustup, stable >= 1.85)" >&2
  exit 1
fi

# cargo-deb for `make deb` and the packaging suite (about 2.5 minutes to
# compile on a 2-core machine, once).
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install --locked)"
  cargo install --locked --quiet cargo-deb
fi

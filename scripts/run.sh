#!/usr/bin/env bash
# `make run`: a private containerd (CRI plugin disabled) with the locally built
# pause and busybox images, and cri-server in the foreground on its socket.
# `run.sh stop` stops the private containerd and its containers.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=${CRI_DEV_DIR:-/var/lib/cri-server-dev}
RUN=${CRI_DEV_RUN:-/run/cri-server-dev}
CTRD_SOCK=$RUN/containerd/containerd.sock
CRI_SOCK=${CRI_SOCKET:-/run/cri-server/cri-server.sock}
BIN=${CARGO_TARGET_DIR:-target}/debug
CTR=(ctr --address "$CTRD_SOCK" -n k8s.io)

stop_containerd() {
  local pid
  if [ -f "$RUN/containerd.pid" ] && pid=$(cat "$RUN/containerd.pid") && kill -0 "$pid" 2>/dev/null; then
    # Stop every task first: shims outlive containerd.
    for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
      "${CTR[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$RUN/containerd.pid"
}

if [ "${1:-}" = stop ]; then stop_containerd; echo "stopped"; exit 0; fi

mkdir -p "$DEV" "$RUN/containerd" "$DEV/net.d"

cat >"$DEV/containerd.toml" <<TOML
version = 2
root = "$DEV/containerd"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DEV/opt"
TOML

if ! { [ -f "$RUN/containerd.pid" ] && kill -0 "$(cat "$RUN/containerd.pid")" 2>/dev/null; }; then
  echo "starting private containerd on $CTRD_SOCK (log: $DEV/containerd.log)"
  containerd --config "$DEV/containerd.toml" >>"$DEV/containerd.log" 2>&1 &
  echo $! >"$RUN/containerd.pid"
  for _ in $(seq 100); do ctr --address "$CTRD_SOCK" version >/dev/null 2>&1 && break; sleep 0.2; done
  ctr --address "$CTRD_SOCK" version >/dev/null || { echo "containerd did not start; see $DEV/containerd.log" >&2; exit 1; }
fi

# The test images, built here from busybox-static and a pause program.
"$BIN/cri-test-images" archive "$DEV/images.tar" \
  --busybox-name docker.io/library/busybox:latest --pause-name registry.k8s.io/pause:3.8
"${CTR[@]}" images import --all-platforms "$DEV/images.tar" >/dev/null
echo "images: $("${CTR[@]}" images ls -q | tr '\n' ' ')"

# A bridge network for pods on a private subnet.
cat >"$DEV/net.d/10-cri-server.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "cri-server-dev",
  "plugins": [
    {"type": "bridge", "bridge": "crisrv0", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON

cat >"$DEV/cri-server.toml" <<TOML
version = 2
[cri_server]
listen = "$CRI_SOCK"
containerd_address = "$CTRD_SOCK"
containerd_namespace = "k8s.io"
root_dir = "$DEV/cri"
state_dir = "$RUN/cri"
log_level = "info"
[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "registry.k8s.io/pause:3.8"
# Root here may lack CAP_SYS_RESOURCE: never ask runc for a negative oom_score_adj.
restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".cni]
bin_dir = "/usr/lib/cni"
conf_dir = "$DEV/net.d"
TOML

cat <<MSG

cri-server is starting on unix://$CRI_SOCK (config: $DEV/cri-server.toml). In another shell:
  crictl --runtime-endpoint unix://$CRI_SOCK version
  crictl --runtime-endpoint unix://$CRI_SOCK info
or, without crictl:
  $BIN/cri-ctl -r $CRI_SOCK version
  $BIN/cri-ctl -r $CRI_SOCK info
Stop with Ctrl-C; 'make stop' also stops the private containerd.

MSG
exec "$BIN/cri-server" --config "$DEV/cri-server.toml"

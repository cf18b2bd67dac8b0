#!/usr/bin/env bash
# Builds the image (Dockerfile) and runs it as a user would, then checks it with our clients
# (deploy/docker/check_container.py): health SERVING and the image's HEALTHCHECK healthy, correct
# inferences of TorchScript models and of an AOTInductor one (classifier_aoti: the example
# classifier compiled, its packages unpacked to the container's /tmp, a tmpfs that allows
# executing), /metrics scrapeable, the process running as uid 10001 on a read-only root
# filesystem, and `docker stop` draining in-flight requests and exiting 0 within the grace period.
#
#   bash deploy/docker/test.sh                # as root; called by scripts/test.sh
#   bash deploy/docker/test.sh --target gpu   # the GPU image (by hand: it downloads ~3 GB of
#                                             # CUDA wheels); with no GPU here, its models run
#                                             # on the CPU and the same checks apply
#
# It starts its own dockerd (no bridge, no iptables; containers use the host's network and are
# reached on 127.0.0.1 only) and stops it again by PID. The daemon's data root,
# /var/cache/torchbricks/docker/data (TORCHBRICKS_DOCKER_CACHE/data), is kept as a cache outside
# the clone (the base image and the build layers make a rerun, from any clone, quick); delete it
# to start cold. Nothing else is left behind. When dockerd cannot run here
# (not root, not installed, no kernel support) it prints SKIPPED and the reason and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${TORCHBRICKS_DOCKER_CACHE:-/var/cache/torchbricks/docker}
TARGET=cpu
case "$*" in
  "") ;;
  "--target cpu" | "--target gpu") TARGET=$2 ;;
  *) echo "usage: deploy/docker/test.sh [--target cpu|gpu]" >&2; exit 2 ;;
esac
case $TARGET in
  cpu) IMAGE=torchbricks-serve:test ;;
  gpu) IMAGE=torchbricks-serve:test-gpu ;;
  *) echo "usage: deploy/docker/test.sh [--target cpu|gpu]" >&2; exit 2 ;;
esac
MIRROR=${TORCHBRICKS_DEBIAN_MIRROR:-http://deb.debian.org/debian}

skip() {
  echo "deploy/docker/test.sh: SKIPPED: $*"
  exit 0
}
say() { echo "deploy/docker/test.sh: $*"; }
now() { date +%s%N; }
since() {  # seconds since $1 (a `now`), one decimal
  local tenths=$((($(now) - $1) / 100000000))
  echo "$((tenths / 10)).$((tenths % 10))"
}

[[ $(id -u) -eq 0 ]] || skip "dockerd needs root (running as uid $(id -u))"
command -v dockerd > /dev/null || skip "dockerd is not installed (Debian package docker.io)"
command -v debootstrap > /dev/null || skip "debootstrap is not installed"
# Debian's client matches Debian's daemon (20.10); a newer client elsewhere on PATH may not.
DOCKER_CLI=/usr/bin/docker
[[ -x $DOCKER_CLI ]] || DOCKER_CLI=$(command -v docker) || skip "no docker client"

# One run at a time per data root: a second dockerd on the same root would corrupt it.
mkdir -p "$CACHE"
exec 9> "$CACHE/test.lock"
flock -w 3600 9 || { say "FAILED: another run holds $CACHE/test.lock"; exit 1; }

STARTED=$(now)
RUN_DIR=$(mktemp -d /tmp/tb-docker.XXXXXX)  # socket, pid file, exec root, logs: removed at exit
DOCKERD_PID=""
CONTAINER=""
docker() { "$DOCKER_CLI" -H "unix://$RUN_DIR/docker.sock" "$@"; }

stop_dockerd() {
  [[ -n $DOCKERD_PID ]] || return 0
  kill -TERM "$DOCKERD_PID" 2> /dev/null || true
  for _ in $(seq 60); do
    kill -0 "$DOCKERD_PID" 2> /dev/null || break
    sleep 0.5
  done
  if kill -0 "$DOCKERD_PID" 2> /dev/null; then
    say "dockerd (pid $DOCKERD_PID) did not stop on SIGTERM; killing it"
    kill -KILL "$DOCKERD_PID" 2> /dev/null || true
  fi
  wait "$DOCKERD_PID" 2> /dev/null || true
  DOCKERD_PID=""
}

# What dockerd and its containerd create outside the data and exec roots; removed at exit
# unless they were there before.
HOST_STATE=(/etc/docker/key.json /run/docker/plugins /run/docker /run/containerd/s /run/containerd)
CREATED_STATE=()
for path in "${HOST_STATE[@]}"; do [[ -e $path ]] || CREATED_STATE+=("$path"); done

cleanup() {
  if [[ -n $CONTAINER ]]; then docker rm -f "$CONTAINER" > /dev/null 2>&1 || true; fi
  stop_dockerd
  for path in "${CREATED_STATE[@]}"; do
    if [[ -d $path ]]; then rmdir "$path" 2> /dev/null || true; else rm -f "$path"; fi
  done
  # dockerd leaves its network namespace bind-mounted under the exec root.
  awk -v dir="$RUN_DIR/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r \
    | while read -r mount_point; do umount "$mount_point" || true; done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap "exit 143" TERM INT  # run the cleanup on a signal too

# --- the daemon -----------------------------------------------------------------------------
start_dockerd() {  # $1: storage driver; 0 once `docker info` answers
  mkdir -p "$CACHE/data"
  dockerd --data-root "$CACHE/data" --exec-root "$RUN_DIR/exec" --pidfile "$RUN_DIR/dockerd.pid" \
    --host "unix://$RUN_DIR/docker.sock" --bridge=none --iptables=false --ip-forward=false \
    --ip-masq=false --storage-driver "$1" --log-level warn > "$RUN_DIR/dockerd-$1.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 120); do
    if docker info > /dev/null 2>&1; then return 0; fi
    kill -0 "$DOCKERD_PID" 2> /dev/null || break
    sleep 0.5
  done
  stop_dockerd
  return 1
}
if ! start_dockerd overlay2 && ! start_dockerd vfs; then
  echo "--- dockerd log (overlay2) ---"
  tail -n 5 "$RUN_DIR/dockerd-overlay2.log" || true
  echo "--- dockerd log (vfs) ---"
  tail -n 15 "$RUN_DIR/dockerd-vfs.log" || true
  skip "dockerd did not start with the overlay2 or the vfs storage driver (logs above)"
fi
say "dockerd $(docker version --format '{{.Server.Version}}') running (pid $DOCKERD_PID," \
  "storage $(docker info --format '{{.Driver}}'))"

# --- the base image: Debian 12 made here (there is no image registry to pull from) ------------
if ! docker image inspect debian:bookworm > /dev/null 2>&1; then
  t=$(now)
  rootfs=$CACHE/rootfs
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" > "$RUN_DIR/debootstrap.log" 2>&1 \
    || { tail -n 20 "$RUN_DIR/debootstrap.log"; exit 1; }
  cat > "$rootfs/etc/apt/sources.list" << SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
SOURCES
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - debian:bookworm > /dev/null
  rm -rf "$rootfs"
  say "base image debian:bookworm made with debootstrap in $(since "$t") s"
fi

# --- the project image --------------------------------------------------------------------------
# BuildKit keeps the layers and the compile cache (a cache mount) in the data root, so a
# rerun after a source change recompiles only what changed.
t=$(now)
# pip in the build stage trusts what this machine's pip trusts (a TLS-inspecting proxy's CA).
ca_bundle=/etc/ssl/certs/ca-certificates.crt
secret=()
[ -s "$ca_bundle" ] && secret=(--secret "id=pip_ca,src=$ca_bundle")
DOCKER_BUILDKIT=1 docker build --network host --progress plain "${secret[@]}" --target "$TARGET" \
  --tag "$IMAGE" . \
  > "$RUN_DIR/build.log" 2>&1 || { tail -n 40 "$RUN_DIR/build.log"; say "FAILED: docker build"; exit 1; }
say "image built in $(since "$t") s, $(docker image inspect --format '{{.Size}}' "$IMAGE" \
  | awk '{printf "%.2f GB", $1 / 1e9}')"
docker image prune --force > /dev/null  # the previous run's image, now untagged
tools=$(docker run --rm --network host --entrypoint /bin/sh "$IMAGE" -c \
  'for t in cc gcc g++ c++ clang cmake ninja make ld as python3; do command -v $t; done; true')
[[ -z $tools ]] || { say "FAILED: build tools in the final image: $tools"; exit 1; }
say "no compiler, linker, build tool or Python in the final image"
docker builder prune --force --filter until=24h > /dev/null || true  # cache no build used for a day (best effort: a prune racing a build lease fails)

# --- run it as a user would, and check it ---------------------------------------------------------
repository=$RUN_DIR/repository
t=$(now)
.venv/bin/python examples/build_example_repository.py "$repository" > "$RUN_DIR/repository.log" 2>&1 \
  || { tail -n 20 "$RUN_DIR/repository.log"; exit 1; }
# The classifier again, compiled with AOTInductor (about 10 s a brick, cached by the exporter
# in ~/.cache/torchbricks/aoti), as the model classifier_aoti: the same weights and inputs.
.venv/bin/python examples/build_example_repository.py "$RUN_DIR/aoti" --module-format aot_inductor \
  --models classifier > "$RUN_DIR/repository-aoti.log" 2>&1 \
  || { tail -n 20 "$RUN_DIR/repository-aoti.log"; exit 1; }
mv "$RUN_DIR/aoti/classifier" "$repository/classifier_aoti"
say "example repository exported, with classifier_aoti compiled, in $(since "$t") s"
chmod a+x "$RUN_DIR" && chmod -R a+rX "$repository"  # the server runs as uid 10001
# Two free loopback ports, held together while chosen so that they differ.
read -r GRPC_PORT METRICS_PORT < <(.venv/bin/python -c '
import socket
held = [socket.socket() for _ in range(2)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))')
DRAIN_SECS=30
# KServe's layout: the storage initializer puts the repository at /mnt/models. /tmp, where the
# AOTInductor loader unpacks packages and loads their code, is the only writable path: Docker's
# tmpfs is noexec unless told `exec`.
CONTAINER=$(docker run --detach --network host --read-only --tmpfs /tmp:exec \
  --volume "$repository:/mnt/models:ro" --env TORCHBRICKS_GRPC_PORT="$GRPC_PORT" \
  --health-interval 1s --health-start-period 120s --stop-timeout $((DRAIN_SECS + 10)) "$IMAGE" \
  --model-repository /mnt/models --grpc-address 127.0.0.1 --grpc-port "$GRPC_PORT" \
  --metrics-port "$METRICS_PORT" --shutdown-timeout-secs "$DRAIN_SECS")
t=$(now)
status=0
PYTHONPATH="$ROOT/clients/python/client:$ROOT/clients/python/exporter:$ROOT/tests/python" .venv/bin/python deploy/docker/check_container.py \
  --docker "$DOCKER_CLI" --docker-host "unix://$RUN_DIR/docker.sock" --container "$CONTAINER" \
  --grpc "127.0.0.1:$GRPC_PORT" --metrics "127.0.0.1:$METRICS_PORT" --repository "$repository" \
  --drain-secs "$DRAIN_SECS" || status=1
say "container checks took $(since "$t") s"
if ((status)); then
  echo "--- container log (tail) ---"
  docker logs "$CONTAINER" 2>&1 | tail -n 30
fi
say "total $(since "$STARTED") s"
if ((status)); then say "FAILED"; else say "passed"; fi
exit $status

#!/usr/bin/env bash
# Times `volsafe check` on a host with many containers and volumes.
#
#   bench/check-host.sh [--containers N] [--volumes N] [--rounds N]
#
# Creates N volumes and N containers (created, never started, network none)
# named vsbench-<pid>-…, runs `volsafe check` (whole host, JSON) and
# `volsafe check VOLUME` several times, prints the median wall times, and
# removes everything it made, also on Ctrl-C. Exits non-zero only when a
# command fails, never on timing. VOLSAFE_BIN picks the binary (default:
# target/release/volsafe, built if missing).
set -euo pipefail

containers=200
volumes=300
rounds=5
while [ $# -gt 0 ]; do
    case "$1" in
        --containers) containers=$2; shift 2 ;;
        --volumes) volumes=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        *) echo "usage: $0 [--containers N] [--volumes N] [--rounds N]" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
bin=${VOLSAFE_BIN:-target/release/volsafe}
if [ ! -x "$bin" ]; then
    cargo build --release --quiet
fi

prefix="vsbench-$$"
image="$prefix-img:1"
cleanup() {
    docker ps -aq --filter "name=^$prefix-" | xargs -r docker rm -f -v >/dev/null
    docker volume ls -q --filter "name=^$prefix-" | xargs -r docker volume rm -f >/dev/null
    docker image rm -f "$image" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# An image with nothing in it: the containers are never started.
tar cf - --files-from /dev/null | docker import -c 'CMD ["/none"]' - "$image" >/dev/null

echo "creating $volumes volumes and $containers containers…" >&2
seq 1 "$volumes" | xargs -P 8 -I{} docker volume create "$prefix-v{}" >/dev/null
seq 1 "$containers" | xargs -P 8 -I{} sh -c '
    i=$1; p=$2; img=$3; n=$4
    a=$(( (i % n) + 1 )); b=$(( ((i * 7) % n) + 1 ))
    extra=""
    case $((i % 10)) in
        0) extra="-v /var/run/docker.sock:/var/run/docker.sock" ;;
        1) extra="--privileged" ;;
        2) extra="-v /etc:/host-etc:ro" ;;
        3) extra="--cap-add SYS_ADMIN" ;;
    esac
    docker create --name "$p-c$i" --network none $extra \
        -v "$p-v$a:/data" -v "$p-v$b:/more:ro" "$img" >/dev/null
' _ {} "$prefix" "$image" "$volumes"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_runs() {
    for _ in $(seq 1 "$rounds"); do
        start=$(date +%s.%N)
        "$@" >/dev/null
        end=$(date +%s.%N)
        awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
    done | median
}

total_containers=$(docker ps -aq | wc -l)
total_volumes=$(docker volume ls -q | wc -l)
findings=$("$bin" check --format json --no-progress | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["findings"]))')
host=$(time_runs "$bin" check --format json --no-progress)
one=$(time_runs "$bin" check "$prefix-v1" --format json --no-progress)
printf '%s\n' \
    "host: $total_containers containers, $total_volumes volumes; $(nproc) cores; $(docker version --format '{{.Server.Version}}') (API $(docker version --format '{{.Server.APIVersion}}'))" \
    "volsafe check (whole host, $findings findings): median ${host}s over $rounds rounds" \
    "volsafe check ONE-VOLUME:                    median ${one}s over $rounds rounds"

#!/usr/bin/env bash
# Times volsafe's backup and restore against the same data path built from
# standard tools, the Docker docs recipe, and the daemon's own ceiling, on
# volumes it creates itself (docs/performance.md explains the numbers).
#
#   bench/run.sh [--quick] [--large] [--rounds N]
#
#   (default)  (a) 1 GiB mixed, half random, half log-like text;
#              (b) 100,000 files of 1-4 KiB; 3 rounds
#   --large    adds (c) 4 GiB mixed
#   --quick    (a) 64 MiB mixed and (b) 5,000 small files, one round (CI)
#   --rounds N rounds per volume; the order of the contenders alternates
#              from one round to the next, and the median is reported.
#              All backup rounds run first, then the restores, then
#              restore --replace (it removes files: see drop_volume),
#              which runs one round only on a set of 10,000 entries or more
#
# Contenders, (1)-(3) each timed with its container creation and removal:
#   (1) volsafe backup / restore (age recipient, default level), restore
#       into a new volume, and restore --replace over an equal-size volume;
#   (2) docker create + docker cp VOL - | zstd -T0 -3 | age -r K > F, and
#       age -d | zstd -d | docker cp - helper:/ into a new volume;
#   (3) the Docker docs recipe: tar czf and tar cf inside a busybox helper
#       writing to a bind-mounted directory;
#   (4) the ceiling: docker cp of the volume to /dev/null (helper created
#       beforehand, so only the stream is timed);
#   (5) a design probe, not a product path: GNU tar of the volume's
#       directory on the Docker host (its Mountpoint) | zstd -T0 -3 | age,
#       what a backup that skips the Engine's archive endpoint could reach;
#       runs only where the user running the script can read the
#       Mountpoint (in practice: as root on the daemon's host);
#   (6) the same for restores: age -d | zstd -d | GNU tar -x into a new
#       volume's Mountpoint on the host, what a restore that skips the
#       Engine's extraction could reach (same condition).
#
# Everything it makes is named vsbench-<pid>-… and removed on every path.
# Containers get --network none; no image is pulled: the helper images are
# imported from an empty tar and from the host's static busybox
# (apt-get install busybox-static). Exits non-zero only when a command
# fails, never on timing. VOLSAFE_BIN picks the binary (default:
# target/release/volsafe, built if missing); TMPDIR the scratch space,
# which needs about twice the largest volume free. Docker's data root
# holds a set's volume, the --replace target and what was restored: about
# three times the set, and 2 + 2 x rounds times for a set of 10,000
# entries or more, which keeps its restored volumes to its end.
set -euo pipefail

quick=false
large=false
rounds=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=true; shift ;;
        --large) large=true; shift ;;
        --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [--quick] [--large] [--rounds N]" >&2; exit 2 ;;
    esac
done
case "${rounds:-x}" in
    x) if $quick; then rounds=1; else rounds=3; fi ;;
    *[!0-9]*|0) echo "$0: --rounds: a positive number, not $rounds" >&2; exit 2 ;;
esac

die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
log() { printf '%s\n' "$*" >&2; }

cd "$(dirname "$0")/.."
bin=${VOLSAFE_BIN:-target/release/volsafe}
if [ ! -x "$bin" ]; then
    log "building $bin…"
    cargo build --release --quiet
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

for tool in docker zstd age age-keygen awk od; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
busybox=
for b in /usr/bin/busybox /bin/busybox; do
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || die "no statically linked busybox (apt-get install busybox-static)"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer"

prefix="vsbench-$$"
empty_img="$prefix-empty:1"
bb_img="$prefix-busybox:1"
work=$(mktemp -d "${TMPDIR:-/tmp}/$prefix-XXXX")
job=

cleanup() {
    set +e
    if [ -n "$job" ]; then
        kill -TERM -- "-$job" 2>/dev/null
        wait "$job" 2>/dev/null
    fi
    {
        docker ps -aq --filter "name=^$prefix-"
        docker ps -aq --filter "ancestor=$empty_img"
        docker ps -aq --filter "ancestor=$bb_img"
    } 2>/dev/null | sort -u | xargs -r docker rm -f -v >/dev/null 2>&1
    docker volume ls -q --filter "name=^$prefix-" | xargs -r docker volume rm -f >/dev/null 2>&1
    docker image rm -f "$empty_img" "$bb_img" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every measured command runs as a background job in its own process group
# (set -m), so a signal reaches the script at once and the trap can stop
# the whole pipeline before it removes what the pipeline uses.
set -m
run() {
    "$@" </dev/null &
    job=$!
    local rc=0
    wait "$job" || rc=$?
    job=
    return "$rc"
}

# The whole machine's busy time so far, in clock ticks: user, nice,
# system, irq and softirq of every process (volsafe, the tools, the
# daemon, the kernel's work for them). Idle, iowait and steal are left out.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
ticks_per_s=$(getconf CLK_TCK)

# Seconds taken by "$@" into $elapsed, and the machine's busy CPU-seconds
# meanwhile into $cpu_s; a failure ends the benchmark.
timed() {
    local b0 t0 t1
    b0=$(busy_ticks)
    t0=$EPOCHREALTIME
    run "$@" || die "failed ($?): $*"
    t1=$EPOCHREALTIME
    elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    cpu_s=$(awk -v a="$b0" -v b="$(busy_ticks)" -v hz="$ticks_per_s" 'BEGIN { printf "%.2f", (b - a) / hz }')
}

# Peak RSS in KiB of volsafe "$@" into $rss_kib; /usr/bin/time if present,
# else the last VmHWM seen in /proc while it ran.
volsafe_rss() {
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f %M -o "$work/rss" "$bin" "$@" || return $?
        rss_kib=$(tail -n 1 "$work/rss")
    else
        "$bin" "$@" &
        local pid=$! hwm=0 v rc=0
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [ -n "$v" ] && hwm=$v
            sleep 0.05
        done
        wait "$pid" || rc=$?
        rss_kib=$hwm
        return "$rc"
    fi
}

# --- Images, key -------------------------------------------------------------
log "importing helper images…"
tar cf - --files-from /dev/null | docker import -c 'CMD ["/none"]' - "$empty_img" >/dev/null
mkdir -p "$work/bb/bin" "$work/bb/tmp"
cp "$busybox" "$work/bb/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/bb/bin/$applet"
done
tar -C "$work/bb" -cf - . | docker import -c 'CMD ["/bin/sh"]' - "$bb_img" >/dev/null
rm -rf "$work/bb"

age-keygen -o "$work/key.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/key.txt")

# --- Volumes -------------------------------------------------------------------
text_awk='BEGIN {
    srand(seed)
    split("GET POST PUT DELETE", m, " ")
    split("users orders items carts sessions search login logout health metrics invoices reports", p, " ")
    split("INFO INFO INFO INFO WARN DEBUG ERROR", lv, " ")
    split("200 200 200 200 201 204 301 304 400 401 403 404 500 503", st, " ")
    n = 0; t = 1700000000 + int(rand() * 1000000)
    while (n < bytes) {
        t += int(rand() * 3)
        line = sprintf("%d.%03d %s req=%08x %s /api/v1/%s/%d status=%s bytes=%d ms=%d user=u%05d\n",
            t, int(rand() * 1000), lv[1 + int(rand() * 7)], int(rand() * 4294967295),
            m[1 + int(rand() * 4)], p[1 + int(rand() * 12)], int(rand() * 100000),
            st[1 + int(rand() * 14)], int(rand() * 65536), int(rand() * 2000), int(rand() * 50000))
        n += length(line)
        if (n > bytes) line = substr(line, 1, length(line) - (n - bytes))
        printf "%s", line
    }
}'
small_awk='BEGIN {
    srand(seed)
    split("users orders items carts sessions search login logout health", p, " ")
    for (i = 0; i < count; i++) {
        size = 1024 + int(rand() * 3073)
        f = sprintf("%s/d%03d/f%06d.txt", dir, int(i / 1000), i)
        s = ""
        while (length(s) < size)
            s = s sprintf("%d key=%s id=%08x value=%d\n", i, p[1 + int(rand() * 9)],
                int(rand() * 4294967295), int(rand() * 100000))
        printf "%s", substr(s, 1, size) > f
        close(f)
    }
}'

# Fills $work/src with MIB MiB, half random and half text, in files of up
# to 16 MiB.
gen_mixed() {
    local mib=$1 file_mib=16 i n
    [ "$mib" -ge 128 ] || file_mib=$((mib / 8))
    n=$((mib / 2 / file_mib))
    mkdir -p "$work/src/random" "$work/src/text/logs"
    for i in $(seq 1 "$n"); do
        head -c "$((file_mib << 20))" /dev/urandom >"$work/src/random/blob-$i.bin"
        awk -v seed="$i" -v bytes="$((file_mib << 20))" "$text_awk" \
            >"$work/src/text/logs/app-$i.log"
    done
}

# Fills $work/src with COUNT files of 1-4 KiB, 1,000 per directory.
gen_small() {
    local count=$1 d
    for d in $(seq 0 $(((count - 1) / 1000))); do
        mkdir -p "$work/src/$(printf 'd%03d' "$d")"
    done
    awk -v seed=7 -v count="$count" -v dir="$work/src" "$small_awk"
}

# Creates volume $1 from $work/src.
load_volume() {
    local vol=$1 h="$prefix-load"
    docker volume create "$vol" >/dev/null
    docker create --network none --name "$h" -v "$vol:/volume" "$empty_img" >/dev/null
    tar -C "$work/src" -cf - . | docker cp - "$h:/volume"
    docker rm -f "$h" >/dev/null
}

# What a set leaves to remove. With many files, removal waits for the
# set's end: ext4 without a journal skips inodes freed in the last minutes
# when it allocates new ones, one lookup each, so a restore that follows
# the removal of 100,000 files took 10-60 s instead of 5 (seen on a
# machine whose root file system has no journal; the cost lands on
# whichever contender runs next, not on the one that deleted).
deferred_volumes=()
round=0
defer=false
drop_volume() {
    if $defer; then
        deferred_volumes+=("$1")
    else
        docker volume rm "$1" >/dev/null
    fi
}

# --- The contenders ---------------------------------------------------------
# Each takes the short name of the data set; $vol is its volume.

c_volsafe_backup() {
    volsafe_rss backup -q "$vol" --to "$work/out/vs" -r "$recipient" \
        --helper-image "$empty_img" >/dev/null || return $?
    echo "$rss_kib" >>"$work/rss-backup-$1"
}

c_std_backup() {
    local h="$prefix-$1-cp"
    docker create --network none --name "$h" -v "$vol:/volume:ro" "$empty_img" >/dev/null &&
        docker cp "$h:/volume" - | zstd -T0 -3 -q | age -r "$recipient" >"$work/out/std.tar.zst.age" &&
        docker rm -f "$h" >/dev/null
}

recipe() {
    docker run --rm --network none --name "$prefix-$2-recipe" \
        -v "$vol:/volume:ro" -v "$work/out/recipe:/backup" "$bb_img" \
        tar "$1" "/backup/backup.$3" -C / volume
}
c_tar_czf() { recipe czf "$1" tar.gz; }
c_tar_cf() { recipe cf "$1" tar; }

c_ceiling() { docker cp "$prefix-$1-ceiling:/volume" - >/dev/null; }

c_host_probe() {
    tar -C "$mountpoint" -cf - . | zstd -T0 -3 -q | age -r "$recipient" >"$work/out/host.tar.zst.age"
}

c_host_restore_probe() {
    local v="$prefix-$1-hostnew-$round" mp
    docker volume create "$v" >/dev/null &&
        mp=$(docker volume inspect -f '{{.Mountpoint}}' "$v") &&
        age -d -i "$work/key.txt" "$work/keep/std.tar.zst.age" | zstd -d -q |
        tar -x -C "$mp" --strip-components=1 --same-owner -p
}

c_volsafe_restore() {
    volsafe_rss restore -q "$work/keep/vs.tar.zst.age" -i "$work/key.txt" \
        --volume "$prefix-$1-vsnew-$round" --helper-image "$empty_img" >/dev/null || return $?
    echo "$rss_kib" >>"$work/rss-restore-$1"
}

c_std_restore() {
    local v="$prefix-$1-stdnew-$round" h="$prefix-$1-stdnew"
    docker volume create "$v" >/dev/null &&
        docker create --network none --name "$h" -v "$v:/volume" "$empty_img" >/dev/null &&
        age -d -i "$work/key.txt" "$work/keep/std.tar.zst.age" | zstd -d -q |
        docker cp - "$h:/" &&
        docker rm -f "$h" >/dev/null
}

c_volsafe_replace() {
    volsafe_rss restore -q "$work/keep/vs.tar.zst.age" -i "$work/key.txt" \
        --volume "$prefix-$1-target" --replace --rollback-to "$work/out/rollback" \
        -r "$recipient" --helper-image "$empty_img" >/dev/null || return $?
    echo "$rss_kib" >>"$work/rss-replace-$1"
}

# Undoes what a contender left, outside the timing.
reset_after() {
    rm -rf "${work:?}/out"
    mkdir -p "$work/out/recipe"
    case "$1" in
        c_volsafe_restore) drop_volume "$prefix-$2-vsnew-$round" ;;
        c_std_restore) drop_volume "$prefix-$2-stdnew-$round" ;;
        c_host_restore_probe) drop_volume "$prefix-$2-hostnew-$round" ;;
    esac
}

backups=(c_volsafe_backup c_std_backup c_tar_czf c_tar_cf c_ceiling c_host_probe)
restores=(c_volsafe_restore c_std_restore c_host_restore_probe)
# Last, after every plain restore: it removes the target's files, and
# restores within minutes of a removal pay for it (see drop_volume).
replaces=(c_volsafe_replace)

median() {
    tr ' ' '\n' | awk 'NF' | sort -g |
        awk '{ v[NR] = $1 } END { if (!NR) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}


# Bytes of the zstd data frames of an age-encrypted volsafe archive: the
# payload less every volsafe frame (header, manifest chunks, trailer).
# Walks the frames with python3: skippable frames by their length, data
# frames block by block.
data_frame_bytes() {
    local payload="$work/payload"
    age -d -i "$work/key.txt" "$1" >"$payload"
    command -v python3 >/dev/null || die "python3 is needed to measure frame sizes"
    python3 - "$payload" <<'PY' || die "$1: not a sequence of zstd frames"
import struct, sys
data = open(sys.argv[1], "rb").read()
pos, frames = 0, 0
while pos < len(data):
    magic, = struct.unpack_from("<I", data, pos)
    if magic & 0xFFFFFFF0 == 0x184D2A50:
        pos += 8 + struct.unpack_from("<I", data, pos + 4)[0]
        continue
    if magic != 0xFD2FB528:
        sys.exit(1)
    start, d = pos, data[pos + 4]
    single = d & 0x20
    pos += 5 + (0 if single else 1) + [0, 1, 2, 4][d & 3] + [1 if single else 0, 2, 4, 8][d >> 6]
    while True:
        h = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
        pos += 3 + (1 if (h >> 1) & 3 == 1 else h >> 3)
        if h & 1:
            break
    pos += 4 if d & 4 else 0
    frames += pos - start
print(frames)
PY
}

# --- One data set ------------------------------------------------------------
results=()
bench_set() {
    local set=$1 desc=$2 c order
    vol="$prefix-$set"
    log "($set) $desc: creating $vol…"
    mkdir -p "$work/keep" "$work/out/recipe"
    local entries
    entries=$(find "$work/src" | wc -l)
    defer=false
    [ "$entries" -lt 10000 ] || defer=true
    load_volume "$vol"
    $defer || rm -rf "$work/src"
    mountpoint=$(docker volume inspect -f '{{.Mountpoint}}' "$vol")
    local probe=true
    if ! [ -r "$mountpoint" ] || ! [ -x "$mountpoint" ] || ! [ -w "$mountpoint" ]; then
        probe=false
        log "($set) $mountpoint is not readable and writable here: the design probes (5) and (6) are skipped"
    fi
    docker create --network none --name "$prefix-$set-ceiling" -v "$vol:/volume:ro" \
        "$empty_img" >/dev/null
    local tar_bytes
    tar_bytes=$(docker cp "$prefix-$set-ceiling:/volume" - | wc -c)

    # One untimed backup with each tool: the archives every round restores,
    # and a warm page cache.
    log "($set) warm-up and archives to restore…"
    run c_volsafe_backup "$set" || die "volsafe backup of $vol failed"
    mv "$(find "$work/out/vs" -name '*.tar.zst.age')" "$work/keep/vs.tar.zst.age"
    run c_std_backup "$set" || die "the standard pipeline failed on $vol"
    mv "$work/out/std.tar.zst.age" "$work/keep/std.tar.zst.age"
    rm -f "$work/rss-backup-$set"
    run "$bin" restore -q "$work/keep/vs.tar.zst.age" -i "$work/key.txt" \
        --volume "$prefix-$set-target" --helper-image "$empty_img" ||
        die "volsafe restore into $prefix-$set-target failed"
    reset_after none "$set"

    declare -gA times cpus
    local phase
    for phase in backups restores replaces; do
        local -n list=$phase
        for round in $(seq 1 "$rounds"); do
            order=("${list[@]}")
            if [ $((round % 2)) -eq 0 ]; then
                order=()
                for ((i = ${#list[@]} - 1; i >= 0; i--)); do order+=("${list[i]}"); done
            fi
            for c in "${order[@]}"; do
                case "$c" in c_host_probe | c_host_restore_probe) $probe || continue ;; esac
                # One round on a many-file set: each round removes the
                # target's files, and on ext4 without a journal every later
                # round would also pay for the earlier rounds' removals
                # (docs/performance.md), which no operator's single run does.
                if [ "$c" = c_volsafe_replace ] && $defer && [ "$round" -gt 1 ]; then
                    continue
                fi
                # Untimed: the writeback of what the command before wrote
                # (a restore leaves up to the whole volume in dirty pages)
                # must not land in this command's time.
                sync
                timed "$c" "$set"
                times[$set,$c]="${times[$set,$c]:-} $elapsed"
                cpus[$set,$c]="${cpus[$set,$c]:-} $cpu_s"
                log "($set) round $round/$rounds: ${c#c_} ${elapsed}s, machine ${cpu_s} CPU-s"
                reset_after "$c" "$set"
            done
        done
        unset -n list
    done

    # Sizes: volsafe's data frames against zstd -3 of the same tar.
    log "($set) sizes…"
    local vs_file std_file frames zstd3
    vs_file=$(stat -c %s "$work/keep/vs.tar.zst.age")
    std_file=$(stat -c %s "$work/keep/std.tar.zst.age")
    frames=$(data_frame_bytes "$work/keep/vs.tar.zst.age")
    zstd3=$(zstd -d -q -c "$work/payload" | zstd -3 -q -c | wc -c)
    rm -f "$work/payload" "$work/tail"

    docker rm -f "$prefix-$set-ceiling" >/dev/null
    docker volume rm "$vol" "$prefix-$set-target" "${deferred_volumes[@]}" >/dev/null
    deferred_volumes=()
    rm -rf "$work/src"

    local m
    for c in "${backups[@]}" "${restores[@]}" "${replaces[@]}"; do
        m=$(echo "${times[$set,$c]:-}" | median)
        results+=("$set|$c|$m")
        m=$(echo "${cpus[$set,$c]:-}" | median)
        results+=("$set|$c.cpu|$m")
    done
    local rss_b rss_r rss_x
    rss_b=$(sort -n "$work/rss-backup-$set" | tail -n 1)
    rss_r=$(sort -n "$work/rss-restore-$set" | tail -n 1)
    rss_x=$(sort -n "$work/rss-replace-$set" | tail -n 1)
    results+=("$set|meta|$desc|$entries|$tar_bytes|$vs_file|$std_file|$frames|$zstd3|$rss_b|$rss_r|$rss_x")
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

if $quick; then
    gen_mixed 64
    bench_set a "64 MiB mixed"
    gen_small 5000
    bench_set b "5,000 files of 1-4 KiB"
else
    gen_mixed 1024
    bench_set a "1 GiB mixed"
    gen_small 100000
    bench_set b "100,000 files of 1-4 KiB"
    if $large; then
        gen_mixed 4096
        bench_set c "4 GiB mixed"
    fi
fi

# --- The table -----------------------------------------------------------------
get() { # set contender
    local x
    for x in "${results[@]}"; do
        case "$x" in "$1|$2|"*) echo "${x#"$1|$2|"}"; return ;; esac
    done
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "volsafe benchmark, $started, $(hostname), $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
echo "$("$bin" --version), Docker $(docker version --format '{{.Server.Version}}'), kernel $(uname -r); rounds: $rounds; load average before/after: $load_start / $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median seconds; cpu_s = median busy CPU-seconds of the whole machine meanwhile (every process, the daemon's too); MB/s = the volume's tar stream (10^6 bytes) / time; vs (2) = time / time of (2), lower is better; (3)/t = how many times faster than the recipe"
echo
fmt='%-4s %-8s %-34s %9s %6s %8s %8s %9s %8s\n'
# shellcheck disable=SC2059
printf "$fmt" set step tool median_s cpu_s MB/s 'vs (2)' '(3)czf/t' '(3)cf/t'
names=(
    "c_volsafe_backup|backup|(1) volsafe backup"
    "c_std_backup|backup|(2) docker cp|zstd -T0 -3|age"
    "c_tar_czf|backup|(3) docs recipe: busybox tar czf"
    "c_tar_cf|backup|(3) docs recipe: busybox tar cf"
    "c_ceiling|backup|(4) docker cp > /dev/null"
    "c_host_probe|backup|(5) probe: host tar|zstd|age"
    "c_volsafe_restore|restore|(1) volsafe restore, new volume"
    "c_std_restore|restore|(2) age -d|zstd -d|docker cp -"
    "c_host_restore_probe|restore|(6) probe: age|zstd|host tar x"
    "c_volsafe_replace|restore|(1) volsafe restore --replace"
)
for set in a b c; do
    meta=$(get "$set" meta)
    [ -n "$meta" ] || continue
    IFS='|' read -r desc entries tar_bytes vs_file std_file frames zstd3 rss_b rss_r rss_x <<<"$meta"
    echo "---- ($set) $desc: $entries entries, tar stream $(awk -v b="$tar_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }')"
    std_b=$(get "$set" c_std_backup)
    std_r=$(get "$set" c_std_restore)
    czf=$(get "$set" c_tar_czf)
    cf=$(get "$set" c_tar_cf)
    for n in "${names[@]}"; do
        IFS='|' read -r c step label <<<"$n"
        label=${label//|/ | }
        t=$(get "$set" "$c")
        [ -n "$t" ] || continue
        cpu_m=$(get "$set" "$c.cpu")
        ref=$std_b
        [ "$step" = restore ] && ref=$std_r
        # shellcheck disable=SC2059
        awk -v t="$t" -v cpu="$cpu_m" -v b="$tar_bytes" -v ref="$ref" -v czf="$czf" -v cf="$cf" \
            -v step="$step" -v set="$set" -v label="$label" -v fmt="$fmt" 'BEGIN {
                vs = sprintf("%.2fx", t / ref)
                f1 = (step == "backup") ? sprintf("%.1fx", czf / t) : ""
                f2 = (step == "backup") ? sprintf("%.2fx", cf / t) : ""
                printf fmt, set, step, label, sprintf("%.2f", t), sprintf("%.1f", cpu), sprintf("%.0f", b / 1e6 / t), vs, f1, f2
            }'
    done
    awk -v set="$set" -v a="$rss_b" -v b="$rss_r" -v c="$rss_x" -v fmt="$fmt" 'BEGIN {
        printf fmt, set, "memory", "(1) peak RSS backup/restore/replace", sprintf("%.1f", a / 1024), "", sprintf("%.1f", b / 1024), sprintf("%.1f", c / 1024), "MiB", ""
    }'
    awk -v set="$set" -v v="$vs_file" -v s="$std_file" -v f="$frames" -v z="$zstd3" -v fmt="$fmt" 'BEGIN {
        printf fmt, set, "size", "(1) frames / zstd -3 of its tar", sprintf("%.1f", f / 1e6), "", sprintf("%.1f", z / 1e6), sprintf("%.3fx", f / z), "MB", ""
        printf fmt, set, "size", "(1) file / (2) file", sprintf("%.1f", v / 1e6), "", sprintf("%.1f", s / 1e6), sprintf("%.3fx", v / s), "MB", ""
    }'
done

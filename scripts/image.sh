#!/usr/bin/env bash
# Builds and runs the ChangeLens image the way Docker would, on a machine with podman but no Docker
# engine and no usable OCI runtime (this project's CI machine: podman builds with
# --isolation=chroot; crun cannot start containers there). Used by `npm run test:image`; handy by
# hand too. Needs root (mounts, namespaces, chroot).
#
#   scripts/image.sh base [TAG]          make sure the Dockerfile's FROM image exists: pull it, or
#                                        where no registry answers, build a stand-in under its name
#                                        (Debian 12 minbase + this machine's node and npm); cached
#   scripts/image.sh build TAG [ARGS..]  podman build of the real Dockerfile (docker format, so
#                                        HEALTHCHECK is kept); prints the build's seconds last
#   scripts/image.sh run NAME TAG DATA_DIR [-e KEY=VALUE]... [-- CMD...]
#                                        `docker run --network=host -v DATA_DIR:/data`: in the
#                                        foreground, exits with the container's PID 1's status
#   scripts/image.sh pid NAME            the container's PID 1, as seen from the host
#   scripts/image.sh exec NAME [-u UID[:GID]] [-e KEY=VALUE]... CMD...
#                                        `docker exec`: same namespaces, root, user, env and workdir
#   scripts/image.sh stop NAME [SECONDS] `docker stop`: SIGTERM to PID 1, SIGKILL after SECONDS (10);
#                                        returns when PID 1 is gone
#   scripts/image.sh healthcheck NAME [-e KEY=VALUE]...
#                                        runs the image's HEALTHCHECK command in the container
#
# Nothing machine-specific enters the image: where npm trusts an extra CA bundle (its `cafile`), the
# build's npm is pointed at a read-only mount of it for the build only.
set -euo pipefail
BASE_DEFAULT=docker.io/library/node:22-bookworm-slim
STATE=/run/changelens-image

die() { echo "image.sh: $*" >&2; exit 2; }
# One field of an image's config, from `podman image inspect`'s JSON (read once per command): User,
# WorkingDir: a string; Env, Entrypoint, Cmd: one per line; Healthcheck: JSON, which podman shows
# beside Config rather than in it.
config() {
  printf '%s' "$1" | node -e '
    const [i] = JSON.parse(require("fs").readFileSync(0, "utf8")); const v = i.Config[process.argv[1]] ?? i[process.argv[1]];
    const out = Array.isArray(v) ? v : typeof v === "string" ? [v] : v ? [JSON.stringify(v)] : [];
    for (const line of out) console.log(line);' "$2"
}
state() { [ -f "$STATE/$1/$2" ] || die "no running container named '$1'"; cat "$STATE/$1/$2"; }

cmd=${1:-}; [ $# -gt 0 ] && shift
case "$cmd" in
  base)
    tag=${1:-$BASE_DEFAULT}
    # A short name is Docker Hub's (podman may have no search registries configured).
    first=${tag%%/*}
    if [ "$first" = "$tag" ]; then tag=docker.io/library/$tag
    elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then tag=docker.io/$tag; fi
    podman image exists "$tag" && exit 0
    # A real registry first (GitHub runners, most machines); a stand-in where none answers.
    timeout 120 podman pull -q "$tag" >/dev/null 2>&1 && exit 0
    command -v mmdebstrap >/dev/null || die "no registry answers and mmdebstrap is missing (scripts/install-system-deps.sh --test installs it)"
    w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
    mmdebstrap --variant=minbase --quiet bookworm "$w/rootfs.tar"
    podman import -q "$w/rootfs.tar" localhost/debian-bookworm-minbase >/dev/null
    npmdir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    cp "$(node -p process.execPath)" "$w/node"; cp -a "$npmdir" "$w/npm"
    cat >"$w/Containerfile" <<'CF'
FROM localhost/debian-bookworm-minbase
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx && node --version
CF
    podman build -q --isolation=chroot --network=host -t "$tag" "$w" >/dev/null
    echo "$tag: a stand-in (Debian 12 minbase + Node $(node --version))" >&2
    ;;

  build)
    [ $# -ge 1 ] || die "usage: image.sh build TAG [podman build args...]"
    tag=$1; shift
    root=$(cd "$(dirname "$0")/.." && pwd)
    "$0" base "$(sed -nE 's/^FROM ([^ ]+).*/\1/p' "$root/Dockerfile" | head -n 1)"
    args=(--isolation=chroot --network=host --pull=never --format=docker -t "$tag")
    ca=$(npm config get cafile 2>/dev/null || true)
    if [ -n "$ca" ] && [ "$ca" != null ] && [ -f "$ca" ]; then
      rc=$(mktemp); trap 'rm -f "$rc"' EXIT; printf 'cafile=/run/build-ca.crt\n' >"$rc"
      args+=(-v "$ca:/run/build-ca.crt:ro" -v "$rc:/usr/local/etc/npmrc:ro")
    fi
    old=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    start=$(date +%s.%N)
    podman build "${args[@]}" "$@" "$root" >&2
    # The image the tag leaves behind (~400 MB a build) goes, unless a container still uses it.
    new=$(podman image inspect --format '{{.Id}}' "$tag")
    [ -n "$old" ] && [ "$old" != "$new" ] && podman rmi "$old" >/dev/null 2>&1 || true
    # Build-stage images of earlier builds: a day's worth stays as cache.
    podman image prune -f --filter until=24h >/dev/null 2>&1 || true
    awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", e - s }'
    ;;

  run)
    [ $# -ge 3 ] || die "usage: image.sh run NAME TAG DATA_DIR [-e KEY=VALUE]... [-- CMD...]"
    name=$1 tag=$2 data=$3; shift 3
    extra=()
    while [ $# -gt 0 ]; do
      case "$1" in
        -e) extra+=("$2"); shift 2 ;;
        --) shift; break ;;
        *) die "run: unexpected '$1'" ;;
      esac
    done
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "run: NAME: letters, digits and _.- (got '$name')"
    dir=$STATE/$name
    if [ -e "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then die "a container named '$name' is running"; fi
    rm -rf "$dir"; mkdir -p "$dir"
    c=""; ns=""; pid1=""
    # Whatever ends this script (the container's end, a failure, a signal): the container's
    # processes are gone (unshare --kill-child takes PID 1, and the PID namespace the rest), then
    # its podman container and mount, then its state.
    cleanup() {
      set +e
      if [ -n "$ns" ] && kill -0 "$ns" 2>/dev/null; then kill -KILL "$ns" 2>/dev/null; wait "$ns" 2>/dev/null; fi
      if [ -n "$c" ]; then podman umount "$c" >/dev/null 2>&1; podman rm -f "$c" >/dev/null 2>&1; fi
      rm -rf "$dir"
    }
    trap cleanup EXIT
    trap 'exit 143' TERM INT HUP
    # No healthcheck timers: podman would ask systemd for them; `healthcheck` runs the check instead.
    c=$(podman create --no-healthcheck "$tag" true); m=$(podman mount "$c")
    echo "$c" >"$dir/cid"; echo "$tag" >"$dir/image"
    inspect=$(podman image inspect "$tag")
    user=$(config "$inspect" User); user=${user:-0}; wd=$(config "$inspect" WorkingDir); wd=${wd:-/}
    mapfile -t envs < <(config "$inspect" Env)
    if [ $# -eq 0 ]; then mapfile -t argv < <(config "$inspect" Entrypoint; config "$inspect" Cmd); else argv=("$@"); fi
    uid=$(chroot "$m" id -u "${user%%:*}"); gid=$(chroot "$m" id -g "${user%%:*}")
    home=$(chroot "$m" getent passwd "$uid" | cut -d: -f6 || true)
    printf '%s\n' "$uid" >"$dir/uid"; printf '%s\n' "$gid" >"$dir/gid"
    printf '%s\n' "HOME=${home:-/}" "HOSTNAME=$name" "${envs[@]}" "${extra[@]}" >"$dir/env"
    # Like a new named volume: an empty one takes the owner and mode of the image's /data (Docker
    # copies them); one in use is left as it is.
    mkdir -p "$data"
    if [ -z "$(ls -A "$data")" ]; then chown --reference="$m/data" "$data"; chmod --reference="$m/data" "$data"; fi
    # Everything mounted inside the new mount namespace vanishes with it. As Docker does: the volume,
    # a small /dev of its own (null, zero, random, a /dev/shm for Postgres), the host's /etc/hosts
    # and resolv.conf (host network), a fresh /proc.
    setup='set -e; m=$1; data=$2; shift 2
      mount --bind "$data" "$m/data"
      mount -t tmpfs -o mode=755,nosuid tmpfs "$m/dev"
      for d in null zero full random urandom tty; do touch "$m/dev/$d"; mount --bind "/dev/$d" "$m/dev/$d"; done
      mkdir "$m/dev/shm"; mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m shm "$m/dev/shm"
      ln -s /proc/self/fd "$m/dev/fd"; ln -s fd/0 "$m/dev/stdin"; ln -s fd/1 "$m/dev/stdout"; ln -s fd/2 "$m/dev/stderr"
      for f in hosts resolv.conf; do if [ -f "/etc/$f" ] && [ -f "$m/etc/$f" ]; then mount --bind "/etc/$f" "$m/etc/$f"; fi; done
      exec "$@"'
    mapfile -t envlist <"$dir/env"
    # Resolved here: a command substitution in the background command's words would run as a child
    # of the very process whose children are searched below for PID 1 (it was once taken for it).
    volume=$(readlink -f "$data")
    unshare --pid --fork --kill-child --mount --propagation private --mount-proc="$m/proc" \
      sh -c "$setup" setup "$m" "$volume" \
      chroot "$m" setpriv --reuid "$uid" --regid "$gid" --clear-groups \
      env -i "${envlist[@]}" sh -c 'cd "$0" && exec "$@"' "$wd" "${argv[@]}" &
    ns=$!
    # PID 1 is the child of unshare that is PID 1 in the new namespace (NSpid ends in 1); `docker
    # stop` is SIGTERM to it (unshare forwards nothing).
    for _ in $(seq 1 600); do
      pid1=""
      for child in $({ cat "/proc/$ns/task/$ns/children" 2>/dev/null || true; }); do
        if grep -qE '^NSpid:.*[[:space:]]1$' "/proc/$child/status" 2>/dev/null; then pid1=$child; break; fi
      done
      [ -n "$pid1" ] && break
      kill -0 "$ns" 2>/dev/null || break
      sleep 0.05
    done
    [ -n "$pid1" ] || die "run: the container did not start"
    echo "$pid1" >"$dir/pid"
    # From now on a SIGTERM to this script is a `docker stop`: PID 1 gets it, and this waits.
    trap 'kill -TERM "$pid1" 2>/dev/null || true' TERM INT HUP
    set +e; wait "$ns"; rc=$?
    while kill -0 "$ns" 2>/dev/null; do wait "$ns"; rc=$?; done
    exit "$rc"
    ;;

  pid) state "$1" pid ;;

  exec)
    [ $# -ge 2 ] || die "usage: image.sh exec NAME [-u UID[:GID]] [-e KEY=VALUE]... CMD..."
    name=$1; shift
    pid=$(state "$name" pid); uid=$(state "$name" uid); gid=$(state "$name" gid)
    mapfile -t envlist <"$STATE/$name/env"
    while [ "${1:-}" = -e ] || [ "${1:-}" = -u ]; do
      if [ "$1" = -u ]; then uid=${2%%:*}; gid=${2#*:}; [ "$gid" = "$2" ] && gid=$uid; else envlist+=("$2"); fi
      shift 2
    done
    # -w: PID 1's working directory, which is the image's WorkingDir.
    exec nsenter -t "$pid" -p -m -r -w setpriv --reuid "$uid" --regid "$gid" --clear-groups env -i "${envlist[@]}" "$@"
    ;;

  stop)
    # `docker stop [-t SECONDS]`: SIGTERM to PID 1, SIGKILL after the grace period; returns when
    # PID 1 is gone (the run command then cleans up and exits with its status).
    [ $# -ge 1 ] || die "usage: image.sh stop NAME [SECONDS]"
    pid=$(state "$1" pid); grace=${2:-10}
    kill -TERM "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 $((grace * 20))); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done
    echo "image.sh: $1 still running ${grace} s after SIGTERM: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    ;;

  healthcheck)
    [ $# -ge 1 ] || die "usage: image.sh healthcheck NAME [-e KEY=VALUE]..."
    name=$1; shift
    hc=$(config "$(podman image inspect "$(state "$name" image)")" Healthcheck)
    [ -n "$hc" ] || die "the image has no HEALTHCHECK"
    mapfile -t test < <(node -e 'for (const a of JSON.parse(process.argv[1]).Test) console.log(a)' "$hc")
    # Docker kills a check that outlives its --timeout and counts it as failed.
    secs=$(node -p 'Math.ceil((JSON.parse(process.argv[1]).Timeout || 30e9) / 1e9)' "$hc")
    case "${test[0]}" in
      CMD) exec timeout -s KILL "$secs" "$0" exec "$name" "$@" "${test[@]:1}" ;;
      CMD-SHELL) exec timeout -s KILL "$secs" "$0" exec "$name" "$@" /bin/sh -c "${test[1]}" ;;
      *) die "unsupported HEALTHCHECK ${test[0]}" ;;
    esac
    ;;

  *) die "usage: image.sh base|build|run|pid|exec|stop|healthcheck ... (see the header of $0)" ;;
esac

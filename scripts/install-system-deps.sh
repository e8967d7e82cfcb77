#!/usr/bin/env bash
# Installs the system packages ChangeLens needs: PostgreSQL (>= 15) and Redis (>= 7) from Debian's
# packages, plus util-linux's setpriv (drops root for Postgres), tini (PID 1 in the image) and the
# DejaVu fonts (text in the benchmark's PNG charts).
# Idempotent and quiet when everything is already there. Used by README, .ci/run and the Dockerfile.
# With --test it also requires what only the test suite uses (promtool, from Debian's `prometheus`
# package, to lint the proxy's /metrics); the production image does not take it.
#
#   scripts/install-system-deps.sh                  install what is missing (needs root, or sudo)
#   scripts/install-system-deps.sh --test           the same, plus the test-only tools
#   scripts/install-system-deps.sh --check [--test] only report what is missing; exit 1 if anything is
set -euo pipefail

check_only=0
with_test=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --test) with_test=1 ;;
    *) echo "install-system-deps: unknown argument '$arg' (expected: --check and/or --test, or nothing)" >&2; exit 2 ;;
  esac
done

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

missing=()
# Postgres: the server binaries live in /usr/lib/postgresql/<major>/bin; require major >= 15.
pgdir=$(pg_bin || true)
if [ -z "$pgdir" ] || [ ! -x "$pgdir/initdb" ] || [ "$(basename "$(dirname "$pgdir")")" -lt 15 ]; then
  missing+=(postgresql postgresql-contrib)
fi
# Redis: require major >= 7.
if ! command -v redis-server >/dev/null 2>&1 ||
   [ "$(redis-server --version | sed -E 's/.*v=([0-9]+).*/\1/')" -lt 7 ]; then
  missing+=(redis-server)
fi
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v tini >/dev/null 2>&1 || missing+=(tini)
# The benchmark's PNG charts (resvg) draw their text with DejaVu Sans; without a font they have none.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
# Test-only: promtool (Debian ships it in the prometheus server package), openssl, nginx, wrk,
# chromium, podman, mmdebstrap, Locust and iproute2.
if [ "$with_test" = 1 ]; then
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # openssl makes an untrusted certificate for the remote CLI's TLS test.
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  # npm run bench:proxy compares the proxy with nginx (weighted upstreams) under wrk.
  [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  # The dashboard's end-to-end test drives Debian's Chromium with playwright-core.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # npm run test:image builds the real Dockerfile with podman (and, where no image registry answers,
  # a stand-in base image with mmdebstrap), then runs it as `docker run` would (nsenter, setpriv).
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  # The locustfile `changelens bench locust` writes is run by Debian's Locust (master + workers).
  command -v locust >/dev/null 2>&1 || missing+=(python3-locust)
  # The distributed load test gives each load process its own network namespace (iproute2's ip).
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
fi

# The account releases (API colours, uploaded apps) run as when the supervisor runs as root
# (CHANGELENS_RELEASE_USER): its own user and group, no home, no shell, in no other group.
release_user=changelens-app
need_user=0
getent passwd "$release_user" >/dev/null 2>&1 || need_user=1

if [ ${#missing[@]} -eq 0 ] && [ "$need_user" = 0 ]; then
  exit 0
fi
if [ "$check_only" = 1 ]; then
  echo "install-system-deps: missing: ${missing[*]}$([ "$need_user" = 1 ] && echo " user:$release_user")" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-system-deps: need root (or sudo) to install: ${missing[*]}$([ "$need_user" = 1 ] && echo " user:$release_user")" >&2; exit 1; }
  sudo="sudo"
fi

if [ "$need_user" = 1 ]; then
  $sudo useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$release_user"
  echo "install-system-deps: created the user $release_user (releases run as it when ChangeLens runs as root)" >&2
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Debian's postgresql package creates and starts a 'main' cluster; ChangeLens runs its own, so keep
# the packaged one from being created at all.
$sudo mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/changelens.conf >/dev/null
# No service may start during install (containers and CI have no init to manage them).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged redis-server (and, with --test, the prometheus server: only its promtool is wanted)
# may have been started by an init system on a full machine; ChangeLens runs its own instance, so
# stop the packaged ones if they run (ignore when there is no systemd).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  if [ "$with_test" = 1 ]; then
    $sudo systemctl disable --now prometheus nginx >/dev/null 2>&1 || true
  fi
fi
# What the distribution gave may still be too old (PostgreSQL < 15 or Redis < 7): say so, fail.
recheck=(--check)
[ "$with_test" = 1 ] && recheck+=(--test)
if "$0" "${recheck[@]}"; then
  echo "install-system-deps: ok (postgres: $(pg_bin), redis: $(command -v redis-server)$([ "$with_test" = 1 ] && echo ", promtool: $(command -v promtool)"))" >&2
else
  echo "install-system-deps: this distribution's packages are too old or incomplete; ChangeLens needs PostgreSQL >= 15 and Redis >= 7 (Debian 12 or newer)$([ "$with_test" = 1 ] && echo ", and its tests need promtool")" >&2
  exit 1
fi

#!/usr/bin/env bash
# Build faceauth's base images from a Debian mirror, for sites that cannot pull from a public registry:
#   localhost/faceauth-base/debian:bookworm       debootstrap --variant=minbase, imported as an image
#   localhost/faceauth-base/python:3.11-bookworm  Debian's Python 3.11  (PYTHON_IMAGE, instead of python:3.11-slim)
#   localhost/faceauth-base/nginx:bookworm        Debian's nginx        (NGINX_IMAGE, instead of nginx:1.28-alpine)
#   localhost/faceauth-base/postgres:15-bookworm  Debian's PostgreSQL   (POSTGRES_IMAGE, instead of postgres:17-alpine)
#   localhost/faceauth-base/redis:7-bookworm      Debian's redis-server (REDIS_IMAGE, instead of redis:7.4-alpine)
# then prints the .env lines that make docker-compose.yml build and run on them (README.md, "Without a public
# registry"). Images that already exist are kept (--force rebuilds them). Needs root (debootstrap), debootstrap,
# and podman or docker.
#
#   scripts/build-base-images.sh [--force] [--mirror URL] [--security-mirror URL|none] [--ca-certificates FILE]
#
# --ca-certificates FILE: PEM certificates the images trust besides Debian's (e.g. the CA of a site's own package
# mirror or TLS-inspecting proxy); the Python and nginx images add them to the system bundle pip and the services use.
#
# Environment: CONTAINER_ENGINE (podman or docker; default: podman when installed), DEBIAN_MIRROR (default: the
# first Debian mirror apt uses on this machine, else http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR
# (default: the mirror's URL + "-security"; "none" leaves security updates out), DEBIAN_SUITE (bookworm),
# BASE_IMAGE_PREFIX (localhost/faceauth-base), BUILD_NETWORK (the network RUN steps use; default: host),
# and BUILD_OPTS (extra options for every build, e.g. a volume with a CA bundle).
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
ca_certificates=""
mirror=${DEBIAN_MIRROR:-}
security_mirror=${DEBIAN_SECURITY_MIRROR:-}
while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift ;;
    --security-mirror) security_mirror=${2:?--security-mirror needs a URL or none}; shift ;;
    --ca-certificates) ca_certificates=${2:?--ca-certificates needs a file}; shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-base-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

fail() {
  echo "build-base-images: $*" >&2
  exit 1
}

engine=${CONTAINER_ENGINE:-}
if [[ -z "$engine" ]]; then
  if command -v podman >/dev/null; then engine=podman; elif command -v docker >/dev/null; then engine=docker; fi
fi
[[ -n "$engine" ]] && command -v "$engine" >/dev/null || fail "neither podman nor docker found (set CONTAINER_ENGINE)"
suite=${DEBIAN_SUITE:-bookworm}
prefix=${BASE_IMAGE_PREFIX:-localhost/faceauth-base}
network=${BUILD_NETWORK:-host}
read -r -a build_opts <<<"${BUILD_OPTS:-}"

if [[ -z "$mirror" ]]; then
  # The mirror this machine's apt uses (deb822 "URIs:" or one-line "deb URL suite"), the Debian one only.
  mirror=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } \
    | sed -nE 's/^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)([^[:space:]]+\/debian)\/?([[:space:]].*)?$/\3/p' \
    | head -n 1)
  mirror=${mirror:-http://deb.debian.org/debian}
fi
mirror=${mirror%/}
security_mirror=${security_mirror:-$mirror-security}

debian_image="$prefix/debian:$suite"
python_image="$prefix/python:3.11-$suite"
nginx_image="$prefix/nginx:$suite"
postgres_image="$prefix/postgres:15-$suite"
redis_image="$prefix/redis:7-$suite"

exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }

# debootstrap mounts /proc (and more) inside the root it builds; an interrupted run leaves them there, so they are
# unmounted first and nothing on another file system is ever deleted.
remove_rootfs() {
  local work=$1 mount
  for mount in $(awk -v root="$work/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}

build_debian() {
  ((force)) || ! exists "$debian_image" || { echo "build-base-images: $debian_image exists"; return; }
  (($(id -u) == 0)) || fail "debootstrap needs root (run with sudo, or as root)"
  command -v debootstrap >/dev/null || fail "debootstrap not found (apt-get install debootstrap)"
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: the folder of this call
  trap "remove_rootfs '$work'" EXIT
  echo "build-base-images: debootstrap $suite from $mirror (about a minute)"
  debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
  {
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [[ "$security_mirror" == none ]] || echo "deb $security_mirror $suite-security main"
  } >"$work/rootfs/etc/apt/sources.list"
  # As in Debian's official container images: no services started by package scripts, no recommends, no
  # downloaded packages kept.
  printf '#!/bin/sh\nexit 101\n' >"$work/rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$work/rootfs/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$work/rootfs/etc/apt/apt.conf.d/90faceauth-container"
  if [[ -n "$ca_certificates" ]]; then
    [[ -r "$ca_certificates" ]] || fail "cannot read $ca_certificates"
    # update-ca-certificates (run when an image installs ca-certificates) adds these to the system bundle.
    mkdir -p "$work/rootfs/usr/local/share/ca-certificates"
    cp "$ca_certificates" "$work/rootfs/usr/local/share/ca-certificates/faceauth-site.crt"
    echo "build-base-images: trusting the certificates in $ca_certificates"
  fi
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" --numeric-owner -c . | "$engine" import \
    --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$debian_image" >/dev/null
  remove_rootfs "$work"
  trap - EXIT
  echo "build-base-images: built $debian_image"
}

build_from_debian() {
  local image=$1 containerfile=$2
  ((force)) || ! exists "$image" || { echo "build-base-images: $image exists"; return; }
  echo "build-base-images: building $image"
  "$engine" build --network "$network" "${build_opts[@]}" --build-arg "DEBIAN_IMAGE=$debian_image" \
    -f "scripts/base-images/$containerfile" -t "$image" scripts/base-images \
    || fail "building $image failed (output above)"
}

build_debian
build_from_debian "$python_image" python.Containerfile
build_from_debian "$nginx_image" nginx.Containerfile
build_from_debian "$postgres_image" postgres.Containerfile
build_from_debian "$redis_image" redis.Containerfile

cat <<ENV
build-base-images: done. Put these lines in .env (docker-compose.yml builds and runs on them):
PYTHON_IMAGE=$python_image
NGINX_IMAGE=$nginx_image
POSTGRES_IMAGE=$postgres_image
REDIS_IMAGE=$redis_image
ENV

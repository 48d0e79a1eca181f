#!/usr/bin/env bash
# kubemeter's container image, from a binary built beforehand (see the Dockerfile for why).
#   scripts/image.sh tools                 -> installs Podman from Debian's packages when no
#                                             container tool is there
#   scripts/image.sh context BINARY DIR    -> stages the build context in DIR
#   scripts/image.sh build BINARY IMAGE    -> stages target/image/context and builds IMAGE
#   scripts/image.sh export IMAGE DIR      -> the image's filesystem, unpacked into DIR
# CONTAINER_TOOL picks podman (the default) or docker; RUNTIME_BASE the base image (scratch).
set -euo pipefail
cd "$(dirname "$0")/.."

tool=${CONTAINER_TOOL:-podman}
# Podman as root on these machines: the vfs driver and chroot isolation need no kernel overlay
# support and no user namespaces; PODMAN_FLAGS overrides them.
if [ "$tool" = podman ]; then
  # shellcheck disable=SC2206
  flags=(${PODMAN_FLAGS:---storage-driver=vfs})
  build_flags=(--isolation=chroot --layers=false)
else
  flags=()
  build_flags=()
fi

tools() {
  command -v "$tool" >/dev/null 2>&1 && return
  [ "$tool" = podman ] || { echo "$tool not found; install it or use CONTAINER_TOOL=podman" >&2; exit 1; }
  echo "podman not found: installing Debian's podman package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq podman >&2
}

# The user the image runs as: 65532, as distroless images name it.
context() {
  local binary=$1 dir=$2
  [ -x "$binary" ] || { echo "no kubemeter binary at $binary; build it first (make image does)" >&2; exit 1; }
  # A dynamically linked binary names its loader (PT_INTERP); a static one runs on scratch.
  if readelf -l "$binary" | grep -q 'Requesting program interpreter'; then
    echo "$binary is dynamically linked; build it with -C target-feature=+crt-static (make image does)" >&2
    exit 1
  fi
  local ca=/etc/ssl/certs/ca-certificates.crt
  [ -f "$ca" ] || { echo "no CA bundle at $ca: apt-get install ca-certificates" >&2; exit 1; }
  rm -rf "$dir"
  mkdir -p "$dir/rootfs/etc/ssl/certs" "$dir/data"
  cp Dockerfile "$dir/Dockerfile"
  # Debug information is most of a debug build's size and none of its behaviour.
  strip -o "$dir/kubemeter" "$binary"
  chmod 0755 "$dir/kubemeter"
  cp "$ca" "$dir/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nkubemeter:x:65532:65532:kubemeter:/var/lib/kubemeter:/sbin/nologin\n' \
    > "$dir/rootfs/etc/passwd"
  printf 'root:x:0:\nkubemeter:x:65532:\n' > "$dir/rootfs/etc/group"
  # Name resolution in a static glibc binary reads these two files itself (no NSS modules).
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$dir/rootfs/etc/nsswitch.conf"
}

build() {
  local binary=$1 image=$2 dir=target/image/context
  tools
  context "$binary" "$dir"
  local version
  version=$("$dir/kubemeter" --version | awk '{print $2}')
  "$tool" "${flags[@]}" build "${build_flags[@]}" \
    --build-arg "RUNTIME_BASE=${RUNTIME_BASE:-scratch}" --build-arg "VERSION=$version" \
    -t "$image" -f "$dir/Dockerfile" "$dir" >&2
  echo "built $image ($("$tool" "${flags[@]}" image inspect --format '{{.Size}}' "$image") bytes)" >&2
}

export_fs() {
  local image=$1 dir=$2 container
  container=$("$tool" "${flags[@]}" create "$image")
  rm -rf "$dir" && mkdir -p "$dir"
  "$tool" "${flags[@]}" export "$container" | tar -x -C "$dir"
  "$tool" "${flags[@]}" rm "$container" >/dev/null
}

cmd=${1:-}
case "$cmd" in
  tools) tools ;;
  context) context "${2:?BINARY}" "${3:?DIR}" ;;
  build) build "${2:?BINARY}" "${3:?IMAGE}" ;;
  export) export_fs "${2:?IMAGE}" "${3:?DIR}" ;;
  *) echo "usage: $0 tools | context BINARY DIR | build BINARY IMAGE | export IMAGE DIR" >&2; exit 2 ;;
esac

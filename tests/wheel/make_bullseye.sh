#!/bin/bash
# An older userland for the wheel to run in: Debian 11 (glibc 2.31, Python
# 3.9), from the mirror this machine's own release comes from, for this
# machine's architecture or, ARCH, another one (arm64), whose programs then
# run under QEMU's user mode: its qemu-CPU-static is copied into the tree,
# for chroot. make installs debootstrap, dpkg-dev and QEMU before
# (build/debian-packages.txt, groups wheel and wheel-arm64).
#
#   tests/make_bullseye.sh DIR [ARCH]
set -euo pipefail
dir=$1
arch=${2:-$(dpkg --print-architecture)}
[ -f "$dir/.built" ] && exit 0
. /etc/os-release
uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
      awk -v r="$VERSION_CODENAME" '$2 == r {print $1; exit}')
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
options=()
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  options=(--arch="$arch" --foreign)
fi
if ! debootstrap "${options[@]}" --variant=minbase --include=python3 bullseye "$dir" "$uri" \
        > "$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    exit 1
fi
if [ ${#options[@]} -gt 0 ]; then
  # debootstrap's second stage would run the target's programs; unpacking its
  # packages is enough to run Python. The tree's /bin and /lib are links
  # into /usr, and stay so.
  for deb in "$dir"/var/cache/apt/archives/*.deb; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$dir"
  done
  cpu=$(dpkg-architecture -a "$arch" -qDEB_HOST_GNU_CPU 2>/dev/null)
  cp "/usr/bin/qemu-$cpu-static" "$dir/usr/bin/"
fi
touch "$dir/.built"

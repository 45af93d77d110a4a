#!/bin/bash
# An older userland for the wheel to run in: Debian 11 (glibc 2.31, Python
# 3.9), from the mirror this machine's own release comes from. make installs
# debootstrap (build/debian-packages.txt, group wheel) before.
#
#   tests/make_bullseye.sh DIR
set -euo pipefail
dir=$1
[ -f "$dir/.built" ] && exit 0
. /etc/os-release
uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
      awk -v r="$VERSION_CODENAME" '$2 == r {print $1; exit}')
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
if ! debootstrap --variant=minbase --include=python3 bullseye "$dir" "$uri" \
        > "$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    exit 1
fi
touch "$dir/.built"

#!/bin/bash
# Installs the Debian packages of the groups named (build/debian-packages.txt)
# that are not installed yet; needs root only when some are missing.
#
#   build/apt-install.sh [--no-install-recommends] GROUP...
set -euo pipefail
list=$(dirname "$0")/debian-packages.txt
options=()
if [ "${1:-}" = --no-install-recommends ]; then options+=("$1"); shift; fi
packages=()
for group in "$@"; do
  found=$(awk -v g="$group" '$1 == g {$1 = ""; print}' "$list")
  if [ -z "$found" ]; then
    echo "apt-install: no group '$group' in $list" >&2
    exit 2
  fi
  packages+=($found)
done
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "apt-install: run as root to install: ${missing[*]}" >&2
  exit 1
fi
echo "apt-install: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Installs the guest kernels tests/guests/kernels.txt names that are missing,
# the newest package of each: amd64 ones into /boot (generic flavour: the cloud
# one cannot mount the host's files), the arm64 one unpacked into
# OUT/arm64/kernel (its Image, and the modules its root gets). make installs
# QEMU and busybox before (build/debian-packages.txt).
#
#   tests/guests/install_kernels.sh [OUT]     (default build/out/guests)
#
# A kernel of this machine's own release comes through its apt sources;
# bookworm ships 6.12 with its security updates, and bookworm-backports is
# added only if it does not. Another suite (5.10 is bullseye's) or another
# architecture comes from the same mirror through an apt configuration of
# its own under OUT/apt: the machine's sources stay as they are.
set -euo pipefail
list=$(dirname "$0")/kernels.txt
out=$(realpath -m "${1:-build/out/guests}")
export DEBIAN_FRONTEND=noninteractive
# No initramfs (Debian's kernel hook honours INITRD): virtme-ng boots each
# guest with one of its own, and making each kernel's took about 20 s.
export INITRD=No

image_dir() { if [ "$1" = arm64 ]; then echo "$out/arm64/kernel/boot"; else echo /boot; fi; }
installed() { ls "$(image_dir "$2")" 2>/dev/null | grep -qE "^vmlinuz-$1\$"; }

# The mirror this machine's own release comes from.
mirror() {
    . /etc/os-release
    apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
        awk -v r="$VERSION_CODENAME" '$2 == r {print $1; exit}'
}

# apt with lists, cache and dpkg status of its own, for SUITE and ARCH only.
own_apt=()
private_apt() {
    local dir=$out/apt/$1-$2
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) $1 main" \
        > "$dir/sources.list"
    own_apt=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$dir/lists" -o Dir::State::status=/dev/null
             -o Dir::Cache="$dir" -o Dir::Cache::Archives="$dir/archives"
             -o APT::Architecture="$2" -o APT::Architectures="$2" -o APT::Sandbox::User=root)
    apt-get "${own_apt[@]}" update -qq
}

newest_package() {  # PACKAGE-REGEX [APT OPTIONS...]
    apt-cache "${@:2}" search --names-only "^$1\$" | awk '{print $1}' | sort -V | tail -n 1
}

# Downloads the newest package matching PACKAGE-REGEX from SUITE for ARCH;
# prints the .deb's path.
download() {  # SUITE ARCH PACKAGE-REGEX
    private_apt "$1" "$2"
    local package
    package=$(newest_package "$3" "${own_apt[@]}")
    if [ -z "$package" ]; then
        echo "install_kernels: no package $3 in $1 for $2 on the mirror; check tests/guests/kernels.txt" >&2
        exit 1
    fi
    (cd "$out/apt/$1-$2/archives" && apt-get "${own_apt[@]}" download -qq "$package" >/dev/null)
    ls -t "$out/apt/$1-$2/archives/${package}_"*.deb | head -n 1
}

from_the_machine=()
while read -r name arch suite release; do
    installed "$release" "$arch" && continue
    if [ "$(id -u)" != 0 ]; then
        echo "install_kernels: run as root to install the guest kernel $name" >&2
        exit 1
    fi
    if [ "$arch" = arm64 ]; then
        deb=$(download "$(. /etc/os-release; echo "$VERSION_CODENAME")" arm64 \
                       "linux-image-$release-unsigned")
        rm -rf "$out/arm64/kernel"
        mkdir -p "$out/arm64"
        dpkg-deb -x "$deb" "$out/arm64/kernel"
    elif [ "$suite" != - ]; then
        deb=$(download "$suite" amd64 "linux-image-$release")
        dpkg -i "$deb" >/dev/null
    else
        from_the_machine+=("$release")
    fi
done < <(grep -vE '^(#|$)' "$list")
[ ${#from_the_machine[@]} -eq 0 ] && exit 0

apt-get update -qq
missing=()
for release in "${from_the_machine[@]}"; do
    package=$(newest_package "linux-image-$release")
    if [ -z "$package" ]; then
        . /etc/os-release
        uri=$(mirror)
        printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: %s\n' \
            "$uri" "$VERSION_CODENAME" /usr/share/keyrings/debian-archive-keyring.gpg \
            > /etc/apt/sources.list.d/xctl-probe-backports.sources
        apt-get update -qq
        package=$(newest_package "linux-image-$release")
    fi
    if [ -z "$package" ]; then
        echo "install_kernels: no Debian package linux-image-$release; check tests/guests/kernels.txt" >&2
        exit 1
    fi
    missing+=("$package")
done
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

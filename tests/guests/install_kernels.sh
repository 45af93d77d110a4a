#!/usr/bin/env bash
# What `make test-kernels` boots: the newest of Debian's 6.1 and 6.12 kernel
# images (generic flavour: the cloud one cannot mount the host's files); make
# installs QEMU and busybox before (build/debian-packages.txt). Bookworm ships
# 6.12 with its security updates; bookworm-backports is added only if it
# does not.
set -euo pipefail

KERNEL_61='6\.1\.0-[0-9]+-amd64'
KERNEL_612='6\.12\.[0-9]+\+(deb[0-9.]+|bpo)-amd64'
export DEBIAN_FRONTEND=noninteractive

installed() { ls /boot 2>/dev/null | grep -qE "^vmlinuz-$1\$"; }
newest_package() {
    apt-cache search --names-only "^linux-image-$1\$" | awk '{print $1}' | sort -V | tail -n 1
}

missing=()
installed "$KERNEL_61" && installed "$KERNEL_612" && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install_kernels: run as root to install the guest kernels" >&2
    exit 1
fi

apt-get update -qq
for kernel in "$KERNEL_61" "$KERNEL_612"; do
    installed "$kernel" && continue
    package=$(newest_package "$kernel")
    if [ -z "$package" ] && [ "$kernel" = "$KERNEL_612" ]; then
        . /etc/os-release
        # The same mirror as the release itself.
        uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
              awk -v r="$VERSION_CODENAME" '$2 == r {print $1; exit}')
        printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: %s\n' \
            "$uri" "$VERSION_CODENAME" /usr/share/keyrings/debian-archive-keyring.gpg \
            > /etc/apt/sources.list.d/xctl-probe-backports.sources
        apt-get update -qq
        package=$(newest_package "$kernel")
    fi
    if [ -z "$package" ]; then
        echo "install_kernels: no Debian package linux-image-$kernel" >&2
        exit 1
    fi
    missing+=("$package")
done
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

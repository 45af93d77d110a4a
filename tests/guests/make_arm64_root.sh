#!/usr/bin/env bash
# The arm64 guest's root file system: this machine's Debian release for arm64
# (minbase: setpriv and mount are in it) with what the tests run there call
# besides (python3, ip, ss, nstat, nft, bpftool; modprobe, for the kernel to
# load nftables' modules when nft first asks), busybox for virtme-ng's
# init, the guest kernel's modules (tests/guests/install_kernels.sh unpacked
# it into OUT/arm64/kernel), and a venv /opt/xpt holding the aarch64 wheel and
# pytest, installed offline from wheels downloaded here for the root's own
# Python by pip run from its own wheel: Debian's python3-venv would bring
# pip's wheel and the CA certificates, whose set-up alone takes minutes under
# qemu-user.
#
#   tests/guests/make_arm64_root.sh OUT DIST PYTHON
#
# OUT is build/out/guests, DIST the directory make wheel writes the aarch64
# wheel to, PYTHON one with pip, which downloads the wheels.
#
# The Debian part is kept (OUT/arm64/root/.built) until the packages or the
# kernel change; the venv is made again whenever the wheel differs from the
# one it holds. arm64 programs run here under qemu-user: make installs it
# (group arm64), this registers it.
set -euo pipefail
out=$(realpath "$1")
wheel=$(ls "$2"/*aarch64*.whl 2>/dev/null | head -n 1)
if [ -z "$wheel" ]; then
    echo "make_arm64_root: no aarch64 wheel in $2; make wheel builds it" >&2
    exit 1
fi
host_python=$3
root=$out/arm64/root
constraints=$(realpath "$(dirname "$0")/../../build/constraints.txt")
packages=python3,iproute2,nftables,bpftool,kmod,busybox-static

if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    mountpoint -q /proc/sys/fs/binfmt_misc ||
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
fi

built="$packages $(ls "$out/arm64/kernel/lib/modules")"
if [ "$(cat "$root/.built" 2>/dev/null)" != "$built" ]; then
    . /etc/os-release
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
             awk -v r="$VERSION_CODENAME" '$2 == r {print $1; exit}')
    rm -rf "$root"
    started=$SECONDS
    if ! debootstrap --arch=arm64 --variant=minbase --include="$packages" \
            "$VERSION_CODENAME" "$root" "$mirror" > "$out/arm64/debootstrap.log" 2>&1; then
        tail -n 20 "$out/arm64/debootstrap.log" >&2
        echo "make_arm64_root: debootstrap failed; its log: $out/arm64/debootstrap.log" >&2
        exit 1
    fi
    # virtme-ng's init ends the guest with poweroff, which minbase has not.
    ln -sf busybox "$root/usr/bin/poweroff"
    cp -a "$out/arm64/kernel/lib/modules" "$root/usr/lib/"
    echo "$built" > "$root/.built"
    echo "make_arm64_root: Debian root made in $((SECONDS - started)) s"
fi
# The kernel package's files, unpacked, have no module index (its postinst
# makes one): without it modprobe finds nothing, and nft no nf_tables. A
# second, from this host's depmod, is the same file.
depmod -b "$root" "$(ls "$out/arm64/kernel/lib/modules")"

stamp=$root/opt/xpt/.wheel
[ "$(cat "$stamp" 2>/dev/null)" = "$(sha256sum < "$wheel")" ] && exit 0
started=$SECONDS
python=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
wheels=$root/opt/xpt-wheels
rm -rf "$wheels" "$root/opt/xpt"
mkdir -p "$wheels"
cp "$wheel" "$wheels/"
"$host_python" -m pip download -q -c "$constraints" -d "$wheels" --only-binary=:all: \
    --python-version "$python" --platform manylinux2014_aarch64 \
    --platform manylinux_2_28_aarch64 "$wheel" pytest pip
pip=/opt/xpt-wheels/$(cd "$wheels" && ls pip-*.whl)/pip
chroot "$root" python3 -m venv --without-pip /opt/xpt
# Without this machine's pip settings, which name its own paths.
chroot "$root" env -i PATH=/usr/bin:/bin /opt/xpt/bin/python "$pip" install -q --no-index --find-links /opt/xpt-wheels \
    "/opt/xpt-wheels/$(basename "$wheel")" pytest
sha256sum < "$wheel" > "$stamp"
echo "make_arm64_root: venv with $(basename "$wheel") made in $((SECONDS - started)) s"

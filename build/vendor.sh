#!/bin/bash
# Builds what the wheel carries instead of the node: libbpf and zlib as static
# PIC archives, libelf as a shared library (LGPL: auditwheel ships it beside
# the extension, replaceable, rather than linked in), all with zig's C
# compiler targeting glibc 2.28, so the wheel is manylinux_2_28. Sources are
# Debian's source packages (the only downloads besides PyPI's zig).
#
#   build/vendor.sh OUT PYTHON     -> OUT/prefix/{include,lib}
#
# Run as root: it adds deb-src entries mirroring the deb ones if apt has none.
set -euo pipefail

out=$(realpath -m "$1")
python=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
src=$out/src
prefix=$out/prefix
target=x86_64-linux-gnu.2.28
jobs=$(nproc)

[ -f "$prefix/.built" ] && exit 0

# Each step's output goes to a log, shown only when the step fails.
mkdir -p "$out/log"
step() {
  local name=$1; shift
  echo "vendor: $name" >&2
  if ! ( "$@" ) > "$out/log/$name.log" 2>&1; then
    tail -n 30 "$out/log/$name.log" >&2
    echo "vendor: $name failed (log: $out/log/$name.log)" >&2
    exit 1
  fi
}

# zig cc as a plain compiler command, for configure scripts and Makefiles.
mkdir -p "$out/bin" "$src" "$prefix/include" "$prefix/lib"
for tool in "cc:cc -target $target" "ar:ar" "ranlib:ranlib"; do
  printf '#!/bin/sh\nexec %s -m ziglang %s "$@"\n' "$python" "${tool#*:}" > "$out/bin/${tool%%:*}"
  chmod +x "$out/bin/${tool%%:*}"
done
export PATH=$out/bin:$PATH CC=cc AR=ar RANLIB=ranlib

if ! (cd "$src" && apt-get source --print-uris zlib >/dev/null 2>&1); then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      > /etc/apt/sources.list.d/xctl-probe-ebpf-src.sources
  else
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/xctl-probe-ebpf-src.list
  fi
  apt-get update -qq
fi
fetch_sources() {
  cd "$src"
  rm -rf -- */
  apt-get source --download-only libbpf elfutils zlib
  # Debian's patches applied (libbpf's include security fixes). apt checked
  # the files against the archive's signed Release; dpkg-source cannot check
  # the maintainers' signatures without their keys, and need not.
  for dsc in zlib_*.dsc elfutils_*.dsc libbpf_*.dsc; do
    dpkg-source -x "$dsc"
  done
}

step sources fetch_sources

build_zlib() {
  cd "$src"/zlib-*/
  CFLAGS="-O2 -fPIC" ./configure --static --prefix="$prefix"
  make -j"$jobs" libz.a
  make install
}

build_libelf() {
  cd "$src"/elfutils-*/
  CFLAGS="-O2 -fPIC" CPPFLAGS="-I$prefix/include" LDFLAGS="-L$prefix/lib" \
    ./configure --disable-debuginfod --disable-libdebuginfod --without-zstd \
    --without-bzlib --without-lzma --disable-nls
  make -C lib -j"$jobs"
  # lld, unlike bfd, rejects a version script naming symbols this
  # configuration leaves out.
  make -C libelf -j"$jobs" libelf.so LDFLAGS="-L$prefix/lib -Wl,--undefined-version"
  cp libelf/libelf.h libelf/gelf.h libelf/nlist.h "$prefix/include/"
  cp libelf/libelf.so "$prefix/lib/libelf.so.1"
  ln -sf libelf.so.1 "$prefix/lib/libelf.so"
}

build_libbpf() {
  cd "$src"/libbpf-*/src
  mkdir -p "$out/libbpf"
  make -j"$jobs" BUILD_STATIC_ONLY=1 OBJDIR="$out/libbpf" \
    EXTRA_CFLAGS="-fPIC -Wno-error -I$prefix/include" "$out/libbpf/libbpf.a"
  make install_headers DESTDIR="$prefix" PREFIX= INCLUDEDIR=/include
  cp "$out/libbpf/libbpf.a" "$prefix/lib/"
}

# The wheel carries their licences (pyproject.toml's license-files).
copy_licenses() {
  mkdir -p "$prefix/licenses"
  cp "$src"/zlib-*/LICENSE "$prefix/licenses/zlib-LICENSE"
  cp "$src"/elfutils-*/COPYING-LGPLV3 "$prefix/licenses/libelf-COPYING-LGPLV3"
  cp "$src"/elfutils-*/COPYING-GPLV2 "$prefix/licenses/libelf-COPYING-GPLV2"
  cp "$src"/libbpf-*/LICENSE.BSD-2-Clause "$prefix/licenses/libbpf-LICENSE.BSD-2-Clause"
  cp "$src"/libbpf-*/LICENSE.LGPL-2.1 "$prefix/licenses/libbpf-LICENSE.LGPL-2.1"
}

step licenses copy_licenses
step zlib build_zlib
step libelf build_libelf
step libbpf build_libbpf
touch "$prefix/.built"

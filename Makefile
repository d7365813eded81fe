# bottle: build, test and install.
#
# Dependencies come from system packages through pkg-config (see
# vendor/README.md). `make deps` installs them on Debian.

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
SHAREDIR ?= $(PREFIX)/share/bottle
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CC       ?= cc
UNAME_S  ?= $(shell uname -s)

# The Lua 5.4 pkg-config name differs by system. On a Mac it comes from
# Homebrew's keg-only lua@5.4 (plain `lua` there is 5.5); when brew is there
# the kegs' pkgconfig dirs (lua@5.4, curl and openssl@3 are keg-only) and
# Homebrew's own are added to PKG_CONFIG_PATH. Make 3.81 (the Mac's) does
# not pass exported variables to $(shell), so the path travels on each
# pkg-config command line.
PKG_CONFIG ?= pkg-config
PKG_ENV  :=
ifeq ($(UNAME_S),Darwin)
LUA_PC   ?= lua5.4
BREW     ?= $(shell command -v brew 2>/dev/null)
BREW_KEGS ?= lua@5.4 curl openssl@3
ifneq ($(BREW),)
empty    :=
BREW_PC  := $(foreach k,$(BREW_KEGS),$(addsuffix /lib/pkgconfig,$(shell $(BREW) --prefix $(k) 2>/dev/null))) \
            $(addsuffix /lib/pkgconfig,$(shell $(BREW) --prefix 2>/dev/null))
PKG_ENV  := PKG_CONFIG_PATH='$(subst $(empty) $(empty),:,$(strip $(BREW_PC) $(PKG_CONFIG_PATH)))'
endif
else ifeq ($(UNAME_S),FreeBSD)
LUA_PC   ?= lua-5.4
else
LUA_PC   ?= lua5.4
endif
PKGS     := $(LUA_PC) libcurl libcjson openssl yaml-0.1
PKG_CFLAGS := $(shell $(PKG_ENV) $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
# libcurl is not linked into bottle: runtime/curl_dl.c dlopens it when a
# command first talks to the engine. Only the C tests that call it link it.
PKG_LIBS   := $(shell $(PKG_ENV) $(PKG_CONFIG) --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null)
CURL_LIBS  := $(shell $(PKG_ENV) $(PKG_CONFIG) --libs libcurl 2>/dev/null)
CURL_LIBDIR := $(shell $(PKG_ENV) $(PKG_CONFIG) --variable=libdir libcurl 2>/dev/null)
# dlopen is in libc on macOS and glibc >= 2.34; older glibc needs -ldl.
NEED_LDL   := $(shell printf '\043include <dlfcn.h>\nint main(void){return dlopen(0,0)==0;}\n' | \
                $(CC) -x c -o /dev/null - 2>/dev/null || echo -ldl)

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter
CSTD     := -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -D_DARWIN_C_SOURCE
OPT      ?= -O2 -g
CFLAGS   ?=
CFLAGS   += $(CSTD) $(OPT) $(WARN) $(PKG_CFLAGS) -Iruntime \
            -DBOTTLE_VERSION='"$(VERSION)"' -DBOTTLE_SHAREDIR='"$(SHAREDIR)"' \
            -DBOTTLE_LIBCURL_DIR='"$(CURL_LIBDIR)"'
LDLIBS   += $(PKG_LIBS) $(NEED_LDL) -lpthread -lm

# Pure C cores (no Lua): everything in runtime/ that is not a binding or the
# host. They go into a static library the C unit tests link against.
CORE_SRC := $(filter-out runtime/l_%.c runtime/main.c runtime/host.c, $(wildcard runtime/*.c))
BIND_SRC := $(wildcard runtime/l_*.c) runtime/host.c runtime/main.c
# Embedded into the binary: the Lua modules and recipes, and the git-gate
# scripts bottle renders into each launch's state dir.
LUA_SRC  := $(shell find lua recipes -name '*.lua' 2>/dev/null | LC_ALL=C sort) \
            $(shell find images/git-gate -type f 2>/dev/null | LC_ALL=C sort)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
BIND_OBJ := $(BIND_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/embed.o
CTEST_SRC := $(wildcard tests/c/test_*.c)
CTESTS   := $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)

.PHONY: all test asan lint install clean deps check-c check-lua bench images run fuzz fuzz-build pkg-check
# bottle-init is a Linux container's PID 1: built and installed only on
# Linux (the images build their own copy in a Linux build stage).
INIT_ALL := $(if $(and $(filter Linux,$(UNAME_S)),$(wildcard runtime/init/*.c)),$(BUILD)/bottle-init)
all: $(BUILD)/bottle $(INIT_ALL) $(CTESTS)

# A missing library stops the build here, with pkg-config's own message,
# instead of as a missing header in the first compile.
pkg-check:
	@$(PKG_ENV) $(PKG_CONFIG) --print-errors --exists $(PKGS)

$(BUILD)/obj/%.o: %.c $(wildcard runtime/*.h) | pkg-check
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libcore.a: $(CORE_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# The embed generator is a host tool: compile it without sanitizers.
$(BUILD)/embed-gen: tools/embed.c
	@mkdir -p $(dir $@)
	cc -std=c11 -O1 -Wall -Wextra -o $@ $<

$(BUILD)/embed.c: $(BUILD)/embed-gen $(LUA_SRC)
	@echo "  EMBED   $@"; $(BUILD)/embed-gen $@ $(LUA_SRC)

$(BUILD)/obj/embed.o: $(BUILD)/embed.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/bottle: $(BIND_OBJ) $(BUILD)/libcore.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BIND_OBJ) $(BUILD)/libcore.a $(LDLIBS)

# bottle-init is the sidecar bundle's PID 1: plain C, no Lua, no libraries.
# It shares runtime/util.c (libc only) and the unix socket relay
# (runtime/relay.c) with the binary.
INIT_SHARED := runtime/util.c runtime/relay.c
INIT_SRC := $(filter-out runtime/init/main.c, $(wildcard runtime/init/*.c)) $(INIT_SHARED)
$(BUILD)/bottle-init: $(wildcard runtime/init/*.c runtime/init/*.h) $(INIT_SHARED) runtime/util.h runtime/relay.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(OPT) $(WARN) $(filter-out $(PKG_CFLAGS),$(CFLAGS)) $(LDFLAGS) -o $@ $(wildcard runtime/init/*.c) $(INIT_SHARED)

$(BUILD)/tests/test_init%: tests/c/test_init%.c $(INIT_SRC) $(wildcard runtime/init/*.h) runtime/util.h runtime/relay.h tests/c/tap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iruntime/init -Itests/c $(LDFLAGS) -o $@ $< $(INIT_SRC)

# test_docker also builds the engine calls only it needs on the transport.
$(BUILD)/tests/test_docker: tests/c/test_docker.c tests/c/docker_testapi.c tests/c/docker_testapi.h \
                            $(BUILD)/libcore.a tests/c/tap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/c $(LDFLAGS) -o $@ tests/c/test_docker.c tests/c/docker_testapi.c $(BUILD)/libcore.a $(LDLIBS) $(CURL_LIBS)

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/libcore.a tests/c/tap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/c $(LDFLAGS) -o $@ $< $(BUILD)/libcore.a $(LDLIBS)

# The whole suite; ends with one line `N passed, N failed, N skipped`.
test: all
	BUILD=$(BUILD) tests/run

check-c: all
	BUILD=$(BUILD) tests/run c

check-lua: all
	BUILD=$(BUILD) tests/run lua scenarios

# AddressSanitizer + UBSan build of everything, then the whole suite on it.
asan:
	$(MAKE) BUILD=build-asan OPT='-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined' \
	    LDFLAGS='-fsanitize=address,undefined' all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    BUILD=build-asan BOTTLE_ASAN=1 tests/run

# libFuzzer harnesses (tests/fuzz) for the YAML loader, the manifest parser,
# with its schema checks, the JSON decoder and the Docker stream demux, built with clang under
# ASan/UBSan into build-fuzz. `make fuzz` runs each for FUZZ_SECONDS
# (default 60); `make test` runs them for a few seconds through tests/run.
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= $(firstword $(shell command -v clang-14 clang 2>/dev/null))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := yaml manifest json demux
FUZZ_SECONDS ?= 60
fuzz-build:
	@test -n "$(FUZZ_CC)" || { echo "make fuzz: needs clang with libFuzzer (make deps installs clang-14)" >&2; exit 1; }
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
	    OPT='-O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link' \
	    $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)

FUZZ_OBJ := $(filter-out $(BUILD)/obj/runtime/main.o,$(BIND_OBJ))
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.h $(FUZZ_OBJ) $(BUILD)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< $(FUZZ_OBJ) $(BUILD)/libcore.a $(LDLIBS)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_TARGETS)

lint:
	luacheck --no-color -q lua recipes tests/lua tests/scenarios bench
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	    --suppress=missingIncludeSystem -Iruntime runtime tools tests/c tests/fuzz

bench: all
	BUILD=$(BUILD) bench/run
	BUILD=$(BUILD) bench/launch

# The sidecar and agent images (docker build; needs registry access, or
# build arguments naming mirrors: images/README.md). Each is built only when
# the engine does not have it yet, e.g.
#   make images AGENT_BUILD_ARGS="--build-arg NODE_IMAGE=mirror.example/node:22-bookworm-slim"
SIDECAR_IMAGE ?= bottle-sidecars:latest
AGENT_IMAGE   ?= bottle-agent:latest
SIDECAR_BUILD_ARGS ?=
AGENT_BUILD_ARGS   ?=
images:
	@tools/ensure-engine
	@docker image inspect $(SIDECAR_IMAGE) >/dev/null 2>&1 || \
	  docker build $(SIDECAR_BUILD_ARGS) -f images/sidecars/Dockerfile -t $(SIDECAR_IMAGE) .
	@docker image inspect $(AGENT_IMAGE) >/dev/null 2>&1 || \
	  docker build $(AGENT_BUILD_ARGS) -f images/agent/Dockerfile -t $(AGENT_IMAGE) images/agent

# The main job: the default recipe (smolmachines), or RECIPE=docker. Under
# sudo, a smolmachines launch runs as the invoking user (tools/launch).
RECIPE ?= smolmachines
run: all images
	tools/launch $(BUILD)/bottle $(RECIPE)

install: $(BUILD)/bottle $(INIT_ALL)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SHAREDIR)
	install -m 0755 $(BUILD)/bottle $(DESTDIR)$(PREFIX)/bin/bottle
ifneq ($(INIT_ALL),)
	install -m 0755 $(BUILD)/bottle-init $(DESTDIR)$(PREFIX)/bin/bottle-init
endif
	cp -R images $(DESTDIR)$(SHAREDIR)/

# Installs every system package the build and the whole test suite need
# (Debian), or what the build needs (Homebrew on a Mac).
DEB_PKGS := build-essential pkg-config liblua5.4-dev libcurl4-openssl-dev libcjson-dev \
	libssl-dev libyaml-dev lua-check cppcheck openssl curl git ca-certificates \
	docker.io debootstrap busybox-static mitmproxy python3 python3-yaml iproute2 procps util-linux \
	clang clang-14 libclang-rt-14-dev
BREW_PKGS := pkgconf lua@5.4 curl cjson openssl@3 libyaml
deps:
	@if command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "deps: all installed"; fi; \
	elif command -v brew >/dev/null; then \
	  brew install $(BREW_PKGS); \
	else echo "deps: not a Debian system; install the equivalents of: $(DEB_PKGS)" >&2; fi

clean:
	rm -rf build build-asan build-fuzz

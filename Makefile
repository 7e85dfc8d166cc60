# micro: the service sidecar. See README.md for the two commands that matter.
#   make                 build build/micro
#   make run             install what is missing, build, run on the embedded defaults
#   make test            install, build, run unit + integration tests, then again under ASan+UBSan
#   make SANITIZE=1 test only the sanitizer pass
#   make format-check    clang-format conformance
#   make bench           side-by-side benchmarks (bench/)
#   make install         the binary and micro.1 under $(DESTDIR)$(PREFIX) [/usr/local]
#   make demo            a local fleet: etcd, nats-server, three sidecars with example apps
#   make fuzz            the libFuzzer targets of tests/fuzz, FUZZ_SECONDS each [30], two at a time
#   make memcheck        every unit-test binary under valgrind: no error, no definite leak
#   make soak            10,000 keep-alive connections, then SOAK_MINUTES [5] of mixed load
#                        with nodes, etcd and nats-server restarted (loopback; not in make test)

CC      ?= cc
SANITIZE ?= 0
FUZZ    ?= 0
ifeq ($(FUZZ),1)
# libFuzzer targets (make fuzz): clang, with the library instrumented for coverage.
CC      := clang
BUILD   ?= build-fuzz
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT     ?= -O1 -g
else ifeq ($(SANITIZE),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT     ?= -O1 -g
else
BUILD   ?= build
SANFLAGS =
OPT     ?= -O2 -g
endif

# The version `micro --version` prints: the release, plus the commit when built from git.
BASE_VERSION = 0.3.0
VERSION ?= $(BASE_VERSION)$(shell git rev-parse --short HEAD >/dev/null 2>&1 && \
             echo "+git.$$(git rev-parse --short HEAD)$$(git diff --quiet HEAD 2>/dev/null || echo .dirty)")

LLHTTP_SRC = /usr/share/llhttp
LLHTTP_INC = /usr/share/include/llhttp

DEFS     = -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
INCS     = -Isrc -I$(LLHTTP_INC) $(shell pkg-config --cflags libuv jansson uuid libnghttp2 2>/dev/null)
CFLAGS  += -std=c17 $(OPT) $(DEFS) $(WARN) $(INCS) $(SANFLAGS) -MMD -MP
LDLIBS  += $(shell pkg-config --libs libuv jansson uuid libnghttp2 2>/dev/null) -lwslay -lnats -lssl -lcrypto -lpthread
LDFLAGS += $(SANFLAGS) -Wl,--as-needed

SRCS      := $(shell find src -name '*.c' | sort)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LLHTTP_OBJS := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
UNIT_SRCS := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
FUZZ_SRCS := $(shell find tests/fuzz -name 'fuzz_*.c' 2>/dev/null | sort)
FUZZ_BINS := $(FUZZ_SRCS:%.c=$(BUILD)/%)
BENCH_SRCS := $(shell find bench -name '*.c' 2>/dev/null | sort)
BENCH_BINS := $(BENCH_SRCS:%.c=$(BUILD)/%)

.PHONY: FORCE all deps deps-run demo install run test test-unit test-integration format format-check bench clean fuzz fuzz-bins memcheck soak

all: $(BUILD)/micro

deps:
	@bash scripts/install-deps.sh

$(BUILD)/libmicro.a: $(LIB_OBJS) $(LLHTTP_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/micro: $(BUILD)/src/main.o $(BUILD)/libmicro.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Rewritten only when the version changes, so a build from the same commit relinks nothing.
$(BUILD)/version.h: FORCE
	@mkdir -p $(BUILD)
	@echo '#define MC_VERSION "$(VERSION)"' >$@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/src/main.o: $(BUILD)/version.h
$(BUILD)/src/main.o: CFLAGS += -I$(BUILD)

FORCE:

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Third-party parser sources from Debian's node-llhttp: compiled from where Debian puts
# them, with our sanitizers but without our warning policy (their code, not ours). Strict
# mode makes llhttp check the bytes its default build skips (CRLF after chunk data, LF after
# every CR, token characters in header names): SPEC 11 refuses what it refuses, on requests
# and on node responses alike. The objects depend on this file so a flag change rebuilds them.
$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=c17 $(OPT) $(SANFLAGS) -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) -w -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(BUILD)/libmicro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libmicro.a $(LDFLAGS) $(LDLIBS) -lcmocka -lm

# Fuzz targets link libFuzzer's main (a shorter stem than the unit-test rule: this one wins).
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c $(BUILD)/libmicro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libmicro.a $(LDFLAGS) $(LDLIBS)

fuzz-bins: $(FUZZ_BINS)

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)

unit-bins: $(UNIT_BINS)

deps-run:
	@bash scripts/install-deps.sh run

run: deps-run
	@$(MAKE) --no-print-directory all
	./$(BUILD)/micro sidecar

test: deps
	@bash scripts/test.sh

test-unit: $(UNIT_BINS)
	@bash scripts/run-unit.sh $(BUILD)

test-integration: $(BUILD)/micro
	@MICRO_BIN=$(abspath $(BUILD)/micro) /usr/bin/python3 -m pytest -q tests/integration

format:
	clang-format -i $$(find src tests bench -name '*.[ch]')

format-check:
	@clang-format --dry-run --Werror $$(find src tests bench -name '*.[ch]') && echo "format-check: ok"

bench: deps
	@bash bench/run.sh

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary and its manual page, which the binary
# writes from the same flag table as --help.
PREFIX ?= /usr/local
$(BUILD)/micro.1: $(BUILD)/micro
	./$(BUILD)/micro man >$@

install: $(BUILD)/micro $(BUILD)/micro.1
	install -D -m 0755 $(BUILD)/micro $(DESTDIR)$(PREFIX)/bin/micro
	install -D -m 0644 $(BUILD)/micro.1 $(DESTDIR)$(PREFIX)/share/man/man1/micro.1

# A local fleet: etcd, nats-server, three sidecars with example apps (scripts/demo.sh).
demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh

fuzz: deps
	@bash scripts/fuzz.sh

memcheck: deps
	@$(MAKE) --no-print-directory unit-bins
	@bash scripts/memcheck.sh $(BUILD)

soak: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/soak.sh $(BUILD)/micro

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# basisnetd — plain GNU make. `make` builds, `make check` tests, `make asan` tests under
# sanitizers, `make bench` benchmarks, `make deps` installs Debian packages.
#
# Layout convention (no per-file rules to maintain):
#   engine/*.c          -> build/libbasisnet.a       (no GStreamer, no sockets)
#   pipeline/*.c        -> build/libbnpipeline.a     (GStreamer + libv4l2 capture)
#   daemon/*.c          -> build/libbndaemon.a       (config, publisher, protocol, mqtt ...)
#                          except daemon/basisnetd.c and daemon/basisnetctl.c (program mains)
#   tools/basisnet/*.c  -> build/basisnet            (offline model toolbox)
#   tests/unit/test_*.c -> build/tests/test_*        (cmocka, one binary per module; linked
#                          against the static libraries, so only the objects a test uses are
#                          pulled in)
#   tests/fuzz/fuzz_*.c -> build/fuzz/fuzz_*         (libFuzzer, clang)
#   tests/integration/*.sh, tools/train/smoke_test.sh run by `make check`

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
PYTHON   ?= /usr/bin/python3
CC       ?= cc
V        ?= 0
SAN      ?=
TSAN     ?=

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS := gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 libv4l2 yaml-0.1 libsystemd jansson libmosquitto libsoup-3.0 libcrypt
# Evaluated lazily, once, on first use: `make deps check` installs the -dev packages before
# any recipe needs their flags, so pkg-config must not run while the Makefile is parsed.
lazy = $(eval $(1) := $$(shell $(2)))$($(1))
PKG_CFLAGS    = $(call lazy,PKG_CFLAGS,pkg-config --cflags $(PKGS))
PKG_LIBS      = $(call lazy,PKG_LIBS,pkg-config --libs $(PKGS))
CMOCKA_CFLAGS = $(call lazy,CMOCKA_CFLAGS,pkg-config --cflags cmocka)
CMOCKA_LIBS   = $(call lazy,CMOCKA_LIBS,pkg-config --libs cmocka)
# Debian's OpenBLAS: pkg-config "openblas" points at the alternatives-selected build.
BLAS_CFLAGS   = $(call lazy,BLAS_CFLAGS,pkg-config --cflags openblas)
BLAS_LIBS     = $(call lazy,BLAS_LIBS,pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

# Baseline x86-64 by default: the kernels pick AVX2 or AVX-512 at run time (engine/cpu.h).
ARCH_FLAGS ?=
OPT ?= -O2
WARN := -Wall -Wextra -Werror -Wno-error=deprecated-declarations
CFLAGS ?=
# CPPFLAGS and LDFLAGS from the environment are honoured too (dpkg-buildflags: fortify, relro, now).
CPPFLAGS ?=
LDFLAGS ?=
CPPFLAGS_ALL = -D_GNU_SOURCE -I. -Iengine -Ipipeline -Idaemon $(PKG_CFLAGS) $(BLAS_CFLAGS) $(CMOCKA_CFLAGS) $(CPPFLAGS)
CFLAGS_ALL := -std=c17 $(WARN) $(OPT) -g $(ARCH_FLAGS) -fno-strict-aliasing -pthread -MD -MP $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) $(BLAS_LIBS) -lpng -ljpeg -lz -lm -pthread

ifeq ($(SAN),1)
CFLAGS_ALL += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
endif

# ThreadSanitizer (make tsan): GLib's futex-based GMutex/GCond are invisible to it, so the
# project's own calls go to pthread-based versions (tests/tsan/glib_tsan.h).
ifeq ($(TSAN),1)
CFLAGS_ALL += -fsanitize=thread -fno-omit-frame-pointer -include tests/tsan/glib_tsan.h
LDFLAGS_SAN := -fsanitize=thread
TSAN_OBJ := $(BUILD)/obj/tests/tsan/glib_tsan.o
endif

ENGINE_SRCS   := $(sort $(wildcard engine/*.c))
PIPELINE_SRCS := $(sort $(wildcard pipeline/*.c))
DAEMON_MAINS  := daemon/basisnetd.c daemon/basisnetctl.c
DAEMON_SRCS   := $(sort $(filter-out $(DAEMON_MAINS),$(wildcard daemon/*.c)))
TOOL_SRCS     := $(sort $(wildcard tools/basisnet/*.c))
TEST_SRCS     := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRCS     := $(sort $(wildcard tests/fuzz/fuzz_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBBASISNET  := $(BUILD)/libbasisnet.a
LIBPIPELINE  := $(BUILD)/libbnpipeline.a
LIBDAEMON    := $(BUILD)/libbndaemon.a
PROJECT_LIBS := $(LIBDAEMON) $(LIBPIPELINE) $(LIBBASISNET) $(TSAN_OBJ)

PROGRAMS := $(BUILD)/basisnetd $(BUILD)/basisnetctl $(BUILD)/basisnet
TESTS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
TEST_SUPPORT := $(sort $(wildcard tests/support/*.c))

.PHONY: all check unit-tests integration-tests asan ubsan tsan soak bench fuzz fuzz-check fuzz-long deps install uninstall \
        clean run vm-check check-vm budget-check sample-clip deb check-package
.DEFAULT_GOAL := all
# Keep test objects: they are intermediates of a pattern chain, and deleting them forces relinks.
.SECONDARY:

all: $(LIBBASISNET) $(PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c $< -o $@

$(LIBBASISNET): $(call obj,$(ENGINE_SRCS))
$(LIBPIPELINE): $(call obj,$(PIPELINE_SRCS))
$(LIBDAEMON):   $(call obj,$(DAEMON_SRCS))
# Every archive carries one empty member so that a module with no sources yet still links.
$(BUILD)/%.a: $(BUILD)/obj/.empty.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/.empty.o:
	@mkdir -p $(dir $@)
	$(Q)echo 'typedef int bn_empty_unit;' | $(CC) -x c -c - -o $@

define link
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS_ALL) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $(1) -Wl,--as-needed $(PROJECT_LIBS) $(LDLIBS_ALL) $(2)
endef

$(BUILD)/basisnetd: $(call obj,daemon/basisnetd.c) $(PROJECT_LIBS)
	$(call link,$(call obj,daemon/basisnetd.c))
$(BUILD)/basisnetctl: $(call obj,daemon/basisnetctl.c) $(PROJECT_LIBS)
	$(call link,$(call obj,daemon/basisnetctl.c))
$(BUILD)/basisnet: $(call obj,$(TOOL_SRCS)) $(PROJECT_LIBS)
	$(call link,$(call obj,$(TOOL_SRCS)))

$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(call obj,$(TEST_SUPPORT)) $(PROJECT_LIBS)
	$(call link,$< $(call obj,$(TEST_SUPPORT)),$(CMOCKA_LIBS))

# ---- tests ---------------------------------------------------------------------------
# Every test binary runs even when one fails; the summary line counts binaries.
check: all $(TESTS)
	$(Q)BUILD=$(BUILD) SAN=$(SAN) PYTHON=$(PYTHON) ALLOWED_SKIPS="$(ALLOWED_SKIPS)" tests/run-tests.sh $(TESTS)

asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=1 OPT=-O1 ALLOWED_SKIPS="capture_vm $(ALLOWED_SKIPS)" check

ubsan: asan

# ThreadSanitizer build into build-tsan of the threaded tests (tests/tsan/run.sh says which);
# fails on a test failure or on any report tests/tsan.supp does not cover. Not in `make check`.
TSAN_UNIT := test_daemon_infer test_daemon_picture test_daemon_event_store test_engine_pool test_engine_parity test_daemon_mqtt \
             test_pipeline_capture test_pipeline_capture_errors
tsan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-tsan TSAN=1 OPT=-O1 all \
	  $(addprefix build-tsan/tests/,$(TSAN_UNIT))
	$(Q)BUILD=build-tsan PYTHON=$(PYTHON) TSAN_UNIT="$(TSAN_UNIT)" tests/tsan/run.sh

bench: all
	$(Q)BUILD=$(BUILD) PYTHON=$(PYTHON) bench/run-bench.sh

# The soak (bench/soak/soak.py, results in docs/daemon.md): the daemon for SOAK_MINUTES on the
# looping sample clip with subscriber churn, a reload a minute, `set`, a broker and a source
# file that come and go; fails on RSS or fd growth after warm-up, an unexplained seq gap, a
# late watchdog ping. Not in `make check`.
SOAK_MINUTES ?= 60
soak: all
	$(Q)BUILD=$(BUILD) $(PYTHON) bench/soak/soak.py $(SOAK_MINUTES)

# ---- fuzzing (clang + libFuzzer) -------------------------------------------------------
FUZZ_BUILD := build/fuzz
FUZZ_CFLAGS = -std=c17 -g -O1 $(ARCH_FLAGS) -D_GNU_SOURCE -I. -Iengine -Ipipeline -Idaemon \
               $(PKG_CFLAGS) $(BLAS_CFLAGS) -fsanitize=fuzzer,address,undefined
FUZZ_LIB_SRCS := $(ENGINE_SRCS) $(PIPELINE_SRCS) $(DAEMON_SRCS)
FUZZERS := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRCS))
# A fuzzer's own libFuzzer flags (tests/fuzz/NAME.flags, lines not starting with #) and the
# caller's (FUZZ_ARGS), for every run of it below.
FUZZ_FLAGS = $$(grep -v '^\#' tests/fuzz/$$n.flags 2>/dev/null) $(FUZZ_ARGS)
$(FUZZ_BUILD)/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(ENGINE_SRCS) $(PIPELINE_SRCS) $(DAEMON_SRCS) $(wildcard engine/*.h engine/isa/*.inc daemon/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRCS) $(PKG_LIBS) $(BLAS_LIBS) -lpng -ljpeg -lz -lm -pthread
fuzz: $(FUZZERS)
	$(Q)for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build/fuzz-corpus/$$n; \
	  $$f $(FUZZ_FLAGS) -max_total_time=$${FUZZ_SECONDS:-300} build/fuzz-corpus/$$n tests/fuzz/corpus/$$n || exit 1; done
# Every fuzzer (or the ones named in FUZZERS_ONLY, e.g. "fuzz_model fuzz_config") on its kept
# corpus and the seeds, until FUZZ_EXECS executions each (e.g. 10000000) or for FUZZ_SECONDS
# each (default 600 when FUZZ_EXECS is not given; with both, whichever comes first). The
# last lines of each log (build/fuzz/NAME.long.log) give the executions and the corpus; any
# crash, leak or RSS over FUZZ_RSS_MB (default 2048) stops the run.
FUZZ_LONG_LIMIT = $(if $(FUZZ_EXECS),-runs=$(FUZZ_EXECS) -max_total_time=$(or $(FUZZ_SECONDS),0),-max_total_time=$(or $(FUZZ_SECONDS),600))
fuzz-long: $(FUZZERS)
	$(Q)for f in $(if $(FUZZERS_ONLY),$(addprefix $(FUZZ_BUILD)/,$(FUZZERS_ONLY)),$(FUZZERS)); do n=$$(basename $$f); \
	  mkdir -p build/fuzz-corpus/$$n; t0=$$(date +%s); \
	  $$f $(FUZZ_FLAGS) $(FUZZ_LONG_LIMIT) -rss_limit_mb=$${FUZZ_RSS_MB:-2048} -print_final_stats=1 \
	    build/fuzz-corpus/$$n tests/fuzz/corpus/$$n >$(FUZZ_BUILD)/$$n.long.log 2>&1 \
	  && echo "fuzz $$n: $$(grep -o 'stat::number_of_executed_units: *[0-9]*' $(FUZZ_BUILD)/$$n.long.log | grep -o '[0-9]*$$') executions in $$(( $$(date +%s) - t0 )) s, peak RSS $$(grep -o 'stat::peak_rss_mb: *[0-9]*' $(FUZZ_BUILD)/$$n.long.log | grep -o '[0-9]*$$') MB, corpus $$(ls build/fuzz-corpus/$$n | wc -l) inputs, no crash" \
	  || { tail -40 $(FUZZ_BUILD)/$$n.long.log; echo "fuzz $$n: FAILED"; exit 1; }; done
# Bounded run used by `make check`.
fuzz-check: $(FUZZERS)
	$(Q)for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
	  $$f $(FUZZ_FLAGS) -runs=$${FUZZ_RUNS:-20000} -max_total_time=60 $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n >$(FUZZ_BUILD)/$$n.log 2>&1 \
	  && echo "fuzz $$n: ok ($$(grep -o 'Done [0-9]* runs' $(FUZZ_BUILD)/$$n.log))" \
	  || { tail -40 $(FUZZ_BUILD)/$$n.log; echo "fuzz $$n: FAILED"; exit 1; }; done

# ---- main job ----------------------------------------------------------------------------
# The daemon on the bundled sample clip, labels printed to the terminal, exits at the
# clip's end.
run: all
	$(BUILD)/basisnetd --config configs/sample.yaml --print --exit-on-eos

# The real-daemon contention benchmark of the budget controller (timed, so not in `make
# check`; test_engine_budget_replay keeps its claim there). Environment knobs
# (BUDGET_MODE=off, BUDGET_MODEL=mnv3, WINDOW) at the top of the script.
budget-check: all
	$(Q)BUILD=$(BUILD) bash bench/budget/contention.sh

check-vm: vm-check
vm-check: all
	$(Q)tests/vm/run-vm-tests.sh

# ---- install ---------------------------------------------------------------------------
# `make uninstall` (same DESTDIR and PREFIX) removes exactly these files; the config in
# /etc is removed only while it is the one `make install` wrote (unchanged).
INST_BIN    := $(DESTDIR)$(PREFIX)/bin
INST_DATA   := $(DESTDIR)$(PREFIX)/share/basisnetd
INST_DOC    := $(DESTDIR)$(PREFIX)/share/doc/basisnetd
INST_MAN    := $(DESTDIR)$(PREFIX)/share/man
# Debian 12 packages keep units in /lib/systemd/system: debian/rules sets SYSTEMD_UNITDIR.
SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
INST_UNITS  := $(DESTDIR)$(SYSTEMD_UNITDIR)
INST_MODELS := $(wildcard models/*.bnm models/*.labels)
INST_CONFIGS := $(wildcard configs/*.yaml)
INST_SAMPLES := samples/fmnist-sample.mkv
INST_DOCS   := docs/daemon.md docs/config.md docs/protocol.md docs/deploy.md docs/http.md docs/gate.md \
               docs/troubleshooting.md
INST_IMGS   := docs/img/http-page.png docs/img/cameras-cpu.png
INST_MANS   := $(wildcard man/*.[158])
ETC_CONFIG  = sed 's|\.\./models/|$(PREFIX)/share/basisnetd/models/|' configs/camera.yaml
install: all
	install -d $(INST_BIN) $(INST_DATA)/models $(INST_DATA)/samples $(INST_DOC) $(INST_DOC)/img \
	  $(DESTDIR)/etc/basisnetd $(INST_UNITS) \
	  $(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d \
	  $(INST_MAN)/man1 $(INST_MAN)/man5 $(INST_MAN)/man8
	install -m 0755 $(PROGRAMS) $(INST_BIN)/
	$(if $(INST_MODELS),install -m 0644 $(INST_MODELS) $(INST_DATA)/models/)
	install -m 0644 $(INST_SAMPLES) $(INST_DATA)/samples/
	for f in $(INST_CONFIGS); do sed 's|\.\./models/|$(PREFIX)/share/basisnetd/models/|; s|\.\./samples/|$(PREFIX)/share/basisnetd/samples/|' $$f \
	  > $(INST_DATA)/$$(basename $$f) && chmod 0644 $(INST_DATA)/$$(basename $$f); done
	install -m 0644 $(INST_DOCS) $(INST_DOC)/
	install -m 0644 $(INST_IMGS) $(INST_DOC)/img/
	for f in $(INST_MANS); do install -m 0644 $$f $(INST_MAN)/man$${f##*.}/; done
	for f in systemd/*.service; do sed 's|@BINDIR@|$(PREFIX)/bin|g; s|@DATADIR@|$(PREFIX)/share/basisnetd|g; s|@DOCDIR@|$(PREFIX)/share/doc/basisnetd|g' $$f \
	  > $(INST_UNITS)/$$(basename $$f); done
	install -m 0644 systemd/basisnetd.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/basisnetd.conf
	install -m 0644 systemd/basisnetd.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/basisnetd.conf
	test -e $(DESTDIR)/etc/basisnetd/basisnetd.yaml || \
	  $(ETC_CONFIG) > $(DESTDIR)/etc/basisnetd/basisnetd.yaml

uninstall:
	rm -f $(addprefix $(INST_BIN)/,$(notdir $(PROGRAMS))) \
	  $(addprefix $(INST_DATA)/models/,$(notdir $(INST_MODELS))) \
	  $(addprefix $(INST_DATA)/,$(notdir $(INST_CONFIGS))) \
	  $(addprefix $(INST_DATA)/samples/,$(notdir $(INST_SAMPLES))) \
	  $(addprefix $(INST_DOC)/,$(notdir $(INST_DOCS))) \
	  $(addprefix $(INST_DOC)/img/,$(notdir $(INST_IMGS))) \
	  $(foreach f,$(INST_MANS),$(INST_MAN)/man$(subst .,,$(suffix $(f)))/$(notdir $(f))) \
	  $(addprefix $(INST_UNITS)/,$(notdir $(wildcard systemd/*.service))) \
	  $(DESTDIR)$(PREFIX)/lib/sysusers.d/basisnetd.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/basisnetd.conf
	@if [ -f $(DESTDIR)/etc/basisnetd/basisnetd.yaml ]; then \
	  if $(ETC_CONFIG) | cmp -s - $(DESTDIR)/etc/basisnetd/basisnetd.yaml; then \
	    echo "rm -f $(DESTDIR)/etc/basisnetd/basisnetd.yaml"; rm -f $(DESTDIR)/etc/basisnetd/basisnetd.yaml; \
	  else echo "kept $(DESTDIR)/etc/basisnetd/basisnetd.yaml (changed since install)"; fi; fi
	rmdir $(INST_DATA)/models $(INST_DATA)/samples $(INST_DATA) $(INST_DOC)/img $(INST_DOC) $(DESTDIR)/etc/basisnetd 2>/dev/null || true

# ---- Debian packages ------------------------------------------------------------------
# build/deb/basisnetd_VERSION_amd64.deb and basisnetd-train_VERSION_all.deb, checked with
# lintian (docs/packaging.md).
deb:
	$(Q)tools/build-deb.sh

# `make deb`, then the packages installed, upgraded, removed and purged in a fresh Debian 12
# container under systemd-nspawn (about 2 min, 4 min when it first debootstraps the root;
# too slow for `make check`: .ci/run runs it after `make deps check`).
check-package:
	$(Q)if bash tests/package/package_nspawn.sh; then echo "1 passed, 0 failed"; \
	  else echo "0 passed, 1 failed"; exit 1; fi

# ---- dependencies ----------------------------------------------------------------------
deps:
	$(Q)tools/install-deps.sh

clean:
	rm -rf build build-tsan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

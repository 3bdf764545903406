# libpeft — build, test, install. `make` builds build/libpeft.so, one build/plugins/<name>.so per
# plugins/<name>/ and build/peft; `make check` runs every Check suite; `make deps` installs the
# Debian packages when missing.
# No built-in implicit rules: every rule here is explicit, and without them make no longer
# searches the built-in ones (RCS, SCCS, yacc, ...) for each of the ~270 dependency files it
# includes and each header they name: reading this Makefile took 0.28 s of CPU per make
# invocation, now 0.05 s (`make check` runs three; the first two before any suite starts).
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:
CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
# Optimisation by what the code does: OPT for the kernels (core/ops, core/tensor, the tokenizers'
# loops, the plugins' layers), OPT_LIB for the rest of the library, the command, the runner and
# the plugins' option parsing and registration, OPT_TEST for the suites, their helpers and the
# fixture plugins (the compile that `make check` from clean pays most for: -O3 everywhere was
# ~110 s of CPU). The suites at -O0: their compile 21 -> 10 s of CPU, and they run no slower
# (measured: 44.6-48.8 s of suite CPU at -O0, 44.7-50.7 s at -O1: the work is the library's);
# `make check OPT_TEST=-O1` adds the warnings that need the optimiser (maybe-uninitialized). None of these changes a result: no -ffast-math, and the x86-64 baseline has
# no FMA to contract into (every fixture comparison is exact). OPT=... on the command line
# (e.g. `make asan`) sets every object's level.
OPT      ?= -O3
OPT_LIB  ?= -O2
OPT_TEST ?= -O0
OPT_KERNEL := $(OPT)
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wshadow -Wmissing-prototypes -fPIC -pthread
CPPFLAGS += -I. -Isdk/include -I/usr/include/x86_64-linux-gnu/openblas-pthread
# no LAPACKE: libopenblas.so.0 exports LAPACK itself, which core/tuner/host_linalg.c calls directly
# (core/tuner/lapack_fortran.h); liblapacke.so.3 loaded Debian's libblas.so.3 and liblapack.so.3
# (two more full copies of OpenBLAS), libtmglib and libgfortran into every process: ~2 ms of
# dynamic linking at each start of `peft` or of a suite
DEPLIBS  = -lopenblas -ljansson -lyaml -lpcre2-8 -lutf8proc -ldl -lm -pthread
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)
NPROC   := $(shell nproc 2>/dev/null || echo 2)

# The layers (README, "Layout"): core/ is libpeft.so; tokenizers/ is its own library; runner/
# and cli/ make the peft command. Dependencies run one way (scripts/check-layers.sh).
CORE_SRC   = $(wildcard core/*/*.c)
CORE_OBJ   = $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
TOK_SRC    = $(wildcard tokenizers/*.c)
TOK_OBJ    = $(TOK_SRC:%.c=$(BUILD)/obj/%.o)
RUNNER_SRC = $(wildcard runner/*.c)
# MPI is optional (runner/dist.h). runner/dist.c, the runner's side, is always built; the MPI
# backend, runner/dist_mpi.c, is a module of its own, $(BUILD)/libpeft_dist_mpi.so (installed in
# lib/libpeft/), the only object linked with the MPI's libraries (Debian's mpi-c pkg-config file:
# Open MPI or MPICH, whichever is the default; or MPICH's own mpich.pc). dist.c dlopen()s it only
# when an MPI launcher started the process (or PEFT_MPI=1): `peft` and the suites link no MPI, so
# the processes that never run under mpirun (nearly all) do not load libmpi and the ten-odd
# libraries it pulls in (~1.4 ms at every start). `make MPI=0`: no module; one process only.
ifndef MPI
MPI := $(shell pkg-config --exists mpi-c 2>/dev/null && echo mpi-c || \
         (pkg-config --exists mpich 2>/dev/null && echo mpich) || echo 0)
endif
RUNNER_SRC := $(filter-out runner/dist_mpi.c,$(RUNNER_SRC))
ifeq ($(MPI),0)
DIST_MPI_SO =
else
MPI_PC := $(if $(filter 1,$(MPI)),mpi-c,$(MPI))
MPI_CFLAGS := $(shell pkg-config --cflags $(MPI_PC))
MPI_LIBS := $(shell pkg-config --libs $(MPI_PC))
DIST_MPI_SO = $(BUILD)/libpeft_dist_mpi.so
$(BUILD)/obj/runner/dist_mpi.o: CPPFLAGS += $(MPI_CFLAGS)
$(BUILD)/obj/runner/dist_mpi.o: CFLAGS += -fvisibility=hidden
$(BUILD)/obj/runner/dist_mpi.o: OPT = $(OPT_LIB)
$(BUILD)/obj/runner/dist.o: CPPFLAGS += -DPEFT_DIST_MPI
endif
RUNNER_OBJ = $(RUNNER_SRC:%.c=$(BUILD)/obj/%.o)
CONF_SRC   = $(wildcard sdk/conformance/*.c)
CONF_OBJ   = $(CONF_SRC:%.c=$(BUILD)/obj/%.o)
PLUGINS    = $(patsubst plugins/%/,%,$(sort $(dir $(wildcard plugins/*/*.c))))
PLUGIN_SO  = $(PLUGINS:%=$(BUILD)/plugins/%.so)
PLUGIN_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard plugins/*/*.c))
CLI_SRC    = $(wildcard cli/*.c)
CLI_OBJ    = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC   = $(wildcard tests/test_*.c)
TEST_BIN   = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_OBJ   = $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
TEST_UTIL  = $(wildcard tests/util/*.c)
TEST_UTIL_OBJ = $(TEST_UTIL:%.c=$(BUILD)/obj/%.o)
FIXPLUG_SRC = $(wildcard tests/plugins/*.c)
FIXPLUG_SO = $(FIXPLUG_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)
BENCH_SRC  = $(wildcard bench/*.c)
BENCH_BIN  = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# the optimisation level of each object (OPT_* above); set on every object, so that none takes
# the level of whatever target asked for it first
KERNEL_OBJ = $(filter $(BUILD)/obj/core/ops/% $(BUILD)/obj/core/tensor/%,$(CORE_OBJ)) $(TOK_OBJ) \
             $(filter-out %_config.o %_plugin.o,$(PLUGIN_OBJ))
$(KERNEL_OBJ): OPT = $(OPT_KERNEL)
$(filter-out $(KERNEL_OBJ),$(CORE_OBJ) $(PLUGIN_OBJ)) $(RUNNER_OBJ) $(CONF_OBJ) $(CLI_OBJ): OPT = $(OPT_LIB)
$(TEST_OBJ) $(TEST_UTIL_OBJ) $(FIXPLUG_SO): OPT = $(OPT_TEST)
$(TEST_BIN): private OPT = $(OPT_TEST)

# libpeft.so is a symlink to libpeft.so.$(SOVERSION), the file named by its SONAME; the number
# changes only when the ABI breaks (peft.h: PEFT_VERSION is the release, peft_libversion() the
# library's at run time)
SOVERSION  = 1
SONAME     = libpeft.so.$(SOVERSION)
# the same objects as libpeft.so, static: for the suites that test the core's insides (they
# include core/ headers, which libpeft.so does not export: README, "The C API")
CORE_LIB   = $(BUILD)/libpeft_core.a

# what an application links: libpeft, the tokenizers, the runner (static, part of the command);
# the conformance table (sdk/conformance/) is linked by the command and the test suites
TOK_LIB    = $(BUILD)/libpeft_tokenizers.a
RUNNER_LIB = $(BUILD)/libpeft_runner.a
CONF_LIB   = $(BUILD)/libpeft_conformance.a
APP_LIBS   = $(RUNNER_LIB) $(TOK_LIB) -L$(BUILD) -lpeft

# plugins are built and installed here; the loader also looks here
PLUGIN_BUILD_DIR  = $(abspath $(BUILD)/plugins)
PLUGIN_INSTALL_DIR = $(PREFIX)/lib/libpeft/plugins
CPPFLAGS += -DPEFT_PLUGIN_BUILD_DIR=\"$(PLUGIN_BUILD_DIR)\" -DPEFT_PLUGIN_INSTALL_DIR=\"$(PLUGIN_INSTALL_DIR)\"

.PHONY: all deps check asan valgrind bench run clean layers exports
all: deps-ok $(BUILD)/libpeft.so $(PLUGIN_SO) $(BUILD)/peft

# ---- dependencies -------------------------------------------------------------------------
DEB_PKGS = libopenblas-dev libyaml-dev libjansson-dev libpcre2-dev libutf8proc-dev xz-utils check pkg-config \
           libopenmpi-dev openmpi-bin
deps:
	@./scripts/deps.sh $(DEB_PKGS)
# a cheap check so that every build target installs what is missing first
.PHONY: deps-ok
deps-ok:
	@pkg-config --exists jansson yaml-0.1 check openblas libpcre2-8 libutf8proc 2>/dev/null && command -v xz >/dev/null || ./scripts/deps.sh $(DEB_PKGS)
	@[ "$(origin MPI)-$(MPI)" = "command line-0" ] || command -v mpirun >/dev/null || ./scripts/deps.sh $(DEB_PKGS)

# ---- core, tokenizers, runner, plugins, cli -----------------------------------------------
$(BUILD)/obj/%.o: %.c | deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# the core exports only what a public header declares with PEFT_API (peft/export.h)
$(CORE_OBJ): CFLAGS += -fvisibility=hidden
# the kernels' branch-free selects (clamps, NaN checks) vectorise only when comparisons may be
# assumed not to trap; results are unchanged (nothing reads the FP exception flags)
$(filter $(BUILD)/obj/core/ops/% $(BUILD)/obj/core/tensor/quant.o,$(CORE_OBJ)): CFLAGS += -fno-trapping-math
$(BUILD)/$(SONAME): $(CORE_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(DEPLIBS)

$(BUILD)/libpeft.so: $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(CORE_LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(TOK_LIB): $(TOK_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(RUNNER_LIB): $(RUNNER_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(CONF_LIB): $(CONF_OBJ)
	@rm -f $@
	ar rcs $@ $^

# a plugin sees only sdk/include, exports only its entry symbol, never links libpeft; one object
# per source (an edit recompiles that file only)
$(BUILD)/obj/plugins/%.o: plugins/%.c | deps-ok
	@mkdir -p $(dir $@)
	$(CC) -Isdk/include -I/usr/include/x86_64-linux-gnu/openblas-pthread $(CFLAGS) -fvisibility=hidden \
	  -MMD -MP -c $< -o $@
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(addprefix $(BUILD)/obj/,$$(addsuffix .o,$$(basename $$(wildcard plugins/$$*/*.c)))) | deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $^ -lopenblas -lm

$(BUILD)/peft: $(CLI_OBJ) $(CONF_LIB) $(RUNNER_LIB) $(TOK_LIB) $(BUILD)/libpeft.so
	$(CC) -o $@ $(CLI_OBJ) $(CONF_LIB) $(APP_LIBS) -Wl,-rpath,'$$ORIGIN' $(DEPLIBS)

# the MPI module (MPI, above), built with the command: make check runs test_dist's mpirun on
# build/peft. runner/dist.o is compiled for one MPI setting, so it is rebuilt when MPI changes.
ifneq ($(MPI),0)
$(DIST_MPI_SO): $(BUILD)/obj/runner/dist_mpi.o
	$(CC) -shared -o $@ $^ $(MPI_LIBS)
$(BUILD)/peft: | $(DIST_MPI_SO)
endif
MPI_STAMP = $(BUILD)/mpi.stamp
$(MPI_STAMP): mpi-stamp-force
	@mkdir -p $(dir $@)
	@echo '$(MPI)' | cmp -s - $@ || echo '$(MPI)' > $@
.PHONY: mpi-stamp-force
$(BUILD)/obj/runner/dist.o: $(MPI_STAMP)

# one-way dependencies between the layers (README, "Layout")
layers:
	@./scripts/check-layers.sh

# exported symbols == the PEFT_API declarations of the public headers, both ways
exports: $(BUILD)/libpeft.so
	@./scripts/check-exports.sh $(BUILD)/libpeft.so sdk/include

# ---- tests ----------------------------------------------------------------------------------
$(BUILD)/tests/plugins/%.so: tests/plugins/%.c tests/plugins/*.h sdk/include/peft/*.h
	@mkdir -p $(dir $@)
	$(CC) -Isdk/include $(CFLAGS) -fvisibility=hidden -shared -o $@ $<

# the test helpers are compiled once (their objects), not once per suite; a suite's own source
# is compiled apart from its link, so that a change in the core relinks the suites that need
# it and recompiles none
.SECONDARY: $(TEST_UTIL_OBJ) $(TEST_OBJ)
$(BUILD)/obj/tests/%.o: CPPFLAGS += -Itests
TEST_UTIL_LIB = $(BUILD)/libpeft_testutil.a
$(TEST_UTIL_LIB): $(TEST_UTIL_OBJ)
	@rm -f $@
	ar rcs $@ $^
# A suite links libpeft.so and so sees only the public API, as an application does; it is not
# relinked when the library is rebuilt (order-only: the dynamic link resolves at run time). A
# suite that tests the insides (it includes a core/ header, or the header of a helper that
# does) links the same objects statically (libpeft_core.a): libpeft.so does not export them.
TEST_CORE = -L$(BUILD) -lpeft
INTERNAL_UTIL_H = $(patsubst tests/util/%.c,%.h,$(shell grep -l '^\#include "core/' $(TEST_UTIL)))
empty :=
space := $(empty) $(empty)
INTERNAL_TESTS = $(patsubst tests/%.c,$(BUILD)/tests/%,$(shell grep -lE \
  '^\#include "(core/$(subst $(space),,$(foreach h,$(INTERNAL_UTIL_H),|$(h))))' $(TEST_SRC)))
$(INTERNAL_TESTS): TEST_CORE = $(CORE_LIB)
$(INTERNAL_TESTS): $(CORE_LIB)
# the suites link with LLVM's lld where it is installed (3x faster than ld.bfd on these links,
# which a core edit repeats for every internal suite; the code linked is the same)
TEST_LD ?= $(if $(shell command -v ld.lld 2>/dev/null),-fuse-ld=lld)
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_UTIL_LIB) $(CONF_LIB) $(RUNNER_LIB) $(TOK_LIB) | $(BUILD)/libpeft.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_LD) -o $@ $< $(TEST_UTIL_LIB) $(CONF_LIB) $(RUNNER_LIB) $(TOK_LIB) \
	  $(TEST_CORE) -Wl,-rpath,'$$ORIGIN/..' $(CHECK_LIBS) $(DEPLIBS)

# The PEFT reference fixtures live in the repository (tests/fixtures/, copied from the Python
# PEFT 0.13.2 runs): a plain clone runs every test.
FIXTURES ?= $(abspath tests/fixtures)
# Check kills a test after CK_DEFAULT_TIMEOUT s (4 by default): a hang guard, not a speed test,
# so it is generous (suites run in parallel, on machines that may be busy). OpenBLAS (and the
# kernels' pool, which follows it) runs one thread per suite: the suites run in parallel, one a
# core, and a second thread would only spin waiting for a core (~13% more CPU time, measured); the tests
# that are about threads set their counts themselves (test_kernels: the pool at 1-3 threads,
# test_runner: a batch on 1 vs 2 OpenBLAS threads, the conformance table's two threads). Those
# run beside other suites on few cores, where OpenBLAS's idle threads spinning 2^28 cycles
# (its default) before they sleep only burn CPU: OPENBLAS_THREAD_TIMEOUT=4 makes them sleep at
# once (test_runner 14.4 -> 9.4 CPU-s, the same results: only the waiting changes).
# The suites' scratch directories (tu_tmpdir, plugin-check's, mpirun's session files) go to
# TEST_TMPDIR: /dev/shm where it is a writable tmpfs, else $TMPDIR or /tmp. Every atomic save
# still fsyncs its file and directory, but on tmpfs that returns at once instead of waiting for
# the disk: the edit-test loop's suites spent seconds of wall time there (test_runner 1.95 ->
# 0.38 s alone, test_safetensors 0.89 -> 0.06 s, test_dist 6.4 -> 4.9 s). `make check
# TEST_TMPDIR=/tmp` runs them on disk.
# (tmpfs only with 1 GiB free: a container's /dev/shm is often 64 MB, too small for the suites)
SHM_TMPDIR := $(shell d=/dev/shm; [ -d $$d ] && [ -w $$d ] && \
  [ "$$(df -Pk $$d 2>/dev/null | awk 'NR == 2 { print $$4 }')" -ge 1048576 ] 2>/dev/null && \
  echo $$d || echo $${TMPDIR:-/tmp})
TEST_TMPDIR ?= $(SHM_TMPDIR)
# glibc.malloc.hugetlb=1: malloc asks for transparent huge pages (madvise) for what it maps, so
# the suites' large heaps (the tokenizers' maps, jansson's trees of the big tokenizer.json files,
# the models' buffers) take one page fault per 2 MB instead of per 4 kB (test_tokenizer: 156k
# -> 30k faults). The edit-test loop, runs alternated: 42.7 and 48.5 CPU-s with it, 46.6 and
# 50.7 without. Where THP is off it does nothing; the results are the same bytes.
TEST_ENV = PEFT_FIXTURES=$(FIXTURES) PEFT_BUILD=$(abspath $(BUILD)) CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-300} \
           OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} \
           OPENBLAS_THREAD_TIMEOUT=$${OPENBLAS_THREAD_TIMEOUT:-4} TMPDIR=$(TEST_TMPDIR) \
           GLIBC_TUNABLES=$${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
# Suites run in parallel (one log each under $(BUILD)/tests/logs), then one summary. The
# longest start first (measured on this 2-core machine: wall seconds, test_dist's mostly waiting
# for mpirun; the rest under 2.5 s each), so that no long one is left running alone at the end.
# They run CHECK_JOBS at a time, two more than the cores: a suite waits a good part of its time
# (fsync of the files it saves, the processes it starts, mpirun), and a third and fourth suite
# fill those waits (measured: the edit-test loop 46 -> 34 s wall on 2 cores, the same CPU time).
# The same make links the suites as they are needed: a suite that links libpeft.so runs while
# those that link the core statically are still being relinked after a core edit. (Its output
# goes to $(BUILD)/tests/make.log, shown when something in it failed.) libpeft_core.a is built
# before (a prerequisite of check): built inside, it held back the relink of every internal
# suite, and make then relinked test_memory, one of the longest, last of all (it ran alone at
# the end: ~1.5 s of wall).
# A long suite whose second part is tagged (TU_PART2, tests/testutil.h) runs as two processes
# side by side (logs NAME.log and NAME@part2.log).
PART2_SUITES = $(patsubst tests/%.c,%,$(shell grep -l 'tcase_set_tags.*TU_PART2' $(TEST_SRC)))
SLOW_LOGS = test_runner@part2 test_tokenizer test_dist test_plugin_check@part2 test_conformance \
            test_conformance@part2 test_tokenizer@part2 test_runner test_plugin_check \
            test_crash_safety test_memory
TEST_NAMES = $(TEST_BIN:$(BUILD)/tests/%=%)
ALL_LOGS = $(TEST_NAMES) $(PART2_SUITES:%=%@part2)
TEST_LOG = $(patsubst %,$(BUILD)/tests/logs/%.log,$(filter $(ALL_LOGS),$(SLOW_LOGS)) \
             $(filter-out $(SLOW_LOGS),$(ALL_LOGS)))
CHECK_JOBS ?= $(shell echo $$(($(NPROC) + 2)))
# The static checks' reports: $(BUILD)/tests/logs/lint-NAME.txt, each ending in "rc=N"; the
# summary prints them first and fails on any. layers and exports run in the same parallel make
# as the suites, after the longest ones have started; cppcheck runs before, beside the build
# ($(BUILD)/cppcheck/ok below: after an edit it analyses only what changed, ~0.1 s; from clean it
# starts at once, beside the compiler, whose serial links it fills: run among the suites
# instead, it made the whole check from clean 85 -> 100 s).
LINT_LOGS = $(patsubst %,$(BUILD)/tests/logs/lint-%.txt,cppcheck layers exports)
CHECK_GOALS = $(filter $(SLOW_LOGS:%=$(BUILD)/tests/logs/%.log),$(TEST_LOG)) $(LINT_LOGS) \
              $(filter-out $(SLOW_LOGS:%=$(BUILD)/tests/logs/%.log),$(TEST_LOG))
check: all $(CORE_LIB) $(TEST_OBJ) $(TEST_UTIL_LIB) $(FIXPLUG_SO) $(BUILD)/cppcheck/ok
	@rm -rf $(BUILD)/tests/logs
	@mkdir -p $(BUILD)/tests/logs
	@$(MAKE) --no-print-directory -j$(CHECK_JOBS) -k $(CHECK_GOALS) > $(BUILD)/tests/make.log 2>&1 || \
	  { grep -v 'jobserver' $(BUILD)/tests/make.log; echo "check: building a suite failed (above)"; }
	@./scripts/run-tests.sh --summary $(BUILD)/tests/logs $(TEST_BIN)

# (cppcheck's report is the one $(BUILD)/cppcheck/ok wrote before the suites; layers and exports
# run the commands of `make layers` and `make exports`, without a make each)
$(BUILD)/tests/logs/lint-cppcheck.txt:
	@cp $(BUILD)/cppcheck/report.txt $@ 2>/dev/null || printf 'cppcheck: no report\nrc=1\n' > $@
$(BUILD)/tests/logs/lint-layers.txt:
	@./scripts/check-layers.sh > $@ 2>&1; echo "rc=$$?" >> $@
$(BUILD)/tests/logs/lint-exports.txt: $(BUILD)/libpeft.so
	@./scripts/check-exports.sh $(BUILD)/libpeft.so sdk/include > $@ 2>&1; echo "rc=$$?" >> $@

$(BUILD)/tests/logs/%@part2.log: $(BUILD)/tests/%
	@$(TEST_ENV) CK_INCLUDE_TAGS=part2 ./scripts/run-tests.sh --one $< $*@part2 > $@ 2>&1 || true
$(BUILD)/tests/logs/%.log: $(BUILD)/tests/%
	@$(TEST_ENV) CK_EXCLUDE_TAGS=part2 ./scripts/run-tests.sh --one $< > $@ 2>&1 || true

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  DEPLIBS="$(DEPLIBS) -fsanitize=address,undefined" check

valgrind: all $(TEST_BIN) $(FIXPLUG_SO)
	@$(TEST_ENV) CK_FORK=no VALGRIND=1 ./scripts/run-tests.sh $(TEST_BIN)

# ---- benchmarks and the main job ----------------------------------------------------------
$(BUILD)/bench/%: bench/%.c $(BUILD)/libpeft.so $(RUNNER_LIB) $(TOK_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(APP_LIBS) -Wl,-rpath,'$$ORIGIN/..' $(DEPLIBS)

# (bench/gemm_ceiling last: the sgemm speed on both steps' shapes and the floor it puts under them)
bench: all $(BENCH_BIN)
	@./bench/run.sh $(abspath $(BUILD))
	@./bench/real_shape.sh $(abspath $(BUILD))
	@$(BUILD)/bench/gemm_ceiling

# the GEMMs of the GPT-2 step on OpenBLAS and on BLIS, 1 thread and every core
# (bench/blas_compare.sh; README, Speed: the BLAS is chosen by this measurement)
.PHONY: bench-blas
bench-blas:
	@./bench/blas_compare.sh $(abspath $(BUILD))

# the embedded-default batch on 1 process vs mpirun -n 2, and a data-parallel run (bench/mpi_batch.sh)
.PHONY: bench-mpi
bench-mpi: all
	@./bench/mpi_batch.sh $(abspath $(BUILD))

# The main job on its embedded default (examples/, docs/experiments.md): a small LLaMA that ships
# in examples/base-model (recipe: examples/recipe/make_base_model.c, regenerated by
# `make base-model`), the downstream data in examples/data (recipe: make_task_data.c,
# `make task-data`), and `peft run` comparing LoRA, LoHa, IA3, prefix and prompt tuning and a
# mixed LoRA + LoHa model side by side on it.
RUN_DIR = $(BUILD)/run
RECIPE_DEPS = examples/recipe/grammar.c examples/recipe/grammar.h
$(BUILD)/recipe/%: examples/recipe/%.c $(RECIPE_DEPS) $(BUILD)/libpeft.so $(RUNNER_LIB) $(TOK_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iexamples/recipe $(CFLAGS) -o $@ $< examples/recipe/grammar.c $(APP_LIBS) \
	  -Wl,-rpath,'$$ORIGIN/..' $(DEPLIBS)

run: all
	$(BUILD)/peft run examples/default.yaml --output $(RUN_DIR)/default

.PHONY: base-model task-data
base-model: all $(BUILD)/recipe/make_base_model
	$(BUILD)/recipe/make_base_model --out examples/base-model --work $(BUILD)/recipe/base-model.init \
	  --steps 2000 --seed 0

task-data: all $(BUILD)/recipe/make_task_data
	$(BUILD)/recipe/make_task_data --out-train examples/data/mirror-train.jsonl \
	  --out-eval examples/data/mirror-eval.jsonl --op mir --train 400 --eval 200 --seed 0

-include $(CORE_OBJ:.o=.d) $(PLUGIN_OBJ:.o=.d) $(CONF_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TOK_OBJ:.o=.d) $(RUNNER_OBJ:.o=.d) $(TEST_UTIL_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# more targets (install, sdk, ...) live in mk/*.mk, one concern per file
include $(wildcard mk/*.mk)

# static analysis: cppcheck with jansson's iteration macros explained (scripts/cppcheck/);
# part of `make check`, so CI runs it (clean = no output). Its build dir keeps each file's
# analysis: after an edit only the files whose code (or headers) changed are analysed again.
# -D__GNUC__: the configuration gcc builds. Without it cppcheck analyses every file three times
# (__GNUC__ unset, set, and with __clang__: the public headers' export macros test them), which
# differ only in an __attribute__ (three times the time for nothing: ~85 s of CPU from clean).
.PHONY: cppcheck
CPPCHECK_DIRS = core tokenizers runner cli plugins
CPPCHECK_RUN = { command -v cppcheck >/dev/null || ./scripts/deps.sh cppcheck; } && \
	mkdir -p $(BUILD)/cppcheck && \
	out=$$(cppcheck -q --std=c11 --enable=warning,portability --inline-suppr -I. -Isdk/include \
	  --cppcheck-build-dir=$(BUILD)/cppcheck -D__GNUC__ \
	  --library=scripts/cppcheck/jansson.cfg --suppress=missingIncludeSystem -j$(NPROC) \
	  $(CPPCHECK_FILES) 2>&1); \
	  if [ -n "$$out" ]; then echo "$$out"; echo "cppcheck: findings above"; exit 1; fi; \
	  echo "cppcheck: clean ($(CPPCHECK_WHAT))"
cppcheck: CPPCHECK_FILES = $(CPPCHECK_DIRS)
cppcheck: CPPCHECK_WHAT = $(CPPCHECK_DIRS)
cppcheck:
	@$(CPPCHECK_RUN)

# In `make check`, cppcheck analyses what changed since its last clean analysis: the sources
# whose object was rebuilt (an edit of the file or of a header it includes: the compiler's
# dependency files say which) or that changed themselves (one not compiled in this
# configuration, such as runner/dist_none.c), everything when the stamp is missing (a clean
# build, a fresh clone: CI) or its configuration changed. Its build dir alone made it preprocess
# all ~200 files to find that one had changed: 2.3 s of CPU in every edit-test loop; now ~0.1 s.
# Findings remove the stamp: the next check analyses every file again (from the build dir's
# cache, ~2.3 s), so they are reported until fixed, and a report never outlives its files.
# Without a stamp the objects are not waited for (every file is analysed anyway).
# `make cppcheck` analyses every file, as before.
CPPCHECK_SRC = $(wildcard $(CPPCHECK_DIRS:%=%/*.c) $(CPPCHECK_DIRS:%=%/*/*.c))
CPPCHECK_OBJ = $(filter $(CPPCHECK_SRC:%.c=$(BUILD)/obj/%.o),$(CORE_OBJ) $(TOK_OBJ) $(RUNNER_OBJ) $(CLI_OBJ) \
                 $(PLUGIN_OBJ) $(if $(DIST_MPI_SO),$(BUILD)/obj/runner/dist_mpi.o))
$(BUILD)/cppcheck/ok: CPPCHECK_FILES = $(if $(filter %.cfg,$?),$(CPPCHECK_SRC),\
  $(sort $(filter %.c,$?) $(patsubst $(BUILD)/obj/%.o,%.c,$(filter %.o,$?))))
$(BUILD)/cppcheck/ok: CPPCHECK_WHAT = $(words $(CPPCHECK_FILES)) of $(words $(CPPCHECK_SRC)) files: those changed since its last clean analysis
$(BUILD)/cppcheck/ok: $(CPPCHECK_SRC) $(if $(wildcard $(BUILD)/cppcheck/ok),$(CPPCHECK_OBJ)) \
                      scripts/cppcheck/jansson.cfg | deps-ok
	@mkdir -p $(BUILD)/cppcheck
	@( $(CPPCHECK_RUN) ) > $(BUILD)/cppcheck/report.txt 2>&1; rc=$$?; \
	  echo "rc=$$rc" >> $(BUILD)/cppcheck/report.txt; if [ $$rc -eq 0 ]; then touch $@; else rm -f $@; fi

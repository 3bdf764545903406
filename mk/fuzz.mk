# fuzz.mk — `make fuzz [FUZZ_TIME=60]`: every parser and loader under libFuzzer with
# AddressSanitizer + UBSan (Debian's clang): safetensors, config.json, adapter_config.json (with a
# forward and backward), inputs JSON, tokenizer.json (+ encode/decode), experiment YAML, JSONL
# data, the mixed-model manifest (fuzz/fuzz_*.c). Each runs FUZZ_TIME seconds from a seed corpus
# made from the fixtures (fuzz/seeds.sh) plus fuzz/regressions/<target>/ (inputs that found
# something, kept), with a dictionary of its keys (fuzz/<target>.dict). CI runs a short smoke.
# Inputs reach the loaders as in-memory files (memfd, fuzz/fuzz_util.h) and fixture bases stay
# loaded across executions (fuzz/fuzz_base.h): nothing is written to disk per execution.
# Long runs on a shared machine: `chrt -i 0 make fuzz FUZZ_TIME=3600` (idle CPU only).
FUZZ_CC    ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 60
FUZZ_TARGETS = safetensors config adapter inputs tokenizer yaml jsonl manifest
FUZZ_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# without MPI (runner/dist.c compiled without PEFT_DIST_MPI): the fuzzed loaders never start ranks
FUZZ_LIB_SRC = $(CORE_SRC) $(TOK_SRC) $(filter-out runner/dist_mpi.c,$(wildcard runner/*.c))
FUZZ_LIB_OBJ = $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BIN = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_MAIN_OBJ = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/obj/fuzz/fuzz_%.o)
.SECONDARY: $(FUZZ_MAIN_OBJ)

# The numeric kernels carry no coverage instrumentation (fuzz/coverage-ignore.txt says why) and
# are optimised as in the release build (-O3: vectorised; the sanitizers still check them)
$(FUZZ_BUILD)/obj/core/ops/%.o: FUZZ_OPT = -O3
$(FUZZ_BUILD)/obj/%.o: %.c fuzz/coverage-ignore.txt | deps-ok
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 -fPIC -pthread $(FUZZ_FLAGS) $(FUZZ_OPT) -fsanitize=fuzzer-no-link \
	  -fsanitize-coverage-ignorelist=fuzz/coverage-ignore.txt -DFUZZ_FIXTURES=\"$(abspath tests/fixtures)\" -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(DEPLIBS)

.PHONY: fuzz fuzz-build
fuzz-build: all $(FUZZ_BIN)
# each target for FUZZ_TIME seconds; a crash stops `make fuzz` with the input kept under
# $(FUZZ_BUILD)/artifacts/ (copy it to fuzz/regressions/<target>/ once fixed)
fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  rm -rf $(FUZZ_BUILD)/corpus/$$t; ./fuzz/seeds.sh $$t $(FUZZ_BUILD)/corpus/$$t; \
	  mkdir -p fuzz/regressions/$$t; \
	  echo "fuzz: $$t for $(FUZZ_TIME) s"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=20 \
	    -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1 -dict=fuzz/$$t.dict \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- $(FUZZ_BUILD)/corpus/$$t fuzz/regressions/$$t \
	    2> $(FUZZ_BUILD)/fuzz_$$t.log || { tail -40 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' $(FUZZ_BUILD)/fuzz_$$t.log | tail -1 | sed "s/^/fuzz: $$t: /"; \
	done

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_MAIN_OBJ:.o=.d)

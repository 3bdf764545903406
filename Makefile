# libpeft — build, test, install. `make` builds build/libpeft.so, one build/plugins/<name>.so per
# plugins/<name>/ and build/peft; `make check` runs every Check suite; `make deps` installs the
# Debian packages when missing.
CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -Wno-missing-field-initializers -fPIC -pthread
CPPFLAGS += -Icore -Isdk/include -I/usr/include/x86_64-linux-gnu/openblas-pthread
DEPLIBS  = -llapacke -lopenblas -ljansson -lyaml -ldl -lm -pthread
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

CORE_SRC   = $(wildcard core/*.c core/models/*.c)
CORE_OBJ   = $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
PLUGINS    = $(patsubst plugins/%/,%,$(sort $(dir $(wildcard plugins/*/*.c))))
PLUGIN_SO  = $(PLUGINS:%=$(BUILD)/plugins/%.so)
CLI_SRC    = $(wildcard cli/*.c)
CLI_OBJ    = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC   = $(wildcard tests/test_*.c)
TEST_BIN   = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL  = $(wildcard tests/util/*.c)
FIXPLUG_SRC = $(wildcard tests/plugins/*.c)
FIXPLUG_SO = $(FIXPLUG_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)
BENCH_SRC  = $(wildcard bench/*.c)
BENCH_BIN  = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# plugins are built and installed here; the loader also looks here
PLUGIN_BUILD_DIR  = $(abspath $(BUILD)/plugins)
PLUGIN_INSTALL_DIR = $(PREFIX)/lib/libpeft/plugins
CPPFLAGS += -DPEFT_PLUGIN_BUILD_DIR=\"$(PLUGIN_BUILD_DIR)\" -DPEFT_PLUGIN_INSTALL_DIR=\"$(PLUGIN_INSTALL_DIR)\"

.PHONY: all deps check asan valgrind bench run clean
all: deps-ok $(BUILD)/libpeft.so $(PLUGIN_SO) $(BUILD)/peft

# ---- dependencies -------------------------------------------------------------------------
DEB_PKGS = libopenblas-dev liblapacke-dev libyaml-dev libjansson-dev check pkg-config
deps:
	@./scripts/deps.sh $(DEB_PKGS)
# a cheap check so that every build target installs what is missing first
.PHONY: deps-ok
deps-ok:
	@pkg-config --exists jansson yaml-0.1 check openblas 2>/dev/null || ./scripts/deps.sh $(DEB_PKGS)

# ---- core, plugins, cli ---------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c | deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libpeft.so: $(CORE_OBJ)
	$(CC) -shared -o $@ $^ $(DEPLIBS)

# a plugin sees only sdk/include, exports only its entry symbol, never links libpeft
$(BUILD)/plugins/%.so: plugins/%/*.c sdk/include/peft/*.h | deps-ok
	@mkdir -p $(dir $@)
	$(CC) -Isdk/include -I/usr/include/x86_64-linux-gnu/openblas-pthread $(CFLAGS) -fvisibility=hidden -shared \
	  -o $@ $(filter %.c,$^) -lopenblas -lm

$(BUILD)/peft: $(CLI_OBJ) $(BUILD)/libpeft.so
	$(CC) -o $@ $(CLI_OBJ) -L$(BUILD) -lpeft -Wl,-rpath,'$$ORIGIN' $(DEPLIBS)

# ---- tests ----------------------------------------------------------------------------------
$(BUILD)/tests/plugins/%.so: tests/plugins/%.c tests/plugins/*.h sdk/include/peft/*.h
	@mkdir -p $(dir $@)
	$(CC) -Isdk/include $(CFLAGS) -fvisibility=hidden -shared -o $@ $<

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL) $(BUILD)/libpeft.so tests/*.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) -o $@ $< $(TEST_UTIL) -L$(BUILD) -lpeft \
	  -Wl,-rpath,'$$ORIGIN/..' $(CHECK_LIBS) $(DEPLIBS)

FIXTURES ?= $(abspath ../shared/fixtures)
check: all $(TEST_BIN) $(FIXPLUG_SO)
	@PEFT_FIXTURES=$(FIXTURES) PEFT_BUILD=$(abspath $(BUILD)) ./scripts/run-tests.sh $(TEST_BIN)

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  DEPLIBS="$(DEPLIBS) -fsanitize=address,undefined" check

valgrind: all $(TEST_BIN) $(FIXPLUG_SO)
	@PEFT_FIXTURES=$(FIXTURES) PEFT_BUILD=$(abspath $(BUILD)) CK_FORK=no VALGRIND=1 ./scripts/run-tests.sh $(TEST_BIN)

# ---- benchmarks and the main job ----------------------------------------------------------
$(BUILD)/bench/%: bench/%.c $(BUILD)/libpeft.so
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< -L$(BUILD) -lpeft -Wl,-rpath,'$$ORIGIN/..' $(DEPLIBS)

bench: all $(BENCH_BIN)
	@./bench/run.sh $(abspath $(BUILD))

# The main job on its embedded default: a small GPT-2 written by our own code (seeded), then
# a LoRA fine-tune on the toy counting data in examples/, saved in PEFT's format.
RUN_DIR = $(BUILD)/run
run: all
	@test -f $(RUN_DIR)/tiny-gpt2/model.safetensors || \
	  $(BUILD)/peft init-model --out $(RUN_DIR)/tiny-gpt2 --layers 2 --embd 64 --heads 4 \
	    --vocab 256 --positions 128 --seed 0
	$(BUILD)/peft train --model $(RUN_DIR)/tiny-gpt2 --data examples/data/count-tokens.txt \
	  --config examples/lora-count.json --steps 400 --batch 16 --seq 32 --lr 1e-2 \
	  --eval-every 100 --seed 0 --output $(RUN_DIR)/lora-adapter
	$(BUILD)/peft info --model $(RUN_DIR)/tiny-gpt2 --adapter $(RUN_DIR)/lora-adapter

-include $(CORE_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

clean:
	rm -rf $(BUILD) build-asan

# more targets (install, sdk, ...) live in mk/*.mk, one concern per file
include $(wildcard mk/*.mk)

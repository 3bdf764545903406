# sdk.mk — `make sdk-check`: installs into a staging dir (DESTDIR, so the build keeps its
# PREFIX), builds sdk/template, plugins/lokr and plugins/vera out of tree against it with pkg-config alone,
# runs `peft plugin-check` on every built-in plugin and on those, and loads the LoKr example by
# name (sdk/sdk-check.sh). The installed checker runs from outside the source tree on its
# built-in tiny models (7 plugins x 4 architectures, one valgrind run each): CI runs it next to `make check`, which does not.
.PHONY: sdk-check
# a fresh staging dir per run (several checkouts' runs may share a build dir), kept on failure
sdk-check: all
	@stage=$$(mktemp -d $(abspath $(BUILD))/sdk-check.XXXXXX) && \
	  $(MAKE) --no-print-directory -s install DESTDIR=$$stage/root >/dev/null && \
	  PEFT_BUILD_PLUGIN_DIR=$(PLUGIN_BUILD_DIR) ./sdk/sdk-check.sh $$stage $(PREFIX); \
	  rc=$$?; if [ $$rc -eq 0 ]; then rm -rf $$stage; else echo "sdk-check: kept $$stage"; fi; \
	  exit $$rc


# the template, built in tree for tests/test_plugin_check.c (sdk-check builds it out of tree)
$(BUILD)/sdk/chanscale.so: sdk/template/chanscale.c sdk/include/peft/*.h
	@mkdir -p $(dir $@)
	$(CC) -Isdk/include $(CFLAGS) -fvisibility=hidden -shared -o $@ $< -lm

check valgrind: $(BUILD)/sdk/chanscale.so

# install.mk — `make install [PREFIX=/usr/local] [DESTDIR=]`: the SDK and application headers
# to $(PREFIX)/include/peft/, build/libpeft.so.1 (its SONAME) and the libpeft.so symlink to
# $(PREFIX)/lib, the built-in plugins to
# $(PREFIX)/lib/libpeft/plugins (the loader's compiled-in install dir), the peft command to
# $(PREFIX)/bin, the SDK's make fragment to $(PREFIX)/share/libpeft/plugin.mk, and
# $(PREFIX)/lib/pkgconfig/libpeft.pc, so that a plugin builds out of tree with
#     cc -shared -fPIC $(pkg-config --cflags libpeft) my.c -o my.so
# (or a Makefile that includes $(pkg-config --variable=pluginmk libpeft), sdk/plugin.mk)
# and an application with $(pkg-config --cflags --libs libpeft).
INSTALL      ?= install
LIBDIR        = $(PREFIX)/lib
INCLUDEDIR    = $(PREFIX)/include
BINDIR        = $(PREFIX)/bin
PKGCONFIGDIR  = $(LIBDIR)/pkgconfig
DATADIR       = $(PREFIX)/share/libpeft
PEFT_VERSION := $(shell sed -n 's/^\#define PEFT_VERSION "\(.*\)"/\1/p' sdk/include/peft/peft.h)

# every public header: sdk/include/peft/ is the one public header set, installed as is
SDK_HEADERS = $(wildcard sdk/include/peft/*.h)

# The loader's install dir is compiled in from PREFIX: a stamp that changes only when PREFIX
# does makes `make install PREFIX=...` rebuild the registry for that prefix.
PREFIX_STAMP = $(BUILD)/prefix.stamp
$(PREFIX_STAMP): peft-prefix-force
	@mkdir -p $(dir $@)
	@echo '$(PLUGIN_INSTALL_DIR)' | cmp -s - $@ || echo '$(PLUGIN_INSTALL_DIR)' > $@
.PHONY: peft-prefix-force
$(BUILD)/obj/core/tuner/registry.o: $(PREFIX_STAMP)

# The installed libpeft.so: the same objects but a plugin registry compiled without the build
# dir, so that it searches only $PEFT_PLUGIN_PATH and the install locations (never a build
# tree that may be deleted, or lie in a shared /tmp, where anyone could plant lora.so).
INSTALL_REGISTRY_OBJ = $(BUILD)/install/obj/core/tuner/registry.o
$(INSTALL_REGISTRY_OBJ): core/tuner/registry.c $(PREFIX_STAMP) | deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -DPEFT_PLUGIN_BUILD_DIR=%,$(CPPFLAGS)) $(CFLAGS) -fvisibility=hidden -MMD -MP -c $< -o $@
# its header dependencies (plugin.h's ABI minor is compiled in)
-include $(INSTALL_REGISTRY_OBJ:.o=.d)
$(BUILD)/install/$(SONAME): $(filter-out $(BUILD)/obj/core/tuner/registry.o,$(CORE_OBJ)) $(INSTALL_REGISTRY_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(DEPLIBS)

# the installed peft finds libpeft.so in ../lib (the build's copy looks next to itself)
$(BUILD)/install/peft: $(CLI_OBJ) $(CONF_LIB) $(RUNNER_LIB) $(TOK_LIB) $(BUILD)/libpeft.so
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(CLI_OBJ) $(CONF_LIB) $(APP_LIBS) -Wl,-rpath,'$$ORIGIN/../lib' $(DEPLIBS)

$(BUILD)/install/libpeft.pc: sdk/include/peft/peft.h mk/install.mk $(PREFIX_STAMP)
	@mkdir -p $(dir $@)
	@printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'exec_prefix=$${prefix}' \
	  'libdir=$${exec_prefix}/lib' \
	  'includedir=$${prefix}/include' \
	  'plugindir=$${libdir}/libpeft/plugins' \
	  'pluginmk=$${prefix}/share/libpeft/plugin.mk' \
	  '' \
	  'Name: libpeft' \
	  'Description: parameter-efficient fine-tuning in C (Hugging Face PEFT semantics and formats) and its tuner plugin SDK' \
	  'Version: $(PEFT_VERSION)' \
	  'Requires.private: jansson' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -lpeft' > $@

.PHONY: install
install: all $(BUILD)/install/peft $(BUILD)/install/$(SONAME) $(BUILD)/install/libpeft.pc
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR)/peft $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(PLUGIN_INSTALL_DIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)
	$(INSTALL) -m 644 $(SDK_HEADERS) $(DESTDIR)$(INCLUDEDIR)/peft/
	$(INSTALL) -m 644 sdk/plugin.mk $(DESTDIR)$(DATADIR)/plugin.mk
	$(INSTALL) -m 755 $(BUILD)/install/$(SONAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libpeft.so
	$(INSTALL) -m 644 $(TOK_LIB) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 755 $(PLUGIN_SO) $(DESTDIR)$(PLUGIN_INSTALL_DIR)/
	$(INSTALL) -m 755 $(BUILD)/install/peft $(DESTDIR)$(BINDIR)/peft
	$(if $(DIST_MPI_SO),$(INSTALL) -m 755 $(DIST_MPI_SO) $(DESTDIR)$(LIBDIR)/libpeft/)
	$(INSTALL) -m 644 $(BUILD)/install/libpeft.pc $(DESTDIR)$(PKGCONFIGDIR)/libpeft.pc

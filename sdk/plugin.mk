# plugin.mk — the build of one tuner plugin out of tree, written once for every plugin Makefile
# (sdk/template and the shipped plugins that double as worked examples, plugins/lokr and
# plugins/vera). `make install` puts it at $(PREFIX)/share/libpeft/plugin.mk and names it in
# libpeft.pc (variable pluginmk), so a plugin folder needs its sources, its headers and a
# Makefile of four lines:
#     PLUGIN = myplugin
#     SRC    = my_config.c my_plugin.c
#     HDR    = my.h
#     include $(shell pkg-config --variable=pluginmk libpeft)
# Targets:
#   make        -> $(PLUGIN).so, built against the installed <peft/...> headers (pkg-config)
#   make check  -> peft plugin-check ./$(PLUGIN).so (the installed peft, or PEFT=<path>)
#   make clean
# A plugin sees only the public headers, links nothing of libpeft and exports one symbol
# (-fvisibility=hidden; peft_plugin_init carries PEFT_PLUGIN_EXPORT). PLUGIN_STD picks the C
# dialect (gnu11 unless the Makefile says otherwise).
ifndef PLUGIN
$(error plugin.mk: set PLUGIN (the .so's name) and SRC (its sources) before including it)
endif
CC         ?= cc
PKG_CONFIG ?= pkg-config
PEFT       ?= peft
CFLAGS     ?= -O2 -g
PLUGIN_STD ?= gnu11
CFLAGS     += -std=$(PLUGIN_STD) -Wall -Wextra -fPIC -fvisibility=hidden
PEFT_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpeft)

$(PLUGIN).so: $(SRC) $(HDR)
	@$(PKG_CONFIG) --exists libpeft || { echo "pkg-config cannot find libpeft: set PKG_CONFIG_PATH to <prefix>/lib/pkgconfig"; exit 1; }
	$(CC) -shared $(CFLAGS) $(PEFT_CFLAGS) $(SRC) -o $@ -lm

check: $(PLUGIN).so
	$(PEFT) plugin-check ./$(PLUGIN).so

clean:
	rm -f $(PLUGIN).so

.PHONY: check clean

/* no_entry.c — fixture shared object that exports no peft_plugin_init symbol. */
#include "peft/plugin.h"

PEFT_PLUGIN_EXPORT int peft_plugin_version(void); /* declared: -Wmissing-prototypes */
PEFT_PLUGIN_EXPORT int peft_plugin_version(void) { return PEFT_ABI_MAJOR; }

/* plugin_entry.h — a loaded tuner plugin's entry point, to call it again with another host
 * table (an older ABI, a table with an entry missing) than the one it was loaded with. */
#ifndef PEFT_TEST_PLUGIN_ENTRY_H
#define PEFT_TEST_PLUGIN_ENTRY_H

#include "peft/plugin.h"

/* Loads plugin <name> through the registry (its vtable in *vt) and returns its entry point
 * (PEFT_PLUGIN_ENTRY of the same shared object); *so is a dlopen handle on that object the
 * caller dlcloses. Fails the test when any step fails. */
peft_plugin_init_fn tu_plugin_entry(const char *name, const peft_tuner_vtable **vt, void **so);

#endif

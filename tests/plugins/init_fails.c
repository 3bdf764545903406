/* init_fails.c — fixture plugin whose init returns NULL with its own reason. */
#define FIX_NAME "initfails"
#define FIX_INIT_FAIL "cannot start: missing licence file"
#include "fixture.h"

/* missing_fn.c — fixture plugin whose vtable lacks the required 'forward' entry. */
#define FIX_NAME "missingfn"
#define FIX_FORWARD NULL
#include "fixture.h"

/* bad_major.c — fixture plugin declaring ABI major 2: the host (major 1) must refuse it. */
#define FIX_NAME "badmajor"
#define FIX_MAJOR 2
#include "fixture.h"

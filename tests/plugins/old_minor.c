/* old_minor.c — good_scale.c as a plugin built against ABI 1.3 ("testscale13"): it predates
 * the embedding and norm site kinds (ABI 1.4), so the host must never hand it one. */
#define TS_NAME "testscale13"
#define TS_TYPE "TESTSCALE13"
#define TS_ABI_MINOR 3
#include "good_scale.c"

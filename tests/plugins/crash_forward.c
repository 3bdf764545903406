/* crash_forward.c — fixture plugin that dies with SIGSEGV in forward: plugin-check must report
 * the checks that run a forward as failed with the signal and still run the others. */
#define CHK_NAME "crashfwd"
#define CHK_PEFT_TYPE "CRASHFWD"
#define CHK_CRASH_FORWARD
#include "check_base.h"

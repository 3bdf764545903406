/* crash_backward.c — fixture plugin whose forward is sound but whose backward closure (recorded
 * with host->tape_push) dies with SIGSEGV: the crash report must name the plugin, "the backward
 * of its forward entry", the adapter and the module (tests/test_reliability.c). */
#define CHK_NAME "crashbwd"
#define CHK_PEFT_TYPE "CRASHBWD"
#define CHK_CRASH_BACKWARD
#include "check_base.h"

/* crash_core_op.c — fixture plugin whose forward calls a core op through the host table
 * (host->sgemm) with NULL matrices: the crash report must name the plugin, the core op and the
 * entry that called it (tests/test_reliability.c). */
#define CHK_NAME "crashop"
#define CHK_PEFT_TYPE "CRASHOP"
#define CHK_CRASH_CORE_OP
#include "check_base.h"

/* crash_op_backward.c — fixture plugin whose forward records a core op (host->op_mul_lastdim)
 * and then breaks that op's input: the op's backward dies with SIGSEGV, and the crash report
 * must name the plugin, "the backward of core op 'op_mul_lastdim' called from its forward
 * entry", the adapter and the module (tests/test_reliability.c). */
#define CHK_NAME "crashopbwd"
#define CHK_PEFT_TYPE "CRASHOPBWD"
#define CHK_CRASH_OP_BACKWARD
#include "check_base.h"

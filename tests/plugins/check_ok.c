/* check_ok.c — the plugin-check fixtures' base tuner without a fault: passes every check. */
#define CHK_NAME "checkok"
#define CHK_PEFT_TYPE "CHECKOK"
#include "check_base.h"

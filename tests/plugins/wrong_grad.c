/* wrong_grad.c — fixture plugin whose backward gives twice the true gradient: plugin-check's
 * finite-difference check must fail it (and nothing else). */
#define CHK_NAME "wronggrad"
#define CHK_PEFT_TYPE "WRONGGRAD"
#define CHK_WRONG_GRAD
#include "check_base.h"

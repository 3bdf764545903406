/* dup_b.c — valid fixture plugin also named "dupname": refused once dup_a is registered. */
#define FIX_NAME "dupname"
#define FIX_PEFT_TYPE "DUP_B"
#include "fixture.h"

/* dup_a.c — valid fixture plugin named "dupname" (the first of two files claiming it). */
#define FIX_NAME "dupname"
#define FIX_PEFT_TYPE "DUP_A"
#include "fixture.h"

/* short_vtable.c — fixture plugin whose vtable claims struct_size 16: below the minimum. */
#define FIX_NAME "shortvtable"
#define FIX_SIZE 16
#include "fixture.h"

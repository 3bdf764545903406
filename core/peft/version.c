/* version.c — the library's own version, for programs that check at run time that the libpeft
 * they load is the one their headers describe (peft.h, PEFT_VERSION). */
#include "peft/peft.h"

const char *peft_libversion(void) { return PEFT_VERSION; }

int peft_libversion_number(void) { return PEFT_VERSION_NUMBER; }

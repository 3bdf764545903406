/* errbuf.c — peft_errbuf: a message into a caller's error buffer (errbuf.h). */
#include <stdarg.h>
#include <stdio.h>
#include "core/util/errbuf.h"

void peft_errbuf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* warn.h — the process-wide warning sink. The library never prints on its own: warnings (from
 * the core or from plugins through host->warn) go to the handler set here. Without a handler
 * set, warnings are dropped; the `peft` command prints them to stderr. */
#ifndef PEFT_WARN_H
#define PEFT_WARN_H

#include "peft/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* fn == NULL restores the default handler. ud is passed back to fn untouched. Thread-safe. */
PEFT_API void peft_set_warning_handler(void (*fn)(const char *msg, void *ud), void *ud);
/* sends msg to the current handler (NULL msg is ignored) */
PEFT_API void peft_warn(const char *msg);

#ifdef __cplusplus
}
#endif
#endif

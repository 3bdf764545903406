/* errbuf.h (core) — the one way the core's lower layers (model loading, storage, the host's
 * file reader, the model initialiser) write a message into a caller's error buffer, before
 * the caller puts it on the context (peft_set_error). Core-internal, not exported. */
#ifndef PEFT_CORE_ERRBUF_H
#define PEFT_CORE_ERRBUF_H

#include <stddef.h>

/* printf fmt into err (errlen bytes, always NUL-terminated, truncated when longer); nothing
 * when err is NULL or errlen 0 */
void peft_errbuf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

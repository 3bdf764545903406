/* alloc_guard.c — the per-thread allocation bound armed while a plugin creates an adapter
 * (see alloc_guard.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/tuner/alloc_guard.h"

static __thread peft_alloc_guard *cur;

void peft_alloc_guard_begin(peft_alloc_guard *g, size_t max_one, size_t max_total)
{
    memset(g, 0, sizeof *g);
    g->max_one = max_one;
    g->max_total = max_total;
    cur = g;
}

void peft_alloc_guard_end(void) { cur = NULL; }

int peft_alloc_guard_take(size_t bytes, int ndim, const int64_t *shape)
{
    peft_alloc_guard *g = cur;
    if (!g) return 0;
    if (bytes <= g->max_one && bytes <= g->max_total - (g->live < g->max_total ? g->live : g->max_total)) {
        g->live += bytes;
        return 0;
    }
    if (!g->tripped) {
        g->tripped = 1;
        g->want = bytes;
        g->ndim = ndim > 0 && ndim <= PEFT_MAX_DIMS ? ndim : 0;
        for (int i = 0; i < g->ndim; i++) g->shape[i] = shape[i];
    }
    return -1;
}

void peft_alloc_guard_give(size_t bytes)
{
    peft_alloc_guard *g = cur;
    if (g) g->live = bytes < g->live ? g->live - bytes : 0;
}

const char *peft_alloc_guard_what(const peft_alloc_guard *g, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    if (g->ndim > 0) {
        o += (size_t)snprintf(buf, len, "a [");
        for (int i = 0; i < g->ndim && o < len; i++)
            o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? ", " : "", g->shape[i]);
        if (o < len) o += (size_t)snprintf(buf + o, len - o, "] tensor (");
    }
    if (o >= len) return buf;
    if (g->want == SIZE_MAX) snprintf(buf + o, len - o, "more bytes than size_t holds%s", g->ndim ? ")" : "");
    else snprintf(buf + o, len - o, "%.3g GB%s", (double)g->want / 1e9, g->ndim ? ")" : "");
    return buf;
}

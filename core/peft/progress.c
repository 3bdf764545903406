/* progress.c — progress of long tasks (merging a large model layer by layer): the library never
 * prints, so it hands each step to the handler set on the context; the `peft` command draws a
 * bar from it. */
#include "core/peft/internal.h"

void peft_set_progress_handler(peft_ctx *ctx, peft_progress_fn fn, void *ud)
{
    if (!ctx) return;
    ctx->progress = fn;
    ctx->progress_ud = fn ? ud : NULL;
}

void peft_progress(peft_ctx *ctx, const char *task, int64_t done, int64_t total, const char *item)
{
    if (ctx && ctx->progress) ctx->progress(ctx->progress_ud, task, done, total, item ? item : "");
}

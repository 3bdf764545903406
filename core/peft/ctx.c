/* ctx.c — the library context: the last error message and the seeded RNG. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/peft/internal.h"

peft_ctx *peft_ctx_new(uint64_t seed)
{
    peft_ctx *c = calloc(1, sizeof *c);
    if (c) peft_rng_seed(&c->rng, seed);
    return c;
}

void peft_ctx_free(peft_ctx *ctx) { free(ctx); }

const char *peft_errmsg(const peft_ctx *ctx) { return ctx ? ctx->err : "no context"; }

int peft_errcode(const peft_ctx *ctx) { return ctx ? ctx->code : PEFT_EINVAL; }

void peft_clear_error(peft_ctx *ctx)
{
    if (!ctx) return;
    ctx->code = PEFT_OK;
    ctx->err[0] = 0;
}

void peft_set_tokenizer(peft_ctx *ctx, peft_tokenize_fn fn, void *ud)
{
    if (!ctx) return;
    ctx->tokenize = fn;
    ctx->tokenize_ud = ud;
}

peft_rng *peft_ctx_rng(peft_ctx *ctx) { return &ctx->rng; }

int peft_set_error(peft_ctx *ctx, int code, const char *fmt, ...)
{
    if (!ctx) return code;
    ctx->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
    return code;
}

/* generate.c — the decoding loop of generation (see generate.h): the model's special tokens,
 * the per-step inputs (left-padded positions, the growing mask, the decoder start token), one
 * forward per step with the KV cache (or a full forward when use_cache is 0), the token choice
 * and the EOS bookkeeping of transformers 4.44's _sample. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/generate.h"
#include "core/model/kv_cache.h"
#include "core/peft/internal.h"
#include "peft/warn.h"

void peft_gen_config_init(peft_gen_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_new_tokens = 20;
    c->temperature = 1.0;
    c->top_k = 50;
    c->top_p = 1.0;
    c->n_eos = PEFT_GEN_FROM_MODEL;
    c->pad_token_id = PEFT_GEN_FROM_MODEL;
    c->use_cache = 1;
}

void peft_gen_output_free(peft_gen_output *o)
{
    if (!o) return;
    free(o->tokens);
    free(o->lengths);
    o->tokens = NULL;
    o->lengths = NULL;
}

/* what runs a forward: a PEFT model (all active adapters, or one per row) or a bare base */
typedef struct gen_run {
    peft_ctx *ctx;
    peft_model *m; /* NULL: bare base */
    peft_base_model *base;
    const char *const *rows;
} gen_run;

static int run_forward(gen_run *r, peft_graph *g, const peft_model_inputs *in,
                       peft_model_outputs *out)
{
    if (r->m)
        return r->rows ? peft_model_forward_rows(r->m, g, in, r->rows, out)
                       : peft_model_forward(r->m, g, in, out);
    char err[1024] = "";
    memset(out, 0, sizeof *out);
    int rc = r->base->arch->forward(r->base, g, in, out, err, sizeof err);
    return peft_forward_result(r->ctx, g, rc, err);
}

/* ---- the model's special tokens ------------------------------------------------------------- */

/* the special-token source HF uses: generation_config.json when the directory has one (loaded
 * into *gen, owned by the caller), else config.json (*gen NULL) */
static int load_generation_config(gen_run *r, json_t **gen, const char **src, char *path,
                                  size_t plen)
{
    *gen = NULL;
    snprintf(path, plen, "%s/generation_config.json", r->base->dir ? r->base->dir : ".");
    FILE *f = r->base->dir ? fopen(path, "r") : NULL;
    if (!f) {
        snprintf(path, plen, "%s/config.json", r->base->dir ? r->base->dir : ".");
        *src = path;
        return PEFT_OK;
    }
    fclose(f);
    json_error_t je;
    if (!(*gen = json_load_file(path, 0, &je)) || !json_is_object(*gen)) {
        json_decref(*gen);
        *gen = NULL;
        return peft_set_error(r->ctx, PEFT_EFORMAT, "%s: not a JSON object (line %d: %s)", path,
                              je.line, je.text);
    }
    *src = path;
    return PEFT_OK;
}

/* ids[0..max) from field key (an integer, a list of integers, null or absent): the count, or -1
 * with the ctx error naming the file and field */
static int read_ids(gen_run *r, const json_t *obj, const char *src, const char *key,
                    int32_t *ids, int max)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    json_t *one[1] = {v};
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if ((int)n > max) {
        peft_set_error(r->ctx, PEFT_EINVAL, "%s: %s lists %zu ids, at most %d are supported", src,
                       key, n, max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : one[0];
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
            peft_set_error(r->ctx, PEFT_EINVAL, "%s: %s must be a token id (a non-negative integer) "
                           "or a list of them", src, key);
            return -1;
        }
        ids[i] = (int32_t)json_integer_value(e);
    }
    return (int)n;
}

typedef struct gen_tokens {
    int n_eos;
    int32_t eos[PEFT_GEN_MAX_EOS];
    int32_t pad;   /* -1: none needed */
    int32_t start; /* decoder start (encoder-decoders), -1 otherwise */
} gen_tokens;

static int special_tokens(gen_run *r, const peft_gen_config *cfg, gen_tokens *t)
{
    char path[4096];
    const char *src;
    json_t *gen;
    int rc = load_generation_config(r, &gen, &src, path, sizeof path);
    if (rc) return rc;
    const json_t *obj = gen ? gen : r->base->config;
    rc = PEFT_EINVAL;
    t->n_eos = cfg->n_eos;
    if (cfg->n_eos == PEFT_GEN_FROM_MODEL) {
        if ((t->n_eos = read_ids(r, obj, src, "eos_token_id", t->eos, PEFT_GEN_MAX_EOS)) < 0) goto out;
    } else {
        memcpy(t->eos, cfg->eos_token_id, sizeof t->eos);
    }
    int32_t pad = -1;
    if (cfg->pad_token_id == PEFT_GEN_FROM_MODEL) {
        int32_t ids[1];
        int n = read_ids(r, obj, src, "pad_token_id", ids, 1);
        if (n < 0) goto out;
        if (n) pad = ids[0];
    } else {
        pad = cfg->pad_token_id;
    }
    /* HF: "Setting pad_token_id to eos_token_id for open-end generation" */
    t->pad = pad >= 0 ? pad : t->n_eos > 0 ? t->eos[0] : -1;
    t->start = -1;
    if (r->base->is_encoder_decoder) {
        int32_t ids[1];
        int n = read_ids(r, obj, src, "decoder_start_token_id", ids, 1);
        if (n == 0) n = read_ids(r, obj, src, "bos_token_id", ids, 1); /* HF's fallback */
        if (n < 0) goto out;
        if (n == 0) {
            peft_set_error(r->ctx, PEFT_EINVAL, "%s: decoder_start_token_id or bos_token_id has to be "
                           "defined for encoder-decoder generation", src);
            goto out;
        }
        t->start = ids[0];
    }
    rc = PEFT_OK;
out:
    json_decref(gen);
    return rc;
}

/* ---- checks ---------------------------------------------------------------------------------- */

static int check_config(gen_run *r, const peft_model_inputs *in, const peft_gen_config *c)
{
    if (!in || !in->input_ids || in->B <= 0 || in->T <= 0)
        return peft_set_error(r->ctx, PEFT_EINVAL, "generate: input_ids with B > 0 rows and T > 0 "
                              "tokens are needed");
    if (!c) return peft_set_error(r->ctx, PEFT_EINVAL, "generate: no generation config");
    if (c->max_new_tokens < 1 || c->max_new_tokens > INT32_MAX)
        return peft_set_error(r->ctx, PEFT_EINVAL, "generate: max_new_tokens must be >= 1 (got %lld)",
                              (long long)c->max_new_tokens);
    if (c->do_sample) {
        if (!(c->temperature > 0) || !isfinite(c->temperature))
            return peft_set_error(r->ctx, PEFT_EINVAL, "generate: temperature has to be a strictly "
                                  "positive float (got %g)", c->temperature);
        if (c->top_k < 0)
            return peft_set_error(r->ctx, PEFT_EINVAL, "generate: top_k has to be >= 0 (0 = off), "
                                  "got %lld", (long long)c->top_k);
        if (!(c->top_p >= 0 && c->top_p <= 1))
            return peft_set_error(r->ctx, PEFT_EINVAL, "generate: top_p has to be a float in [0, 1] "
                                  "(got %g)", c->top_p);
    }
    if (c->n_eos != PEFT_GEN_FROM_MODEL && (c->n_eos < 0 || c->n_eos > PEFT_GEN_MAX_EOS))
        return peft_set_error(r->ctx, PEFT_EINVAL, "generate: n_eos must be %d (from the model) or "
                              "0..%d (got %d)", PEFT_GEN_FROM_MODEL, PEFT_GEN_MAX_EOS, c->n_eos);
    for (int i = 0; c->n_eos != PEFT_GEN_FROM_MODEL && i < c->n_eos; i++)
        if (c->eos_token_id[i] < 0)
            return peft_set_error(r->ctx, PEFT_EINVAL, "generate: eos_token_id %d is negative",
                                  c->eos_token_id[i]);
    if (c->pad_token_id != PEFT_GEN_FROM_MODEL && c->pad_token_id < -1)
        return peft_set_error(r->ctx, PEFT_EINVAL, "generate: pad_token_id %d is neither an id nor "
                              "-1 (none)", c->pad_token_id);
    const char *task = peft_model_task(r->base);
    if (strcmp(task, "CAUSAL_LM") && strcmp(task, "SEQ_2_SEQ_LM"))
        return peft_set_error(r->ctx, PEFT_EINVAL, "generate: %s (%s) does not generate text; "
                              "generation needs a CAUSAL_LM or SEQ_2_SEQ_LM model",
                              peft_model_class(r->base), task);
    return PEFT_OK;
}

/* learned absolute positions (GPT-2's config.json n_positions) bound the whole sequence: the
 * prompt (+ virtual tokens) and every generated token but the last pass through the model */
static int check_positions(gen_run *r, int64_t T, int64_t n_virtual, int64_t N)
{
    json_t *np = json_object_get(r->base->config, "n_positions");
    if (r->base->is_encoder_decoder || !np || !json_is_integer(np)) return PEFT_OK;
    const int64_t P = (int64_t)json_integer_value(np), need = n_virtual + T + N - 1;
    if (need <= P) return PEFT_OK;
    char virt[64] = "";
    if (n_virtual) snprintf(virt, sizeof virt, " + %lld virtual tokens", (long long)n_virtual);
    return peft_set_error(r->ctx, PEFT_EINVAL, "generate: a prompt of %lld tokens%s and "
                          "max_new_tokens %lld need %lld positions, but %s/config.json has "
                          "n_positions %lld (at most max_new_tokens %lld)", (long long)T, virt,
                          (long long)N, (long long)need, r->base->dir ? r->base->dir : ".",
                          (long long)P, (long long)(P - n_virtual - T + 1));
}

/* ---- the loop --------------------------------------------------------------------------------- */

typedef struct gen_state {
    int64_t B, T, N, V;
    int ed, cache_on, prompt_on;
    int32_t *seq;    /* decoder-only (B, T + N): prompt then generated; enc-dec (B, 1 + N) */
    int32_t *mask;   /* decoder-only (B, T + N) key mask: the prompt's, then ones */
    int32_t *pos;    /* decoder-only (B, T + N) HF positions: cumsum(mask) - 1, masked 1 */
    int32_t *step;   /* (B) last tokens, fed to the next cached step */
    int32_t *spos;   /* (B) their positions */
    int32_t *first;  /* (B) the first generated token's position: ones in the prompt mask */
    int32_t *start;  /* (B) the decoder start token */
    float *scratch;  /* (V) one row's scores */
    int32_t *alive;  /* (B) 1 until the row has generated an EOS token */
} gen_state;

static void free_state(gen_state *s)
{
    free(s->seq);
    free(s->mask);
    free(s->pos);
    free(s->step);
    free(s->spos);
    free(s->first);
    free(s->start);
    free(s->scratch);
    free(s->alive);
}

/* the first n columns of (B, W) rows, contiguous in the step arena; NULL on OOM */
static int32_t *rows(peft_graph *g, const int32_t *src, int64_t B, int64_t W, int64_t n)
{
    peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, (int64_t[]){B, n});
    if (!t) return NULL;
    int32_t *d = t->data;
    for (int64_t b = 0; b < B; b++) memcpy(d + b * n, src + b * W, (size_t)n * sizeof *d);
    return d;
}

/* the model inputs of step k (k == 0: the prompt). 0, or -1 on arena OOM */
static int step_inputs(peft_graph *g, const gen_state *s, const peft_model_inputs *prompt,
                       int64_t k, peft_model_inputs *in)
{
    const int64_t B = s->B, T = s->T, W = s->ed ? 1 + s->N : T + s->N;
    memset(in, 0, sizeof *in);
    in->B = B;
    in->task_ids = prompt->task_ids; /* every step, as PEFT's prepare_inputs_for_generation */
    if (s->ed) { /* the encoder input every step (run once with a cache), then the decoder's */
        in->T = T;
        in->input_ids = prompt->input_ids;
        in->attention_mask = prompt->attention_mask;
        if (s->cache_on) {
            in->Td = 1;
            in->decoder_input_ids = k == 0 ? s->start : s->step;
            return 0;
        }
        in->Td = 1 + k;
        return (in->decoder_input_ids = rows(g, s->seq, B, W, 1 + k)) ? 0 : -1;
    }
    if (s->cache_on && k > 0) { /* one new token per row; its mask entry is 1 */
        in->T = 1;
        in->input_ids = s->step;
        in->position_ids = s->prompt_on ? NULL : s->spos;
        return 0;
    }
    /* the prompt (the cache's first step), or everything so far (no cache) */
    in->T = T + k;
    in->input_ids = rows(g, s->seq, B, W, T + k);
    in->attention_mask = rows(g, s->mask, B, W, T + k);
    if (!s->prompt_on) in->position_ids = rows(g, s->pos, B, W, T + k);
    return in->input_ids && in->attention_mask && (s->prompt_on || in->position_ids) ? 0 : -1;
}

/* (B, W) strided rows -> contiguous (B, n) in place (the first n columns of each row) */
static void pack_rows(int32_t *a, int64_t B, int64_t W, int64_t n)
{
    for (int64_t b = 1; b < B; b++) memmove(a + b * n, a + b * W, (size_t)n * sizeof *a);
}

/* HF's _prepare_attention_mask_for_generation: without an attention mask, when the pad token
 * occurs in input_ids and is not an EOS token, the mask is input_ids != pad. (B, T) malloc'd, or
 * NULL when not inferred (*oom set on failure). */
static int32_t *infer_mask(const peft_model_inputs *in, const gen_tokens *tk, int *oom)
{
    *oom = 0;
    if (in->attention_mask || tk->pad < 0) return NULL;
    for (int e = 0; e < tk->n_eos; e++)
        if (tk->eos[e] == tk->pad) return NULL;
    const int64_t n = in->B * in->T;
    int found = 0;
    for (int64_t i = 0; i < n && !found; i++) found = in->input_ids[i] == tk->pad;
    if (!found) return NULL;
    int32_t *m = malloc((size_t)n * sizeof *m);
    if (!m) { *oom = 1; return NULL; }
    for (int64_t i = 0; i < n; i++) m[i] = in->input_ids[i] != tk->pad;
    return m;
}

/* the state's rows and the output's buffers for B rows of W = T + N (decoder-only) or 1 + N
 * (T5's decoder), the KV cache when use_cache and the step graph. PEFT_OK or PEFT_ENOMEM. */
static int alloc_state(gen_run *r, gen_state *s, peft_gen_output *out, peft_kv_cache **cache,
                       peft_graph **g)
{
    const int64_t B = s->B, N = s->N, W = s->ed ? 1 + N : s->T + N;
    out->tokens = calloc((size_t)(B * N), sizeof *out->tokens);
    out->lengths = calloc((size_t)B, sizeof *out->lengths);
    s->alive = calloc((size_t)B, sizeof *s->alive);
    s->seq = calloc((size_t)(B * W), sizeof *s->seq);
    s->step = calloc((size_t)B, sizeof *s->step);
    s->spos = calloc((size_t)B, sizeof *s->spos);
    s->first = calloc((size_t)B, sizeof *s->first);
    s->start = calloc((size_t)B, sizeof *s->start);
    if (!s->ed) {
        s->mask = calloc((size_t)(B * W), sizeof *s->mask);
        s->pos = calloc((size_t)(B * W), sizeof *s->pos);
    }
    if (!out->tokens || !out->lengths || !s->alive || !s->seq || !s->step || !s->spos || !s->first ||
        !s->start ||
        (!s->ed && (!s->mask || !s->pos)) || (s->cache_on && !(*cache = peft_kv_cache_new(B))) ||
        !(*g = peft_graph_new(peft_ctx_rng(r->ctx))))
        return peft_set_error(r->ctx, PEFT_ENOMEM, "generate: out of memory (B=%lld, T=%lld, "
                              "max_new_tokens %lld)", (long long)B, (long long)s->T, (long long)N);
    return PEFT_OK;
}

/* every row alive with its decoder start token; decoder-only: the prompt's ids, its key mask
 * and HF's positions (cumsum(mask) - 1, masked 1), and the first generated token's position.
 * Warns on right padding, as transformers does. */
static void fill_prompt(gen_state *s, const peft_model_inputs *prompt, const gen_tokens *tk)
{
    const int64_t B = s->B, T = s->T, W = s->ed ? 1 + s->N : T + s->N;
    int right_padded = 0;
    for (int64_t b = 0; b < B; b++) {
        s->alive[b] = 1;
        s->start[b] = tk->start;
        if (s->ed) {
            s->seq[b * W] = tk->start;
            continue;
        }
        int32_t ones = 0;
        for (int64_t t = 0; t < T; t++) {
            const int32_t mk = prompt->attention_mask ? (prompt->attention_mask[b * T + t] != 0) : 1;
            s->seq[b * W + t] = prompt->input_ids[b * T + t];
            s->mask[b * W + t] = mk;
            ones += mk;
            s->pos[b * W + t] = mk ? ones - 1 : 1;
        }
        right_padded |= prompt->attention_mask && prompt->attention_mask[b * T + T - 1] == 0;
        s->first[b] = ones; /* the first generated token's position */
    }
    if (right_padded)
        peft_warn("a decoder-only architecture is being used, but right-padding was detected: "
                  "for correct generation results, use left-padding");
}

/* new token k of every row from the last position of the logits lg (B, Tq, V): greedy or
 * sampled (one draw per row and step, always), a finished row's pad; the EOS bookkeeping, and
 * the token fed back at the row's next position. *n_alive: rows still going. PEFT_OK, or an
 * error (logits of the wrong shape, out of memory). */
static int choose_tokens(gen_run *r, gen_state *s, const peft_gen_config *cfg, const gen_tokens *tk,
                         const peft_tensor *lg, peft_rng *rng, peft_gen_output *out, int64_t k,
                         int *n_alive)
{
    const int64_t B = s->B, T = s->T, N = s->N, W = s->ed ? 1 + N : T + N;
    if (!lg || lg->ndim != 3 || lg->shape[0] != B || lg->shape[1] < 1 ||
        lg->dtype != PEFT_DTYPE_F32)
        return peft_set_error(r->ctx, PEFT_EINVAL, "generate: the model returned no (B, T, V) "
                              "logits (%s)", peft_model_class(r->base));
    const int64_t Tq = lg->shape[1], V = lg->shape[2];
    if (!s->scratch && !(s->scratch = malloc((size_t)V * sizeof(float))))
        return peft_set_error(r->ctx, PEFT_ENOMEM, "generate: out of memory");
    s->V = V;
    *n_alive = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *row = peft_f32(lg) + (b * Tq + Tq - 1) * V;
        int32_t tok;
        const double u = peft_rng_uniform(rng); /* one draw per row and step, always */
        if (!s->alive[b]) {
            tok = tk->pad;
        } else if (!cfg->do_sample) {
            tok = peft_gen_argmax(row, V);
        } else {
            memcpy(s->scratch, row, (size_t)V * sizeof(float));
            if (peft_gen_warp(s->scratch, V, cfg->temperature, cfg->top_k, cfg->top_p))
                return peft_set_error(r->ctx, PEFT_ENOMEM, "generate: out of memory");
            tok = peft_gen_sample(s->scratch, V, u);
        }
        out->tokens[b * N + k] = tok;
        if (s->alive[b]) {
            out->lengths[b] = k + 1;
            for (int e = 0; e < tk->n_eos; e++)
                if (tok == tk->eos[e]) s->alive[b] = 0;
        }
        *n_alive += s->alive[b];
        /* the token fed back (a finished row's pad may lie outside the vocabulary: its
         * outputs are never used, any id does) at the next position of its row */
        const int32_t feed = tok >= 0 && tok < V ? tok : 0;
        s->step[b] = feed;
        if (s->ed) {
            s->seq[b * W + 1 + k] = feed;
        } else {
            s->spos[b] = s->first[b] + (int32_t)k;
            s->seq[b * W + T + k] = feed;
            s->mask[b * W + T + k] = 1;
            s->pos[b * W + T + k] = s->spos[b];
        }
    }
    return PEFT_OK;
}

static int generate(gen_run *r, const peft_model_inputs *user, const peft_gen_config *cfg,
                    peft_gen_output *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_config(r, user, cfg);
    if (rc) return rc;
    if (r->m && (rc = peft_prompt_apply(r->m))) return rc;
    gen_tokens tk;
    if ((rc = special_tokens(r, cfg, &tk))) return rc;
    peft_model_inputs pin = {0}; /* the prompt: ids, mask and the rows' tasks only */
    pin.B = user->B;
    pin.T = user->T;
    pin.input_ids = user->input_ids;
    pin.attention_mask = user->attention_mask;
    pin.task_ids = user->task_ids;
    int oom;
    int32_t *inferred = infer_mask(&pin, &tk, &oom);
    if (oom) return peft_set_error(r->ctx, PEFT_ENOMEM, "generate: out of memory");
    if (inferred) pin.attention_mask = inferred;
    const peft_model_inputs *prompt = &pin;
    const peft_prompt_hooks *ph = r->base->prompt;
    gen_state s = {0};
    s.B = prompt->B;
    s.T = prompt->T;
    s.N = cfg->max_new_tokens;
    s.ed = r->base->is_encoder_decoder;
    s.cache_on = cfg->use_cache != 0;
    s.prompt_on = ph && (ph->virtual_tokens || ph->layer_prefix) && ph->n_virtual > 0;
    const int64_t B = s.B, T = s.T, N = s.N;
    if (!s.ed && (rc = check_positions(r, T, s.prompt_on ? ph->n_virtual : 0, N))) {
        free(inferred);
        return rc;
    }

    peft_kv_cache *cache = NULL;
    peft_graph *g = NULL;
    peft_rng rng;
    peft_rng_seed(&rng, cfg->seed);
    if ((rc = alloc_state(r, &s, out, &cache, &g))) goto done;
    fill_prompt(&s, prompt, &tk);

    const int training = r->m ? r->m->training : 0;
    if (r->m) peft_model_train(r->m, 0);
    for (int64_t k = 0; k < N; k++) {
        peft_graph_reset(g);
        g->recording = 0;
        peft_model_inputs in;
        if (step_inputs(g, &s, prompt, k, &in)) {
            rc = peft_set_error(r->ctx, PEFT_ENOMEM, "generate: out of memory in the step arena");
            break;
        }
        in.cache = cache;
        peft_model_outputs o;
        if ((rc = run_forward(r, g, &in, &o))) {
            char msg[2048];
            snprintf(msg, sizeof msg, "%s", peft_errmsg(r->ctx));
            peft_set_error(r->ctx, rc, "generate: new token %lld of %lld: %s", (long long)(k + 1),
                           (long long)N, msg);
            break;
        }
        int n_alive = 0;
        if ((rc = choose_tokens(r, &s, cfg, &tk, o.logits, &rng, out, k, &n_alive))) break;
        out->n_new = k + 1;
        if (!n_alive) break;
    }
    if (r->m) peft_model_train(r->m, training);
    if (rc) goto done;
    pack_rows(out->tokens, B, N, out->n_new);
    out->B = B;
    out->pad_token_id = tk.pad;
    out->decoder_start_token_id = tk.start;
done:
    if (rc) peft_gen_output_free(out);
    peft_graph_free(g);
    peft_kv_cache_free(cache);
    free(inferred);
    free_state(&s);
    return rc;
}

int peft_generate(peft_model *m, const peft_model_inputs *in, const peft_gen_config *cfg,
                  const char *const *row_adapters, peft_gen_output *out)
{
    if (!m || !out) return PEFT_EINVAL;
    gen_run r = {peft_model_ctx(m), m, peft_get_base_model(m), row_adapters};
    return generate(&r, in, cfg, out);
}

int peft_generate_base(peft_ctx *ctx, peft_base_model *base, const peft_model_inputs *in,
                       const peft_gen_config *cfg, peft_gen_output *out)
{
    if (!ctx || !base || !out) return PEFT_EINVAL;
    gen_run r = {ctx, NULL, base, NULL};
    return generate(&r, in, cfg, out);
}

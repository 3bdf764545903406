/* gpt2_init.c — writes a randomly initialised Hugging Face GPT-2 directory (config.json +
 * model.safetensors), as `GPT2LMHeadModel(GPT2Config(...)).save_pretrained(dir)` would, so that
 * benchmarks and tests can run a full-size GPT-2 without downloading one.
 *
 * Initialisation follows transformers' GPT2PreTrainedModel._init_weights:
 *   Conv1D / Embedding weights ~ N(0, initializer_range = 0.02), biases 0;
 *   LayerNorm weight 1, bias 0;
 *   every "c_proj.weight" (attn and mlp) ~ N(0, 0.02 / sqrt(2 * n_layer)).
 * Draws come from libpeft's seeded RNG (peft_rng_normal) in the order tensors are listed below,
 * so a seed fixes every byte. The lm_head is tied to transformer.wte.weight and, as HF does for
 * tied weights, not written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util/fs.h"
#include "core/io/safetensors.h"
#include "peft/graph.h"
#include "peft/peft.h"
#include "peft/model_init.h"
#include "peft/safetensors.h"
#include "peft/util.h"
#include "core/util/errbuf.h"

#define INIT_RANGE 0.02
#define MAX_NAME 128

/* mkdir -p */

/* config.json as GPT2Config(...).save_pretrained writes it (keys sorted, indent 2) */
static int write_config(const char *dir, const peft_gpt2_shape *s, char *err, size_t errlen)
{
    char path[4096], text[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) {
        peft_errbuf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    int special = 50256 < s->vocab_size ? 50256 : s->vocab_size - 1;
    snprintf(text, sizeof text,
             "{\n"
             "  \"activation_function\": \"gelu_new\",\n"
             "  \"architectures\": [\n"
             "    \"GPT2LMHeadModel\"\n"
             "  ],\n"
             "  \"attn_pdrop\": 0.1,\n"
             "  \"bos_token_id\": %d,\n"
             "  \"embd_pdrop\": 0.1,\n"
             "  \"eos_token_id\": %d,\n"
             "  \"initializer_range\": 0.02,\n"
             "  \"layer_norm_epsilon\": 1e-05,\n"
             "  \"model_type\": \"gpt2\",\n"
             "  \"n_embd\": %d,\n"
             "  \"n_head\": %d,\n"
             "  \"n_inner\": null,\n"
             "  \"n_layer\": %d,\n"
             "  \"n_positions\": %d,\n"
             "  \"reorder_and_upcast_attn\": false,\n"
             "  \"resid_pdrop\": 0.1,\n"
             "  \"scale_attn_by_inverse_layer_idx\": false,\n"
             "  \"scale_attn_weights\": true,\n"
             "  \"summary_activation\": null,\n"
             "  \"summary_first_dropout\": 0.1,\n"
             "  \"summary_proj_to_labels\": true,\n"
             "  \"summary_type\": \"cls_index\",\n"
             "  \"summary_use_proj\": true,\n"
             "  \"tie_word_embeddings\": true,\n"
             "  \"torch_dtype\": \"float32\",\n"
             "  \"transformers_version\": \"4.44.0\",\n"
             "  \"use_cache\": true,\n"
             "  \"vocab_size\": %d\n"
             "}\n",
             special, special, s->n_embd, s->n_head, s->n_layer, s->n_positions, s->vocab_size);
    return peft_write_file_atomic_buf(path, text, strlen(text), err, errlen);
}

/* one tensor to write: name, shape, and how to fill it */
enum { FILL_NORMAL, FILL_ZERO, FILL_ONE };

typedef struct init_tensor {
    char name[MAX_NAME];
    int ndim;
    int64_t shape[2];
    int fill;
    double std;
    float *data;
} init_tensor;

static void add(init_tensor *ts, size_t *n, const char *name, int ndim, int64_t d0, int64_t d1,
                int fill, double std)
{
    init_tensor *t = &ts[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->fill = fill;
    t->std = std;
    t->data = NULL;
}

/* PEFT_OK, or PEFT_EINVAL with err when the shape cannot make a GPT-2 */
static int check_shape(const char *dir, const peft_gpt2_shape *s, char *err, size_t errlen)
{
    if (!dir || !*dir || !s) {
        peft_errbuf(err, errlen, "peft_write_random_gpt2: dir and shape are required");
        return PEFT_EINVAL;
    }
    if (s->n_layer <= 0 || s->n_embd <= 0 || s->n_head <= 0 || s->vocab_size <= 0 ||
        s->n_positions <= 0) {
        peft_errbuf(err, errlen, "%s: GPT-2 shape must be positive (n_layer %d, n_embd %d, n_head %d, "
                    "vocab_size %d, n_positions %d)", dir, s->n_layer, s->n_embd, s->n_head,
                    s->vocab_size, s->n_positions);
        return PEFT_EINVAL;
    }
    if (s->n_embd % s->n_head) {
        peft_errbuf(err, errlen, "%s: n_embd (%d) is not a multiple of n_head (%d)", dir, s->n_embd,
                    s->n_head);
        return PEFT_EINVAL;
    }
    return PEFT_OK;
}

/* GPT2LMHeadModel's tensors in HF's order, with _init_weights' fills (c_proj: std / sqrt(2 L));
 * ts has room for 4 + 12 L. The count. */
static size_t list_tensors(const peft_gpt2_shape *s, init_tensor *ts)
{
    const int64_t C = s->n_embd, V = s->vocab_size, P = s->n_positions;
    const double proj_std = INIT_RANGE / sqrt(2.0 * s->n_layer);
    size_t n = 0;
    char nm[MAX_NAME];
    add(ts, &n, "transformer.wte.weight", 2, V, C, FILL_NORMAL, INIT_RANGE); /* (V, C) */
    add(ts, &n, "transformer.wpe.weight", 2, P, C, FILL_NORMAL, INIT_RANGE); /* (P, C) */
    for (int i = 0; i < s->n_layer; i++) {
#define L(suffix, nd, d0, d1, fill, std)                                        \
        do {                                                                    \
            snprintf(nm, sizeof nm, "transformer.h.%d.%s", i, suffix);          \
            add(ts, &n, nm, nd, d0, d1, fill, std);                             \
        } while (0)
        L("ln_1.weight", 1, C, 1, FILL_ONE, 0);                       /* (C) */
        L("ln_1.bias", 1, C, 1, FILL_ZERO, 0);                        /* (C) */
        L("attn.c_attn.weight", 2, C, 3 * C, FILL_NORMAL, INIT_RANGE); /* (C, 3C) Conv1D: in, out */
        L("attn.c_attn.bias", 1, 3 * C, 1, FILL_ZERO, 0);             /* (3C) */
        L("attn.c_proj.weight", 2, C, C, FILL_NORMAL, proj_std);      /* (C, C) */
        L("attn.c_proj.bias", 1, C, 1, FILL_ZERO, 0);                 /* (C) */
        L("ln_2.weight", 1, C, 1, FILL_ONE, 0);                       /* (C) */
        L("ln_2.bias", 1, C, 1, FILL_ZERO, 0);                        /* (C) */
        L("mlp.c_fc.weight", 2, C, 4 * C, FILL_NORMAL, INIT_RANGE);   /* (C, 4C) */
        L("mlp.c_fc.bias", 1, 4 * C, 1, FILL_ZERO, 0);                /* (4C) */
        L("mlp.c_proj.weight", 2, 4 * C, C, FILL_NORMAL, proj_std);   /* (4C, C) */
        L("mlp.c_proj.bias", 1, C, 1, FILL_ZERO, 0);                  /* (C) */
#undef L
    }
    add(ts, &n, "transformer.ln_f.weight", 1, C, 1, FILL_ONE, 0);  /* (C) */
    add(ts, &n, "transformer.ln_f.bias", 1, C, 1, FILL_ZERO, 0);   /* (C) */
    return n;
}

/* the n tensors' data, filled in order from one generator seeded with seed, and outs pointing
 * at them. 0 or -1 with err (out of memory) */
static int fill_tensors(const char *dir, init_tensor *ts, size_t n, peft_st_out *outs, uint64_t seed,
                        char *err, size_t errlen)
{
    peft_rng rng;
    peft_rng_seed(&rng, seed);
    for (size_t k = 0; k < n; k++) {
        init_tensor *t = &ts[k];
        int64_t numel = t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
        t->data = malloc((size_t)numel * sizeof(float));
        if (!t->data) {
            peft_errbuf(err, errlen, "%s: out of memory for %s (%lld floats)", dir, t->name,
                        (long long)numel);
            return -1;
        }
        for (int64_t j = 0; j < numel; j++)
            t->data[j] = t->fill == FILL_NORMAL ? (float)(peft_rng_normal(&rng) * t->std)
                         : t->fill == FILL_ONE  ? 1.0f
                                                : 0.0f;
        outs[k].name = t->name;
        outs[k].dtype = PEFT_DTYPE_F32;
        outs[k].ndim = t->ndim;
        outs[k].shape = t->shape;
        outs[k].data = t->data;
    }
    return 0;
}

/* the writer with the message in err: PEFT_OK or a PEFT_E* code */
static int write_random_gpt2(const char *dir, const peft_gpt2_shape *s, uint64_t seed, char *err,
                             size_t errlen)
{
    int rc = check_shape(dir, s, err, errlen);
    if (rc) return rc;
    if (peft_mkdirs_buf(dir, err, errlen)) return PEFT_EIO;

    size_t cap = 4 + 12 * (size_t)s->n_layer, n = 0; /* wte, wpe, 12 per block, ln_f */
    init_tensor *ts = calloc(cap, sizeof *ts);
    peft_st_out *outs = calloc(cap, sizeof *outs);
    rc = PEFT_ENOMEM;
    if (!ts || !outs) {
        peft_errbuf(err, errlen, "%s: out of memory", dir);
        goto done;
    }
    n = list_tensors(s, ts);
    if (fill_tensors(dir, ts, n, outs, seed, err, errlen)) goto done;

    char path[4096];
    if (snprintf(path, sizeof path, "%s/model.safetensors", dir) >= (int)sizeof path) {
        peft_errbuf(err, errlen, "%s: path too long", dir);
        rc = PEFT_EINVAL;
        goto done;
    }
    static const char *const meta[] = {"format", "pt", NULL};
    if ((rc = peft_st_write_buf(path, outs, n, meta, err, errlen))) goto done;
    /* config last: a directory with a config.json always has its weights */
    if (write_config(dir, s, err, errlen)) {
        rc = PEFT_EIO;
        goto done;
    }
    rc = PEFT_OK;

done:
    if (ts)
        for (size_t k = 0; k < n; k++) free(ts[k].data);
    free(ts);
    free(outs);
    return rc;
}

int peft_write_random_gpt2(peft_ctx *ctx, const char *dir, const peft_gpt2_shape *shape,
                           uint64_t seed)
{
    char err[1024] = "";
    int rc = write_random_gpt2(dir, shape, seed, err, sizeof err);
    return rc ? peft_set_error(ctx, rc, "%s", err) : PEFT_OK;
}

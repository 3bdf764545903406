/* storage.c — how a base model's weights are held: in their file's dtype (the default: wrapped
 * zero-copy from the mmap), converted at load (transformers' torch_dtype), quantized at load
 * (bitsandbytes' quantization_config: int8 per-row absmax, NF4 with or without double
 * quantization) for every linear layer but the output head, or drawn in memory (benchmarks,
 * `peft init-model`) with transformers' init rules. */
#define _GNU_SOURCE
#include "core/model/storage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>
#include "peft/dtype.h"
#include "peft/quant.h"
#include "core/util/errbuf.h"

int32_t peft_load_dtype_from_name(const char *name)
{
    if (!name || !*name || !strcasecmp(name, "auto") || !strcasecmp(name, "as-stored"))
        return PEFT_LOAD_DTYPE_AS_STORED;
    int32_t d = peft_dtype_from_name(name);
    return d >= 0 ? d : -2;
}

int32_t peft_load_quant_from_name(const char *name)
{
    if (!name || !strcasecmp(name, "none")) return 0;
    if (!strcasecmp(name, "int8") || !strcasecmp(name, "8bit")) return PEFT_DTYPE_INT8;
    if (!strcasecmp(name, "nf4") || !strcasecmp(name, "4bit")) return PEFT_DTYPE_NF4;
    if (!strcasecmp(name, "nf4-nodq")) return PEFT_DTYPE_NF4_F32;
    return -2;
}

void peft_storage_release_mapped(const void *p, size_t bytes)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || !p) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t e = ((uintptr_t)p + bytes) & ~((uintptr_t)pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

/* bitsandbytes' quantization_config: {"quant_method": "bitsandbytes", "load_in_4bit": true,
 * "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true, ...} -> m->quant_dtype */
static int read_quant_config(peft_base_model *m, const json_t *q, char *err, size_t errlen)
{
    const char *where = "config.json quantization_config";
    if (!json_is_object(q)) {
        peft_errbuf(err, errlen, "%s/%s: must be an object", m->dir, where);
        return -1;
    }
    json_t *meth = json_object_get(q, "quant_method");
    if (meth && !json_is_null(meth) &&
        (!json_is_string(meth) || strcmp(json_string_value(meth), "bitsandbytes"))) {
        peft_errbuf(err, errlen, "%s/%s: quant_method %s is unsupported (only \"bitsandbytes\": int8 or "
                    "nf4 quantized at load)", m->dir, where,
                    json_is_string(meth) ? json_string_value(meth) : "(not a string)");
        return -1;
    }
    int l4 = json_is_true(json_object_get(q, "load_in_4bit"));
    int l8 = json_is_true(json_object_get(q, "load_in_8bit"));
    if (l4 && l8) {
        peft_errbuf(err, errlen, "%s/%s: load_in_4bit and load_in_8bit are both true", m->dir, where);
        return -1;
    }
    if (l8) m->quant_dtype = PEFT_DTYPE_INT8;
    if (l4) {
        json_t *qt = json_object_get(q, "bnb_4bit_quant_type");
        const char *t = json_is_string(qt) ? json_string_value(qt) : "fp4"; /* bnb's default */
        if (strcmp(t, "nf4")) {
            peft_errbuf(err, errlen, "%s/%s: bnb_4bit_quant_type \"%s\" is unsupported (only \"nf4\")",
                        m->dir, where, t);
            return -1;
        }
        m->quant_dtype = json_is_true(json_object_get(q, "bnb_4bit_use_double_quant"))
                             ? PEFT_DTYPE_NF4 : PEFT_DTYPE_NF4_F32;
    }
    json_t *skip = json_object_get(q, "llm_int8_skip_modules");
    if (skip && !json_is_null(skip)) {
        if (!json_is_array(skip)) {
            peft_errbuf(err, errlen, "%s/%s: llm_int8_skip_modules must be a list of module names",
                        m->dir, where);
            return -1;
        }
        size_t i;
        json_t *v;
        json_array_foreach(skip, i, v) if (!json_is_string(v)) {
            peft_errbuf(err, errlen, "%s/%s: llm_int8_skip_modules[%zu] must be a string", m->dir,
                        where, i);
            return -1;
        }
        m->quant_skip = json_incref(skip);
    }
    return 0;
}

int peft_storage_setup(peft_base_model *m, const peft_load_options *o, char *err, size_t errlen)
{
    m->load_dtype = PEFT_LOAD_DTYPE_AS_STORED;
    m->quant_dtype = 0;
    const char *td = o ? o->torch_dtype : NULL;
    int32_t d = peft_load_dtype_from_name(td);
    if (d == -2) {
        peft_errbuf(err, errlen, "torch_dtype \"%s\" is unknown (auto, float32, bfloat16, float16)", td);
        return PEFT_EINVAL;
    }
    m->load_dtype = d;
    json_t *q = json_object_get(m->config, "quantization_config");
    if (o && o->quant) {
        int32_t qd = peft_load_quant_from_name(o->quant);
        if (qd == -2) {
            peft_errbuf(err, errlen, "quantization \"%s\" is unknown (none, int8, nf4, nf4-nodq)", o->quant);
            return PEFT_EINVAL;
        }
        m->quant_dtype = qd;
    } else if (q && !json_is_null(q)) {
        if (read_quant_config(m, q, err, errlen)) return PEFT_EFORMAT;
    }
    if (o && o->random_init) {
        m->random_init = o->random_init;
        peft_rng_seed(&m->init_rng, o->seed);
        if (peft_config_real_buf(m, "initializer_range", 1, 0.02, &m->init_std, err, errlen))
            return PEFT_EFORMAT;
    }
    return 0;
}

int peft_storage_take(peft_base_model *m, const char *name, peft_tensor *t, char *err, size_t errlen)
{
    const int32_t want = m->load_dtype;
    if (want == PEFT_LOAD_DTYPE_AS_STORED || want == t->dtype || t->dtype == PEFT_DTYPE_I32)
        return 0;
    size_t es = peft_dtype_size(want);
    void *nd = malloc((size_t)(t->numel ? t->numel : 1) * es);
    float *f = want == PEFT_DTYPE_F32 ? nd : malloc((size_t)(t->numel ? t->numel : 1) * sizeof *f);
    if (!nd || !f) {
        free(nd);
        if (f != nd) free(f);
        peft_errbuf(err, errlen, "%s: out of memory converting '%s' to %s", m->dir, name,
                    peft_dtype_label(want));
        return -1;
    }
    peft_tensor_to_f32(t, f);
    if (f != nd) {
        peft_convert_from_f32(want, f, nd, t->numel);
        free(f);
    }
    if (!(t->flags & PEFT_T_OWNS_DATA))
        peft_storage_release_mapped(t->data, (size_t)t->numel * peft_dtype_size(t->dtype));
    else
        free(t->data);
    t->data = nd;
    t->dtype = want;
    t->flags |= PEFT_T_OWNS_DATA;
    return 0;
}

/* ---- drawn in memory ------------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static double cfg_num(const peft_base_model *m, const char *key, double def)
{
    json_t *v = json_object_get(m->config, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* the standard deviation transformers' _init_weights gives this weight; 0 = ones/zeros rule */
static double init_std(const peft_base_model *m, const char *name, int ndim)
{
    const char *mt = json_string_value(json_object_get(m->config, "model_type"));
    if (ndim < 2) return 0.0;
    if (mt && !strcmp(mt, "t5")) { /* T5PreTrainedModel._init_weights, initializer_factor */
        const double f = cfg_num(m, "initializer_factor", 1.0), dm = cfg_num(m, "d_model", 512),
                     kv = cfg_num(m, "d_kv", 64), H = cfg_num(m, "num_heads", 8),
                     ff = cfg_num(m, "d_ff", 2048);
        if (ends_with(name, ".q.weight")) return f / sqrt(dm * kv);
        if (ends_with(name, ".k.weight") || ends_with(name, ".v.weight")) return f / sqrt(dm);
        if (ends_with(name, ".o.weight")) return f / sqrt(H * kv);
        if (strstr(name, "relative_attention_bias")) return f / sqrt(dm);
        if (ends_with(name, ".wo.weight")) return f / sqrt(ff);
        if (strstr(name, ".wi")) return f / sqrt(dm);
        return f; /* shared, lm_head */
    }
    if (mt && !strcmp(mt, "gpt2") && ends_with(name, "c_proj.weight")) /* scaled residuals */
        return m->init_std / sqrt(2.0 * cfg_num(m, "n_layer", 12));
    return m->init_std;
}

/* approximately N(0, 1) and fast (sum of four uniform 16-bit draws, variance matched): for
 * in-memory benchmark weights, billions of draws */
static inline float fast_normal(peft_rng *r)
{
    uint64_t x = peft_rng_next(r);
    int s = (int)(x & 0xffff) + (int)((x >> 16) & 0xffff) + (int)((x >> 32) & 0xffff) +
            (int)(x >> 48);
    return ((float)s - 131070.0f) * (1.0f / 37837.0f); /* sd of the sum: 65536 * sqrt(4/12) */
}

peft_tensor *peft_storage_random(peft_base_model *m, const char *name, int ndim,
                                 const int64_t *shape)
{
    const int32_t dt = m->load_dtype == PEFT_LOAD_DTYPE_AS_STORED ? PEFT_DTYPE_F32 : m->load_dtype;
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, 0, NULL);
    if (!t) return NULL;
    free(t->data);
    const int64_t n = peft_shape_numel(ndim, shape);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < PEFT_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = n;
    t->data = malloc((size_t)(n ? n : 1) * peft_dtype_size(dt));
    if (!t->data) { free(t); return NULL; }
    const double sd = init_std(m, name, ndim);
    const char *mt = json_string_value(json_object_get(m->config, "model_type"));
    /* LayerNorm / RMSNorm weights 1, biases 0; Gemma's RMSNorm computes (1 + w): zeros */
    const int gemma = mt && !strncmp(mt, "gemma", 5);
    const float one = ndim < 2 && !ends_with(name, "bias") && !gemma ? 1.0f : 0.0f;
    float buf[4096];
    for (int64_t s = 0; s < n; s += 4096) {
        int64_t len = n - s < 4096 ? n - s : 4096;
        for (int64_t i = 0; i < len; i++)
            buf[i] = sd == 0.0 ? one
                     : m->random_init == 2 ? (float)sd * fast_normal(&m->init_rng)
                                           : (float)(sd * peft_rng_normal(&m->init_rng));
        peft_convert_from_f32(dt, buf, (char *)t->data + (size_t)s * peft_dtype_size(dt), len);
    }
    /* nn.Embedding(padding_idx=pad_token_id) zeroes that row (every architecture here but GPT-2
     * and T5, whose embeddings have no padding_idx) */
    json_t *pad = json_object_get(m->config, "pad_token_id");
    if (ndim == 2 && mt && strcmp(mt, "gpt2") && strcmp(mt, "t5") && json_is_integer(pad) &&
        (ends_with(name, "word_embeddings.weight") || ends_with(name, "embed_tokens.weight"))) {
        int64_t p = json_integer_value(pad);
        if (p >= 0 && p < shape[0])
            memset((char *)t->data + (size_t)(p * shape[1]) * peft_dtype_size(dt), 0,
                   (size_t)shape[1] * peft_dtype_size(dt));
    }
    return t;
}

/* ---- quantized at load ------------------------------------------------------------------------ */

/* transformers' replace_with_bnb_linear keeps the output head (and tied weights) and the skipped
 * modules in full precision: module names matching "key" or containing "key." */
static int skipped(const peft_base_model *m, const peft_site *s)
{
    if (!strchr(s->info.name, '.')) return 1; /* lm_head, score, classifier, qa_outputs */
    if (s->info.weight == m->word_embeddings) return 1;
    size_t i;
    json_t *v;
    json_array_foreach(m->quant_skip, i, v) {
        const char *k = json_string_value(v);
        size_t kl = strlen(k);
        const char *p = s->info.name;
        if (!strcmp(p, k)) return 1;
        for (const char *h = strstr(p, k); h; h = strstr(h + 1, k))
            if (h[kl] == '.' || h[kl] == 0) return 1;
    }
    return 0;
}

int peft_storage_site(peft_base_model *m, peft_site *s, char *err, size_t errlen)
{
    if (!m->quant_dtype || m->meta || skipped(m, s)) return 0;
    if (s->info.kind != PEFT_SITE_LINEAR && s->info.kind != PEFT_SITE_CONV1D) return 0; /* linear only */
    peft_tensor *w = s->info.weight;
    if (peft_dtype_is_quantized(w->dtype)) return 0; /* shared and done */
    peft_quant_stats st;
    peft_tensor *q = peft_tensor_quantize_stats(w, m->quant_dtype, &st);
    peft_quant_layer *ql = q ? realloc(m->quant_layers, (size_t)(m->n_quantized + 1) * sizeof *ql) : NULL;
    if (ql) m->quant_layers = ql;
    char *qname = ql ? strdup(s->info.name) : NULL;
    if (!qname) {
        peft_tensor_free(q);
        peft_errbuf(err, errlen, "%s: cannot quantize %s.weight to %s (out of memory)", m->dir,
                    s->info.name, peft_dtype_label(m->quant_dtype));
        return -1;
    }
    m->quant_ref_sq += st.sq_norm;
    m->quant_err_sq += st.rel_err * st.rel_err * st.sq_norm;
    m->quant_layers[m->n_quantized] = (peft_quant_layer){qname, q->dtype, st.rel_err, st.max_abs_err};
    m->n_quantized++;
    if (w->flags & PEFT_T_OWNS_DATA) free(w->data);
    else peft_storage_release_mapped(w->data, (size_t)w->numel * peft_dtype_size(w->dtype));
    w->data = q->data;
    w->dtype = q->dtype;
    w->flags |= PEFT_T_OWNS_DATA;
    q->flags &= ~PEFT_T_OWNS_DATA;
    peft_tensor_free(q);
    return 0;
}

int peft_base_model_quant_report(const peft_base_model *m, int32_t *dtype, double *rel_err)
{
    if (!m || !m->n_quantized) return 0;
    if (dtype) *dtype = m->quant_dtype;
    if (rel_err) *rel_err = m->quant_ref_sq > 0 ? sqrt(m->quant_err_sq / m->quant_ref_sq) : 0.0;
    return m->n_quantized;
}

const peft_quant_layer *peft_base_model_quant_layers(const peft_base_model *m, int *n)
{
    if (n) *n = m && m->quant_layers ? m->n_quantized : 0;
    return m && m->n_quantized ? m->quant_layers : NULL;
}

size_t peft_base_model_weight_bytes(const peft_base_model *m)
{
    size_t b = 0;
    for (size_t i = 0; m && i < m->n_params; i++) {
        const peft_tensor *t = m->params[i].t;
        b += peft_dtype_storage_bytes(t->dtype, t->ndim, t->shape);
    }
    return b;
}

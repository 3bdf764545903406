/* rope_scaling.c — RoPE inverse frequencies per transformers 4.44 rope_type (see rope_scaling.h).
 * Each formula is modeling_rope_utils' torch code in f32, in its order of operations (a Python
 * scalar meets an f32 tensor as an f32 value; `s / t` is t.reciprocal() * s). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/models/rope_scaling.h"

/* 1 / base^(2i / dim) in f32: torch's base ** (arange(0, dim, 2).float() / dim) */
static void default_freqs(float base, int64_t dim, float *inv)
{
    for (int64_t i = 0; i < dim / 2; i++) inv[i] = 1.0f / powf(base, (float)(2 * i) / (float)dim);
}

static int num_field(const json_t *rs, const char *key, const char *type, double *out,
                     const char *dir, char *err, size_t errlen)
{
    json_t *v = json_object_get(rs, key);
    if (!v || !json_is_number(v)) {
        snprintf(err, errlen, "%s/config.json: rope_scaling of rope_type \"%s\" needs a number "
                 "\"%s\"", dir, type, key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

/* config.json's rope_scaling (rs, not null) into r->type and r->factor; name: the architecture,
 * for a refusal when it takes none (allow_scaling 0). 0 or -1 with err */
static int read_scaling(const json_t *rs, int allow_scaling, const char *name, const char *dir, rope_cfg *r,
                        char *err, size_t errlen)
{
    char *txt = json_dumps(rs, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!allow_scaling || !json_is_object(rs)) {
        snprintf(err, errlen, "%s/config.json: rope_scaling %s is unsupported for %s "
                 "(transformers 4.44's %s takes none: use null)", dir, txt ? txt : "(set)",
                 name, name);
        free(txt);
        return -1;
    }
    json_t *t = json_object_get(rs, "rope_type");
    if (!t) t = json_object_get(rs, "type"); /* transformers' BC name */
    const char *type = json_is_string(t) ? json_string_value(t) : NULL;
    if (!type || (strcmp(type, "default") && strcmp(type, "linear") &&
                  strcmp(type, "dynamic") && strcmp(type, "llama3"))) {
        snprintf(err, errlen, "%s/config.json: rope_scaling %s: rope_type %s%s%s is "
                 "unsupported (supported: default, linear, dynamic, llama3)", dir,
                 txt ? txt : "", type ? "\"" : "", type ? type : "(missing)",
                 type ? "\"" : "");
        free(txt);
        return -1;
    }
    free(txt);
    if (!strcmp(type, "linear")) r->type = ROPE_LINEAR;
    if (!strcmp(type, "dynamic")) r->type = ROPE_DYNAMIC;
    if (!strcmp(type, "llama3")) r->type = ROPE_LLAMA3;
    if (r->type != ROPE_DEFAULT) {
        if (num_field(rs, "factor", type, &r->factor, dir, err, errlen)) return -1;
        if (!(r->factor > 0)) {
            snprintf(err, errlen, "%s/config.json: rope_scaling factor (%g) must be positive",
                     dir, r->factor);
            return -1;
        }
    }
    return 0;
}

/* Llama 3's wavelength-dependent scaling of r->inv (transformers' _compute_llama3_parameters),
 * from rope_scaling rs. 0 or -1 with err */
static int llama3_freqs(const json_t *rs, const char *dir, rope_cfg *r, char *err, size_t errlen)
{
    double low, high, old;
    if (num_field(rs, "low_freq_factor", "llama3", &low, dir, err, errlen) ||
        num_field(rs, "high_freq_factor", "llama3", &high, dir, err, errlen) ||
        num_field(rs, "original_max_position_embeddings", "llama3", &old, dir, err, errlen))
        return -1;
    if (!(high != low) || !(old > 0)) {
        snprintf(err, errlen, "%s/config.json: rope_scaling llama3 needs high_freq_factor != "
                 "low_freq_factor and original_max_position_embeddings > 0", dir);
        return -1;
    }
    const float low_w = (float)(old / low), high_w = (float)(old / high); /* Python floats */
    const float factor = (float)r->factor, lowf = (float)low, oldf = (float)old;
    const float span = (float)(high - low), two_pi = (float)(2 * M_PI);
    for (int64_t i = 0; i < r->dim / 2; i++) {
        const float f = r->inv[i];
        const float wavelen = (1.0f / f) * two_pi; /* 2 * math.pi / inv_freq */
        float fl = wavelen > low_w ? f / factor : f;
        const float smooth = ((1.0f / wavelen) * oldf - lowf) / span;
        const float smoothed = (1.0f - smooth) * fl / factor + smooth * fl;
        const int medium = !(wavelen < high_w) && !(wavelen > low_w);
        r->inv[i] = medium ? smoothed : fl;
    }
    return 0;
}

int rope_cfg_read(const peft_base_model *m, int64_t dim, int allow_scaling, const char *name,
                  rope_cfg *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    const char *dir = m->dir;
    r->dim = dim;
    if (dim <= 0 || dim % 2 || dim > 1024) {
        snprintf(err, errlen, "%s/config.json: the head size %lld must be even and at most 1024 "
                 "for rotary embeddings", dir, (long long)dim);
        return -1;
    }
    if (peft_config_real_buf(m, "rope_theta", 1, 10000.0, &r->theta, err, errlen)) return -1;
    if (!(r->theta > 0)) {
        snprintf(err, errlen, "%s/config.json: rope_theta (%g) must be positive", dir, r->theta);
        return -1;
    }
    json_t *rs = json_object_get(m->config, "rope_scaling");
    r->type = ROPE_DEFAULT;
    if (rs && !json_is_null(rs) && read_scaling(rs, allow_scaling, name, dir, r, err, errlen)) return -1;
    default_freqs((float)r->theta, dim, r->inv);
    if (r->type == ROPE_LINEAR) {
        for (int64_t i = 0; i < dim / 2; i++) r->inv[i] /= (float)r->factor; /* inv_freq /= factor */
    } else if (r->type == ROPE_DYNAMIC) {
        if (peft_config_int_buf(m, "max_position_embeddings", 0, 0, &r->max_pos, err, errlen))
            return -1;
        if (r->max_pos <= 0) {
            snprintf(err, errlen, "%s/config.json: max_position_embeddings (%lld) must be positive "
                     "for dynamic RoPE scaling", dir, (long long)r->max_pos);
            return -1;
        }
        /* at init seq_len = max_position_embeddings, in Python floats */
        const double d = (double)dim;
        double base = r->theta * pow(r->factor * (double)r->max_pos / (double)r->max_pos -
                                         (r->factor - 1.0), d / (d - 2.0));
        default_freqs((float)base, dim, r->inv);
    } else if (r->type == ROPE_LLAMA3) {
        return llama3_freqs(rs, dir, r, err, errlen);
    }
    return 0;
}

const float *rope_inv_freq(const rope_cfg *r, int64_t max_position, float *scratch)
{
    const int64_t seq_len = max_position + 1;
    if (r->type != ROPE_DYNAMIC || seq_len <= r->max_pos) return r->inv;
    /* transformers: seq_len is a tensor here, so the base grows in f32 tensor arithmetic:
     * base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2)) */
    const float x = (float)r->factor * (float)seq_len / (float)r->max_pos - (float)(r->factor - 1.0);
    const float base = (float)r->theta * powf(x, (float)((double)r->dim / ((double)r->dim - 2.0)));
    for (int64_t i = 0; i < r->dim / 2; i++)
        scratch[i] = 1.0f / powf(base, (float)(2 * i) / (float)r->dim);
    return scratch;
}

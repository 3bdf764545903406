/* lora_convert.c — the LoRA side of peft_save_pretrained_convert (PEFT 0.13.2 save_pretrained
 * with path_initial_model_for_weight_conversion, LoraModel.subtract_mutated_init): a PiSSA or
 * OLoRA adapter saved as a plain LoRA for the ORIGINAL base model (peft/convert.h):
 *     W_res + s B A = W + s [B | -B0] [A ; A0]
 * so lora_A -> cat([A, A0], 0), lora_B -> cat([B, -B0], 1), r -> 2r, lora_alpha -> 2 alpha
 * (sqrt(2) alpha with rsLoRA, which keeps the scaling), every other tensor dropped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lora.h"

/* key's number doubled (an int stays an int: Python's int * 2), times f for a real or f != 2 */
static void scale_key(peft_cfg *cfg, const char *key, double f)
{
    int t = lora_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_INT && f == 2.0) {
        int64_t v = 0;
        lora_host->cfg_int(cfg, key, &v);
        lora_host->cfg_set_int(cfg, key, v * 2);
    } else if (t == PEFT_CFG_INT || t == PEFT_CFG_REAL) {
        double v = 0;
        lora_host->cfg_real(cfg, key, &v);
        lora_host->cfg_set_real(cfg, key, v * f);
    }
}

/* every number value of the flat dict `key` doubled (rank_pattern / alpha_pattern), working on
 * its JSON text: strings (the keys) copied as they are, integers stay integers. 0 or -1 (OOM) */
static int double_dict(peft_cfg *cfg, const char *key)
{
    if (lora_host->cfg_type(cfg, key) != PEFT_CFG_DICT) return 0;
    char *text = lora_host->cfg_get_json(cfg, key);
    if (!text) return -1;
    size_t cap = strlen(text) * 2 + 64, n = 0;
    char *out = lora_host->alloc(cap);
    if (!out) {
        lora_host->free(text);
        return -1;
    }
    for (const char *p = text; *p && n + 40 < cap;) {
        if (*p == '"') {
            const char *q = p + 1;
            for (; *q && *q != '"'; q++)
                if (*q == '\\' && q[1]) q++;
            if (*q) q++;
            memcpy(out + n, p, (size_t)(q - p));
            n += (size_t)(q - p);
            p = q;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            char *end;
            double v = strtod(p, &end);
            int is_int = 1;
            for (const char *c = p; c < end; c++) is_int &= *c != '.' && *c != 'e' && *c != 'E';
            n += (size_t)(is_int ? snprintf(out + n, cap - n, "%lld", (long long)strtoll(p, NULL, 10) * 2)
                                 : snprintf(out + n, cap - n, "%.17g", v * 2));
            p = end > p ? end : p + 1;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = 0;
    int rc = lora_host->cfg_set_json(cfg, key, out);
    lora_host->free(out);
    lora_host->free(text);
    return rc ? -1 : 0;
}

/* a dict key holding something other than {} */
static int nonempty_dict(const peft_cfg *cfg, const char *key)
{
    if (lora_host->cfg_type(cfg, key) != PEFT_CFG_DICT) return 0;
    char *text = lora_host->cfg_get_json(cfg, key);
    int nonempty = text && strcmp(text, "{}") != 0;
    lora_host->free(text);
    return nonempty;
}

int lora_convert_config(peft_cfg *cfg, char *err, size_t errlen)
{
    int rslora = 0;
    if (lora_host->cfg_type(cfg, "use_rslora") == PEFT_CFG_BOOL)
        lora_host->cfg_bool(cfg, "use_rslora", &rslora);
    if (rslora && (nonempty_dict(cfg, "rank_pattern") || nonempty_dict(cfg, "alpha_pattern"))) {
        peft_pu_errf(err, errlen, "Passing `path_initial_model_for_weight_conversion` to "
                     "`save_pretrained` is not supported when using `rank_pattern` or "
                     "`alpha_pattern` at the same time as `use_rslora=True`.");
        return -1;
    }
    /* PEFT: any(str(init_lora_weights).lower().startswith(p) for p in ("pissa", "olora", "true")) */
    int init = 0;
    const char *s = lora_host->cfg_str(cfg, "init_lora_weights");
    if (lora_host->cfg_type(cfg, "init_lora_weights") == PEFT_CFG_BOOL)
        lora_host->cfg_bool(cfg, "init_lora_weights", &init);
    else if (s)
        init = !strncasecmp(s, "pissa", 5) || !strncasecmp(s, "olora", 5) ||
               !strncasecmp(s, "true", 4);
    if (!init)
        lora_host->warn("`path_initial_model_for_weight_conversion` only works for converting a "
                        "PiSSA or OLoRA adapter to a LoRA adapter");
    lora_host->cfg_set_bool(cfg, "init_lora_weights", 1);
    scale_key(cfg, "r", 2.0);
    scale_key(cfg, "lora_alpha", rslora ? sqrt(2.0) : 2.0);
    if (double_dict(cfg, "rank_pattern") || double_dict(cfg, "alpha_pattern")) {
        peft_pu_errf(err, errlen, "lora convert: out of memory");
        return -1;
    }
    return 0;
}

int lora_convert_tensor(const char *key, const peft_tensor *cur, const peft_tensor *initial,
                        peft_tensor **out, char *err, size_t errlen)
{
    const int is_a = strstr(key, "lora_A") != NULL, is_b = !is_a && strstr(key, "lora_B") != NULL;
    if (!is_a && !is_b) return 0; /* dropped, as subtract_mutated_init does */
    if (!initial) {
        peft_pu_errf(err, errlen, "missing tensor '%s' (the initial adapter must have the same "
                     "targets as the adapter)", key);
        return -1;
    }
    if (cur->ndim != 2 || initial->ndim != 2 ||
        (is_b ? initial->shape[0] != cur->shape[0] : initial->shape[1] != cur->shape[1])) {
        peft_pu_errf(err, errlen, "tensor '%s' has shape [%lld, %lld], but the adapter's is "
                     "[%lld, %lld]: expected the same %s (the initial adapter of this model, "
                     "saved before training)", key,
                     (long long)(initial->ndim > 0 ? initial->shape[0] : 0),
                     (long long)(initial->ndim > 1 ? initial->shape[1] : 0),
                     (long long)cur->shape[0], (long long)cur->shape[1],
                     is_b ? "number of rows (out_features)" : "number of columns (in_features)");
        return -1;
    }
    const int64_t rows = cur->shape[0], cols = cur->shape[1];
    const int64_t r0 = is_b ? initial->shape[1] : initial->shape[0];
    const int64_t shape[2] = {is_b ? rows : rows + r0, is_b ? cols + r0 : cols};
    peft_tensor *t = lora_host->tensor_new(2, shape);
    if (!t) {
        peft_pu_errf(err, errlen, "out of memory converting '%s'", key);
        return -1;
    }
    float *buf = peft_f32(t);
    const float *c = peft_f32(cur), *init = peft_f32(initial);
    if (!is_a) { /* (out, r + r0): each row = current row, then minus the initial row */
        for (int64_t i = 0; i < rows; i++) {
            float *dst = buf + i * (cols + r0);
            memcpy(dst, c + i * cols, (size_t)cols * sizeof *buf);
            for (int64_t j = 0; j < r0; j++) dst[cols + j] = -init[i * r0 + j];
        }
    } else { /* (r + r0, in): the current rows, then the initial ones */
        memcpy(buf, c, (size_t)(rows * cols) * sizeof *buf);
        memcpy(buf + rows * cols, init, (size_t)(r0 * cols) * sizeof *buf);
    }
    *out = t;
    return 1;
}

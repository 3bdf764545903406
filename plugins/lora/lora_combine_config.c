/* lora_combine_config.c — the LoRA side of add_weighted_adapter's new config (PEFT 0.13.2
 * LoraModel._check_add_weighted_adapter and add_weighted_adapter's LoraConfig): the sources'
 * ranks checked for the combination type, the new r and lora_alpha (both the new rank),
 * rank_pattern/alpha_pattern emptied, a string init_lora_weights (PiSSA, OLoRA...) made true;
 * the new rank written back into the options as svd_rank for lora_combine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"

/* the combination types whose A and B are weighted by sqrt(weight * scaling) and that need equal
 * ranks (the new r is theirs); "cat" sums the ranks; the rest are svd ones */
static int is_plain(const char *t)
{
    static const char *const plain[] = {"linear", "ties", "dare_linear", "dare_ties",
                                        "magnitude_prune"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!strcmp(t, plain[i])) return 1;
    return 0;
}

/* the largest number among the values of a flat JSON object's text ({"k": 8, ...}); keys are
 * skipped as strings. 0 when none */
static double max_value(const char *text)
{
    double best = 0;
    for (const char *p = text; p && *p;) {
        if (*p == '"') { /* a string: skip it, escapes included */
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            char *end;
            double v = strtod(p, &end);
            if (v > best) best = v;
            p = end > p ? end : p + 1;
        } else {
            p++;
        }
    }
    return best;
}

/* a source's rank: r, or the largest of r and its rank_pattern values; -1 with err */
static int source_rank(const peft_cfg *c, const char *name, int64_t *out, char *err,
                       size_t errlen)
{
    int64_t r = 0;
    if (lora_host->cfg_type(c, "r") != PEFT_CFG_INT || lora_host->cfg_int(c, "r", &r) || r < 1) {
        peft_pu_errf(err, errlen, "adapter '%s' has no positive integer 'r' in its config", name);
        return -1;
    }
    if (lora_host->cfg_type(c, "rank_pattern") == PEFT_CFG_DICT) {
        char *text = lora_host->cfg_get_json(c, "rank_pattern");
        double v = max_value(text);
        lora_host->free(text);
        if (v > (double)r) r = (int64_t)v;
    }
    *out = r;
    return 0;
}

int lora_combine_config(peft_cfg *cfg, const peft_cfg *const *srcs, const char *const *names,
                        const double *weights, int n, peft_cfg *opts, char *err, size_t errlen)
{
    if (!PEFT_HOST_HAS(lora_host, cfg_get_json)) {
        peft_pu_errf(err, errlen, "lora combine: the host is too old (needs ABI 1.3)");
        return -1;
    }
    const char *type = lora_host->cfg_str(opts, "combination_type");
    if (!type) type = "svd";
    const int plain = is_plain(type), cat = !strcmp(type, "cat");
    for (int i = 0; i < n; i++) {
        int dora = 0;
        if (lora_host->cfg_type(srcs[i], "use_dora") == PEFT_CFG_BOOL &&
            !lora_host->cfg_bool(srcs[i], "use_dora", &dora) && dora) {
            peft_pu_errf(err, errlen, "adapter '%s' uses DoRA (use_dora: true): combining DoRA "
                         "adapters is not supported (PEFT 0.13.2 silently drops their magnitude "
                         "vectors)", names[i]);
            return -1;
        }
    }
    if (plain)
        for (int i = 0; i < n; i++)
            if (weights[i] < 0) {
                peft_pu_errf(err, errlen, "the weight of '%s' is %g: combination_type '%s' weighs "
                             "lora_A and lora_B by sqrt(weight * scaling), so weights must be >= 0 "
                             "(use cat or svd for negative weights)", names[i], weights[i], type);
                return -1;
            }
    int64_t r0 = 0, sum = 0, max = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = 0;
        if (source_rank(srcs[i], names[i], &r, err, errlen)) return -1;
        if (i == 0) r0 = r;
        if (plain && r != r0) {
            peft_pu_errf(err, errlen, "all adapters must have the same r value when using "
                         "combination_type linear, ties, dare_ties, dare_linear or "
                         "magnitude_prune: '%s' has r = %lld, '%s' r = %lld (use cat or svd)",
                         names[0], (long long)r0, names[i], (long long)r);
            return -1;
        }
        sum += r;
        if (r > max) max = r;
    }
    int64_t asked = 0;
    if (lora_host->cfg_int(opts, "svd_rank", &asked)) asked = 0;
    const int64_t rank = plain ? r0 : cat ? sum : asked > 0 ? asked : max;
    lora_host->cfg_set_int(cfg, "r", rank);
    lora_host->cfg_set_int(cfg, "lora_alpha", rank);
    if (lora_host->cfg_set_json(cfg, "rank_pattern", "{}") ||
        lora_host->cfg_set_json(cfg, "alpha_pattern", "{}")) {
        peft_pu_errf(err, errlen, "lora combine: out of memory");
        return -1;
    }
    if (lora_host->cfg_type(cfg, "init_lora_weights") == PEFT_CFG_STRING)
        lora_host->cfg_set_bool(cfg, "init_lora_weights", 1);
    lora_host->cfg_set_int(opts, "svd_rank", rank);
    return 0;
}

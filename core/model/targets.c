/* targets.c — which modules an adapter attaches to, with PEFT's rules (DESIGN.md 3):
 * target_modules as a list (a name equal to an entry or ending in ".entry") or a string (full
 * regex match; "all-linear" = every linear site), exclude_modules the same way, and
 * layers_to_transform / layers_pattern on the block index found in the module name. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/io/cfg.h"
#include "core/peft/internal.h"

static int ends_with_component(const char *name, const char *key)
{
    size_t n = strlen(name), k = strlen(key);
    if (n == k) return strcmp(name, key) == 0;
    return n > k && name[n - k - 1] == '.' && strcmp(name + n - k, key) == 0;
}

/* 1 match, 0 no match, -1 invalid regex or over its limits (why in err) */
static int rule_matches(const json_t *rule, const char *name, char *err, size_t errlen)
{
    if (json_is_string(rule)) {
        const char *pat = json_string_value(rule);
        if (strcmp(pat, "all-linear") == 0) return 1;
        return peft_regex_fullmatch_err(pat, name, err, errlen);
    }
    if (json_is_array(rule)) {
        size_t i;
        json_t *v;
        json_array_foreach(rule, i, v) {
            if (json_is_string(v) && ends_with_component(name, json_string_value(v))) return 1;
        }
    }
    return 0;
}

/* PEFT 0.13.2: re.match(r".*\.[^.]*\.(\d+)\.", key), or the same with each layers_pattern in
 * place of [^.]* (the first that matches); the greedy .* picks the last such block. Returns the
 * index or -1. */
static long layer_index_of(const char *name, const json_t *patterns)
{
    int no_pattern = !patterns || json_is_null(patterns) ||
                     (json_is_string(patterns) && !*json_string_value(patterns)) ||
                     (json_is_array(patterns) && json_array_size(patterns) == 0);
    if (no_pattern) return peft_regex_layer_index(NULL, name);
    if (json_is_string(patterns)) return peft_regex_layer_index(json_string_value(patterns), name);
    size_t j;
    json_t *v;
    json_array_foreach(patterns, j, v) {
        long idx = json_is_string(v) ? peft_regex_layer_index(json_string_value(v), name) : -1;
        if (idx >= 0) return idx;
    }
    return -1;
}

/* "all-linear" leaves out the output layer as PEFT 0.13.2 does: the output embedding
 * (lm_head) always, and for SEQ_CLS the classification head (score / classifier). It also
 * leaves out any module in modules_to_save (the TOKEN_CLS / QUESTION_ANS heads), which PEFT
 * would give a LoRA inside its trainable copy; libpeft trains such a head in full instead. */
static int excluded_from_all_linear(const json_t *cfg, const char *name)
{
    const char *dot = strrchr(name, '.'), *base = dot ? dot + 1 : name;
    if (!strcmp(base, "lm_head")) return 1;
    const char *task = json_string_value(json_object_get(cfg, "task_type"));
    if (task && !strcmp(task, "SEQ_CLS") && (!strcmp(base, "score") || !strcmp(base, "classifier"))) return 1;
    const json_t *mts = json_object_get(cfg, "modules_to_save");
    size_t i;
    json_t *v;
    json_array_foreach(mts, i, v)
        if (json_is_string(v) && ends_with_component(name, json_string_value(v))) return 1;
    return 0;
}

int peft_target_matches(peft_model *m, const json_t *cfg, const peft_site *s)
{
    const char *name = s->info.name;
    const json_t *targets = json_object_get(cfg, "target_modules");
    if (json_is_string(targets) && !strcmp(json_string_value(targets), "all-linear") &&
        ((s->info.kind != PEFT_SITE_LINEAR && s->info.kind != PEFT_SITE_CONV1D) ||
         excluded_from_all_linear(cfg, name)))
        return 0;
    char why[320];
    int hit = rule_matches(targets, name, why, sizeof why);
    if (hit < 0) {
        return peft_set_error(m->ctx, PEFT_EINVAL, "target_modules: regular expression '%.200s': %s",
                              json_string_value(targets), why);
    }
    if (!hit) return 0;
    const json_t *excl = json_object_get(cfg, "exclude_modules");
    if (excl && !json_is_null(excl)) {
        int ex = rule_matches(excl, name, why, sizeof why);
        if (ex < 0)
            return peft_set_error(m->ctx, PEFT_EINVAL, "exclude_modules: regular expression '%.200s': %s",
                                  json_string_value(excl), why);
        if (ex) return 0;
    }
    /* layers_to_transform applies to list targets that matched by suffix, not to an exact name
     * nor a regex (as in PEFT); "all-linear" is a list of every linear layer's suffix there */
    const json_t *layers = json_object_get(cfg, "layers_to_transform");
    int use_layers = layers && !json_is_null(layers) &&
                     !(json_is_array(layers) && json_array_size(layers) == 0);
    if (!use_layers) return 1;
    if (json_is_string(targets) && strcmp(json_string_value(targets), "all-linear") != 0) return 1;
    if (json_is_array(targets)) {
        size_t i;
        json_t *v;
        json_array_foreach(targets, i, v)
            if (json_is_string(v) && !strcmp(json_string_value(v), name)) return 1;
    }
    long idx = layer_index_of(name, json_object_get(cfg, "layers_pattern"));
    if (idx < 0) return 0;
    if (json_is_integer(layers)) return json_integer_value(layers) == idx;
    size_t i;
    json_t *v;
    json_array_foreach(layers, i, v)
        if (json_is_integer(v) && json_integer_value(v) == idx) return 1;
    return 0;
}

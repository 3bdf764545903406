/* cfg.c — peft_cfg: typed getters and setters over an adapter_config.json object (jansson),
 * and PEFT's rank_pattern/alpha_pattern key lookup (the regular expressions are in regex.c).
 *
 * Every getter tolerates a NULL cfg, a NULL/non-object json, a missing key and a wrong type:
 * it reports "missing"/"wrong type" and never crashes. Setters silently do nothing when the
 * cfg holds no JSON object (there is nowhere to write). */
#define _GNU_SOURCE
#include "core/io/cfg.h"

#include <stdlib.h>
#include <string.h>

static json_t *get(const peft_cfg *c, const char *key)
{
    if (!c || !c->obj || !key || !json_is_object(c->obj)) return NULL;
    return json_object_get(c->obj, key);
}

int peft_cfg_type(const peft_cfg *c, const char *key)
{
    json_t *v = get(c, key);
    if (!v) return PEFT_CFG_MISSING;
    switch (json_typeof(v)) {
    case JSON_NULL: return PEFT_CFG_NULL;
    case JSON_TRUE:
    case JSON_FALSE: return PEFT_CFG_BOOL;
    case JSON_INTEGER: return PEFT_CFG_INT;
    case JSON_REAL: return PEFT_CFG_REAL;
    case JSON_STRING: return PEFT_CFG_STRING;
    case JSON_ARRAY: return PEFT_CFG_LIST;
    case JSON_OBJECT: return PEFT_CFG_DICT;
    }
    return PEFT_CFG_MISSING;
}

int peft_cfg_bool(const peft_cfg *c, const char *key, int *out)
{
    json_t *v = get(c, key);
    if (!v || !json_is_boolean(v)) return -1;
    if (out) *out = json_is_true(v) ? 1 : 0;
    return 0;
}

int peft_cfg_int(const peft_cfg *c, const char *key, int64_t *out)
{
    json_t *v = get(c, key);
    if (!v || !json_is_integer(v)) return -1;
    if (out) *out = (int64_t)json_integer_value(v);
    return 0;
}

int peft_cfg_real(const peft_cfg *c, const char *key, double *out)
{
    json_t *v = get(c, key);
    if (!v || !json_is_number(v)) return -1; /* integer or real */
    if (out) *out = json_number_value(v);
    return 0;
}

const char *peft_cfg_str(const peft_cfg *c, const char *key)
{
    json_t *v = get(c, key);
    return (v && json_is_string(v)) ? json_string_value(v) : NULL;
}

char *peft_cfg_get_json(const peft_cfg *c, const char *key)
{
    json_t *v = get(c, key);
    if (!v) return NULL;
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!text) return NULL;
    size_t n = strlen(text) + 1;
    char *out = calloc(1, n); /* the host's allocator (host->free is free) */
    if (out) memcpy(out, text, n);
    free(text);
    return out;
}

int peft_cfg_list_len(const peft_cfg *c, const char *key)
{
    json_t *v = get(c, key);
    if (!v || !json_is_array(v)) return -1;
    size_t n = json_array_size(v);
    return n > (size_t)0x7fffffff ? 0x7fffffff : (int)n;
}

static json_t *list_elem(const peft_cfg *c, const char *key, int i)
{
    json_t *v = get(c, key);
    if (!v || !json_is_array(v) || i < 0 || (size_t)i >= json_array_size(v)) return NULL;
    return json_array_get(v, (size_t)i);
}

const char *peft_cfg_list_str(const peft_cfg *c, const char *key, int i)
{
    json_t *e = list_elem(c, key, i);
    return (e && json_is_string(e)) ? json_string_value(e) : NULL;
}

int peft_cfg_list_int(const peft_cfg *c, const char *key, int i, int64_t *out)
{
    json_t *e = list_elem(c, key, i);
    if (!e || !json_is_integer(e)) return -1;
    if (out) *out = (int64_t)json_integer_value(e);
    return 0;
}

/* ---- setters: replace the key's value ---- */

static void set(peft_cfg *c, const char *key, json_t *v)
{
    if (!v) return;
    if (!c || !c->obj || !key || !json_is_object(c->obj)) {
        json_decref(v);
        return;
    }
    json_object_set_new(c->obj, key, v); /* steals v even on failure */
}

void peft_cfg_set_bool(peft_cfg *c, const char *key, int v) { set(c, key, json_boolean(v)); }
void peft_cfg_set_int(peft_cfg *c, const char *key, int64_t v)
{
    set(c, key, json_integer((json_int_t)v));
}
void peft_cfg_set_real(peft_cfg *c, const char *key, double v) { set(c, key, json_real(v)); }
void peft_cfg_set_str(peft_cfg *c, const char *key, const char *v)
{
    set(c, key, v ? json_string(v) : json_null()); /* json_string: NULL if not UTF-8 */
}

int peft_cfg_set_json(peft_cfg *c, const char *key, const char *json_text)
{
    if (!c || !c->obj || !key || !json_is_object(c->obj) || !json_text) return -1;
    json_error_t e;
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, &e);
    if (!v) return -1;
    return json_object_set_new(c->obj, key, v) == 0 ? 0 : -1;
}

/* PEFT 0.13.2 get_pattern_key over one dict:
 *   next(filter(lambda k: re.match(rf".*\.{k}$", name), keys), name)
 * i.e. the first key (in the dict's order) whose regex matches, else the name itself used as
 * an exact key. jansson (>= 2.8) iterates objects in insertion order, which is the order the
 * JSON file lists the keys in — the order Python's dict keeps too.
 * Differences from PEFT, on purpose: the lookup is per dict (PEFT chains rank_pattern and
 * alpha_pattern keys before looking either up), a key that is an invalid regex is skipped
 * (Python raises), and a matching entry whose value is not a number answers 0 (not found). */
static int pattern_real(const peft_cfg *c, const char *dict_key, const char *module_name,
                        double *out, int lycoris)
{
    json_t *d = get(c, dict_key);
    if (!d || !json_is_object(d) || !module_name) return 0;
    const char *k;
    json_t *v;
    json_t *hit = NULL;
    json_object_foreach(d, k, v) {
        if (peft_regex_match_key(k, module_name, lycoris) == 1) {
            hit = v;
            break;
        }
    }
    if (!hit) hit = json_object_get(d, module_name);
    if (!hit || !json_is_number(hit)) return 0;
    if (out) *out = json_number_value(hit);
    return 1;
}

int peft_cfg_pattern_real(const peft_cfg *c, const char *dict_key, const char *module_name,
                          double *out)
{
    return pattern_real(c, dict_key, module_name, out, 0);
}

int peft_cfg_pattern_real_lycoris(const peft_cfg *c, const char *dict_key, const char *module_name,
                                  double *out)
{
    return pattern_real(c, dict_key, module_name, out, 1);
}

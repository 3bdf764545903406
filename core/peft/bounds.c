/* bounds.c — what creating an adapter may cost, checked before the memory is taken (issue 16):
 * the allocation guard's limits for a base model (and the adapter file being loaded), the
 * error when a plugin asked for more (naming the config field that holds the refused size),
 * and the early check of the first site's tensors against the file's header, so that a config
 * that does not match its weights is refused after one site, not after all of them. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/peft/internal.h"
#include "peft/safetensors.h"

#define MIN_ONE ((size_t)1 << 24)   /* elements: any single tensor up to 64 MB is fine */
#define SLACK ((size_t)512 << 20)   /* bytes on top of the total's multiples */

void peft_inject_limits(const peft_model *m, size_t *max_one, size_t *max_total)
{
    size_t big = MIN_ONE, total = 0;
    const peft_base_model *b = m->base;
    for (size_t i = 0; i < b->n_params; i++) {
        size_t n = (size_t)b->params[i].t->numel;
        if (n > big) big = n;
        total += n;
    }
    const peft_st_file *f = m->load_file;
    for (size_t i = 0; f && i < f->n_entries; i++) {
        size_t n = (size_t)peft_shape_numel(f->entries[i].ndim, f->entries[i].shape);
        if (n > big) big = n;
        total += n;
    }
    /* a tensor 4x the largest weight (or file tensor), in all 4x the model (+ the file) */
    *max_one = 4 * sizeof(float) * big;
    *max_total = 4 * sizeof(float) * total + SLACK;
}

/* " (field 'r' = 10000000)" when a field of the config (top level, or a value of one of its
 * dicts: rank_pattern) holds value, else "" */
static const char *field_holding(const json_t *cfg, int64_t value, char *buf, size_t len)
{
    const char *k;
    json_t *v;
    buf[0] = 0;
    json_object_foreach((json_t *)cfg, k, v) {
        if (json_is_integer(v) && json_integer_value(v) == value) {
            snprintf(buf, len, " (field '%s' = %" PRId64 ")", k, value);
            return buf;
        }
    }
    json_object_foreach((json_t *)cfg, k, v) {
        const char *k2;
        json_t *v2;
        if (!json_is_object(v)) continue;
        json_object_foreach(v, k2, v2)
            if (json_is_integer(v2) && json_integer_value(v2) == value) {
                snprintf(buf, len, " (field %s['%s'] = %" PRId64 ")", k, k2, value);
                return buf;
            }
    }
    return buf;
}

/* the field naming the first dimension of shape that is not one of the site's own */
static const char *field_of_shape(const peft_adapter *a, const peft_site *s, int ndim,
                                  const int64_t *shape, const int64_t *file_shape, char *buf,
                                  size_t len)
{
    buf[0] = 0;
    for (int d = 0; d < ndim && !buf[0]; d++) {
        if (file_shape && file_shape[d] == shape[d]) continue;
        if (!file_shape && s && (shape[d] == s->info.in_features || shape[d] == s->info.out_features))
            continue;
        field_holding(a->config, shape[d], buf, len);
    }
    return buf;
}

static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

int peft_inject_refused(peft_model *m, const peft_adapter *a, const peft_alloc_guard *g)
{
    char what[160], field[160], lim[64];
    peft_alloc_guard_what(g, what, sizeof what);
    peft_site *s = g->module ? peft_model_find_site(m->base, g->module) : NULL;
    field_of_shape(a, s, g->ndim, g->shape, NULL, field, sizeof field);
    snprintf(lim, sizeof lim, "%.3g GB", (double)(g->want > g->max_one ? g->max_one : g->max_total) / 1e9);
    return peft_set_error(m->ctx, PEFT_EINVAL,
                          "adapter '%s' (%s)%s%s: the config asks for %s%s, more than a %s "
                          "adapter on this model can need (limit %s: %s)%s",
                          a->name, a->vt->peft_type, g->module ? " on " : "",
                          g->module ? g->module : "", what, field, a->vt->peft_type, lim,
                          g->want > g->max_one ? "4x its largest weight for one tensor"
                                               : "4x the model's size in all",
                          m->load_file ? "; adapter_config.json does not match its weights" : "");
}

int peft_inject_check_file(peft_model *m, const peft_adapter *a, const peft_site *s, void *state)
{
    const peft_st_file *f = m->load_file;
    if (!f) return PEFT_OK;
    peft_refs rs;
    if (peft_refs_get(&rs, a, state)) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    int rc = PEFT_OK;
    const char *prefix = peft_key_prefix(m);
    for (int k = 0; k < rs.n && !rc; k++) {
        const peft_param_ref *r = &rs.v[k];
        if (!peft_ref_is_saved(r) || !r->tensor) continue;
        char *key = NULL;
        if (asprintf(&key, "%s%s.%s", prefix, s->info.name, r->saved_name) < 0) {
            rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
            break;
        }
        const peft_st_entry *e = peft_st_find(f, key);
        const peft_tensor *t = r->tensor;
        int same = e && e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
        if (e && !same) {
            char a1[96], a2[96], field[160] = "";
            if (e->ndim == t->ndim) field_of_shape(a, s, t->ndim, t->shape, e->shape, field, sizeof field);
            rc = peft_set_error(m->ctx, PEFT_EINVAL,
                                "%s: tensor '%s' has shape %s, the config implies %s%s: the config "
                                "does not match its weights",
                                f->path, key, shape_text(e->ndim, e->shape, a1, sizeof a1),
                                shape_text(t->ndim, t->shape, a2, sizeof a2), field);
        }
        free(key);
    }
    peft_refs_free(&rs);
    return rc;
}

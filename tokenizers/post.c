/* tokenizer_post.c — tokenizer.json post-processors: the special tokens that
 * encode(add_special_tokens=True) puts around a single sequence. TemplateProcessing ("single":
 * SpecialToken / Sequence items, ids from "special_tokens"), BertProcessing ([CLS] A [SEP]),
 * RobertaProcessing (<s> A </s>), ByteLevel (nothing to add: it only trims offsets) and
 * Sequence. Pair templates are not used (pair inputs are not supported). */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

enum { PP_TEMPLATE = 1, PP_BYTELEVEL, PP_SEQUENCE };

typedef struct item { int is_seq; int32_t *ids; size_t n; } item;

struct tk_post {
    int type;
    item *items; /* Template (Bert and Roberta are turned into templates) */
    size_t n_items;
    tk_post **subs; /* Sequence */
    size_t n_subs;
};

void tk_post_free(tk_post *pp)
{
    if (!pp) return;
    for (size_t i = 0; i < pp->n_items; i++) free(pp->items[i].ids);
    free(pp->items);
    for (size_t i = 0; i < pp->n_subs; i++) tk_post_free(pp->subs[i]);
    free(pp->subs);
    free(pp);
}

static int add_item(tk_post *pp, int is_seq, const int32_t *ids, size_t n)
{
    item *v = realloc(pp->items, (pp->n_items + 1) * sizeof *v);
    if (!v) return PEFT_ENOMEM;
    pp->items = v;
    item *it = &v[pp->n_items];
    memset(it, 0, sizeof *it);
    it->is_seq = is_seq;
    if (n) {
        if (!(it->ids = malloc(n * sizeof *ids))) return PEFT_ENOMEM;
        memcpy(it->ids, ids, n * sizeof *ids);
        it->n = n;
    }
    pp->n_items++;
    return 0;
}

/* ["[SEP]", 102] */
static int token_pair(const json_t *j, const char *where, const char *key, int32_t *id, char *err, size_t errlen)
{
    const json_t *p = json_object_get(j, key);
    if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_string(json_array_get(p, 0)) ||
        !json_is_integer(json_array_get(p, 1)) || json_integer_value(json_array_get(p, 1)) < 0 ||
        json_integer_value(json_array_get(p, 1)) >= INT32_MAX)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: \"%s\": expected [\"token\", id]", where, key);
    *id = (int32_t)json_integer_value(json_array_get(p, 1));
    return 0;
}

static int parse_template(const json_t *j, const char *where, tk_post *pp, char *err, size_t errlen)
{
    const json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
    if (!json_is_array(single))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: TemplateProcessing: \"single\" must be a list", where);
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *it = json_array_get(single, i), *st = json_object_get(it, "SpecialToken");
        if (json_object_get(it, "Sequence")) {
            if (add_item(pp, 1, NULL, 0)) return tk_oom(err, errlen);
            continue;
        }
        const char *name = json_string_value(json_object_get(st, "id"));
        if (!name)
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: TemplateProcessing.single[%zu]: expected {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}", where, i);
        const json_t *ids = json_object_get(json_object_get(specials, name), "ids");
        if (!json_is_array(ids))
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: TemplateProcessing.special_tokens[\"%.60s\"].ids: missing (the template uses it)", where, name);
        size_t n = json_array_size(ids);
        int32_t *v = malloc((n ? n : 1) * sizeof *v);
        if (!v) return tk_oom(err, errlen);
        for (size_t k = 0; k < n; k++) {
            const json_t *x = json_array_get(ids, k);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= INT32_MAX) {
                free(v);
                return tk_err(err, errlen, PEFT_EFORMAT, "%s: TemplateProcessing.special_tokens[\"%.60s\"].ids[%zu]: expected an id", where, name, k);
            }
            v[k] = (int32_t)json_integer_value(x);
        }
        int rc = add_item(pp, 0, v, n);
        free(v);
        if (rc) return tk_oom(err, errlen);
    }
    return 0;
}

int tk_post_parse(const json_t *j, const char *where, tk_post **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!j || json_is_null(j)) return 0;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: expected an object with a \"type\"", where);
    tk_post *pp = calloc(1, sizeof *pp);
    if (!pp) return tk_oom(err, errlen);
    int rc = 0;
    if (!strcmp(type, "TemplateProcessing")) {
        pp->type = PP_TEMPLATE;
        rc = parse_template(j, where, pp, err, errlen);
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        pp->type = PP_TEMPLATE;
        int32_t cls, sep;
        if (!(rc = token_pair(j, where, "cls", &cls, err, errlen)) && !(rc = token_pair(j, where, "sep", &sep, err, errlen)) &&
            (add_item(pp, 0, &cls, 1) || add_item(pp, 1, NULL, 0) || add_item(pp, 0, &sep, 1)))
            rc = tk_oom(err, errlen);
    } else if (!strcmp(type, "ByteLevel")) {
        pp->type = PP_BYTELEVEL;
    } else if (!strcmp(type, "Sequence")) {
        pp->type = PP_SEQUENCE;
        const json_t *list = json_object_get(j, "processors");
        if (!json_is_array(list)) {
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Sequence: \"processors\" must be a list", where);
        } else if (json_array_size(list) && !(pp->subs = calloc(json_array_size(list), sizeof *pp->subs))) {
            rc = tk_oom(err, errlen);
        } else {
            for (size_t i = 0; i < json_array_size(list) && !rc; i++) {
                char w[256];
                snprintf(w, sizeof w, "%s.processors[%zu]", where, i);
                rc = tk_post_parse(json_array_get(list, i), w, &pp->subs[pp->n_subs], err, errlen);
                if (!rc && pp->subs[pp->n_subs]) pp->n_subs++;
            }
        }
    } else {
        rc = tk_err(err, errlen, PEFT_EFORMAT,
                    "%s: post-processor type \"%s\" is not supported (supported: TemplateProcessing, "
                    "BertProcessing, RobertaProcessing, ByteLevel, Sequence)", where, type);
    }
    if (rc) {
        tk_post_free(pp);
        return rc;
    }
    *out = pp;
    return 0;
}

int tk_post_apply(const tk_post *pp, const int32_t *seq, size_t n, tk_ids *out)
{
    if (!pp || pp->type == PP_BYTELEVEL) return tk_ids_append(out, seq, n);
    if (pp->type == PP_TEMPLATE) {
        for (size_t i = 0; i < pp->n_items; i++) {
            const item *it = &pp->items[i];
            if (it->is_seq ? tk_ids_append(out, seq, n) : tk_ids_append(out, it->ids, it->n)) return PEFT_ENOMEM;
        }
        return 0;
    }
    /* Sequence: each processor in turn on the previous one's output */
    tk_ids cur = {0}, nxt = {0};
    int rc = tk_ids_append(&cur, seq, n);
    for (size_t i = 0; i < pp->n_subs && !rc; i++) {
        nxt.n = 0;
        rc = tk_post_apply(pp->subs[i], cur.v, cur.n, &nxt);
        tk_ids t = cur;
        cur = nxt;
        nxt = t;
    }
    if (!rc) rc = tk_ids_append(out, cur.v, cur.n);
    free(cur.v);
    free(nxt.v);
    return rc;
}

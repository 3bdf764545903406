/* tokenizer_load.c — reading a Hugging Face tokenizer.json (jansson) into a peft_tokenizer:
 * the model (BPE or WordPiece; GPT-2's older files have no model "type" and are recognised by
 * their merges), normalizer, pre_tokenizer, post_processor, decoder and added_tokens, plus the
 * special token ids (tokenizer_config.json beside it, else the usual names); and the lookups
 * (token <-> id, vocabulary size). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

#define MAX_FILE (512u << 20)

/* a whole file, NUL-terminated; caller frees */
static int read_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tk_err(err, errlen, PEFT_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *b = cap < MAX_FILE ? realloc(buf, cap *= 2) : NULL;
            if (!b) {
                free(buf);
                buf = NULL;
            } else {
                buf = b;
            }
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return tk_err(err, errlen, PEFT_ENOMEM, "%s: out of memory or larger than %u MB", path, MAX_FILE >> 20);
    if (bad) {
        free(buf);
        return tk_err(err, errlen, PEFT_EIO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    return 0;
}

static int get_bool(const json_t *j, const char *key, int dflt)
{
    const json_t *v = json_object_get(j, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int parse_model(const json_t *mj, const char *where, tk_model *m, char *err, size_t errlen)
{
    if (!json_is_object(mj)) return tk_err(err, errlen, PEFT_EFORMAT, "%s: \"model\": expected an object", where);
    const char *type = json_string_value(json_object_get(mj, "type"));
    if (!type) /* older files (GPT-2's) leave the type out */
        type = json_object_get(mj, "merges") ? "BPE" : json_object_get(mj, "max_input_chars_per_word") ? "WordPiece" : "?";
    if (!strcmp(type, "BPE")) return tk_bpe_parse(mj, where, m, err, errlen);
    if (!strcmp(type, "WordPiece")) return tk_wordpiece_parse(mj, where, m, err, errlen);
    if (!strcmp(type, "Unigram")) return tk_unigram_parse(mj, where, m, err, errlen);
    if (!strcmp(type, "WordLevel")) return tk_wordlevel_parse(mj, where, m, err, errlen);
    return tk_err(err, errlen, PEFT_EFORMAT,
                  "%s: model.type \"%s\" is not supported (supported: BPE, WordPiece, Unigram, WordLevel)", where, type);
}

static int parse_added(peft_tokenizer *tk, const json_t *list, char *err, size_t errlen)
{
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return tk_err(err, errlen, PEFT_EFORMAT, "%s: added_tokens: expected a list", tk->name);
    size_t n = json_array_size(list);
    if (n && (!(tk->added = calloc(n, sizeof *tk->added)) || tk_strmap_reserve(&tk->added_map, n))) return tk_oom(err, errlen);
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(list, i), *id = json_object_get(a, "id");
        const char *content = json_string_value(json_object_get(a, "content"));
        if (!content || !*content || !json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX)
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: added_tokens[%zu]: expected {\"id\": id, \"content\": \"non-empty text\", ...}", tk->name, i);
        tk_added *t = &tk->added[tk->n_added++];
        t->id = (int32_t)json_integer_value(id);
        t->special = get_bool(a, "special", 0);
        t->single_word = get_bool(a, "single_word", 0);
        t->lstrip = get_bool(a, "lstrip", 0);
        t->rstrip = get_bool(a, "rstrip", 0);
        t->normalized = get_bool(a, "normalized", !t->special);
        if (!(t->content = strdup(content)) || tk_cps_from_cstr(content, &t->raw)) return tk_oom(err, errlen);
        if (t->normalized && tk_normalize(tk->normalizer, &t->raw, &t->norm)) return tk_oom(err, errlen);
        t->decoded = t->content;
        if (t->normalized && tk->normalizer) {
            tk_str d = {0};
            if (tk_utf8_from_cps(t->norm.c, t->norm.n, &d)) return tk_oom(err, errlen);
            t->decoded = d.s;
        }
        if (tk_strmap_put(&tk->added_map, content, strlen(content), (int32_t)(tk->n_added - 1), NULL)) return tk_oom(err, errlen);
        if (t->id >= tk->vocab_size) tk->vocab_size = t->id + 1;
    }
    return 0;
}

/* ---- special ids ---- */
static int32_t first_of(const peft_tokenizer *tk, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = peft_tokenizer_token_to_id(tk, *names);
        if (id >= 0) return id;
    }
    return -1;
}

static void guess_specials(peft_tokenizer *tk)
{
    static const char *bos[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL},
                      *eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL},
                      *pad[] = {"[PAD]", "<pad>", NULL}, *unk[] = {"[UNK]", "<unk>", "<|endoftext|>", NULL},
                      *cls[] = {"[CLS]", NULL}, *sep[] = {"[SEP]", NULL};
    peft_tokenizer_special *s = &tk->special;
    s->bos = first_of(tk, bos);
    s->eos = first_of(tk, eos);
    s->pad = first_of(tk, pad);
    s->unk = tk->model.unk_id >= 0 ? tk->model.unk_id : first_of(tk, unk);
    s->cls = first_of(tk, cls);
    s->sep = first_of(tk, sep);
}

/* tokenizer_config.json: "bos_token": "<s>" or {"content": "<s>", ...} or null */
static int config_specials(peft_tokenizer *tk, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return 0; /* optional */
    char *text;
    int rc = read_file(path, &text, err, errlen);
    if (rc) return rc;
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_INT_AS_REAL, &je); /* model_max_length can be 1e30 */
    free(text);
    if (!json_is_object(j)) {
        json_decref(j);
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: invalid JSON at line %d: %s", path, je.line, j ? "expected an object" : je.text);
    }
    static const char *keys[] = {"bos_token", "eos_token", "pad_token", "unk_token", "cls_token", "sep_token"};
    int32_t *slots[] = {&tk->special.bos, &tk->special.eos, &tk->special.pad, &tk->special.unk, &tk->special.cls, &tk->special.sep};
    for (int i = 0; i < 6 && !rc; i++) {
        const json_t *v = json_object_get(j, keys[i]);
        if (!v) continue; /* keep the guess */
        const char *name = json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "content"));
        if (json_is_null(v)) {
            *slots[i] = -1;
        } else if (!name) {
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: %s: expected a string, {\"content\": ...} or null", path, keys[i]);
        } else if ((*slots[i] = peft_tokenizer_token_to_id(tk, name)) < 0) {
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: %s \"%.60s\" is not a token of the tokenizer", path, keys[i], name);
        }
    }
    json_decref(j);
    return rc;
}

/* the first-code-point index of the added tokens (encode.c's search) */
static const tk_cps *pat_of(const tk_added *a, int norm) { return norm ? &a->norm : &a->raw; }
struct sort_ctx { const peft_tokenizer *tk; int norm; };
static int by_first_cmp(const void *x, const void *y, void *ctx)
{
    const struct sort_ctx *sc = ctx;
    uint32_t a = pat_of(&sc->tk->added[*(const uint32_t *)x], sc->norm)->c[0];
    uint32_t b = pat_of(&sc->tk->added[*(const uint32_t *)y], sc->norm)->c[0];
    return a < b ? -1 : a > b;
}

static int index_added(peft_tokenizer *tk)
{
    for (int norm = 0; norm < 2; norm++) {
        size_t n = 0;
        if (tk->n_added && (!(tk->by_first[norm] = malloc(tk->n_added * sizeof(uint32_t))) ||
                            !(tk->first_cp[norm] = malloc(tk->n_added * sizeof(uint32_t)))))
            return PEFT_ENOMEM;
        for (size_t i = 0; i < tk->n_added; i++)
            if (tk->added[i].normalized == norm && pat_of(&tk->added[i], norm)->n) tk->by_first[norm][n++] = (uint32_t)i;
        struct sort_ctx sc = {tk, norm};
        if (n > 1) /* never qsort_r(NULL, 0, ...): no added tokens leaves by_first NULL */
            qsort_r(tk->by_first[norm], n, sizeof(uint32_t), by_first_cmp, &sc);
        for (size_t k = 0; k < n; k++) tk->first_cp[norm][k] = pat_of(&tk->added[tk->by_first[norm][k]], norm)->c[0];
        tk->n_first[norm] = n;
    }
    return 0;
}

static int parse(peft_tokenizer *tk, const json_t *j, char *err, size_t errlen)
{
    const char *w = tk->name;
    char where[1200];
    int rc;
    if (!json_is_object(j)) return tk_err(err, errlen, PEFT_EFORMAT, "%s: expected a JSON object", w);
    if ((rc = parse_model(json_object_get(j, "model"), w, &tk->model, err, errlen))) return rc;
    tk->vocab_size = tk->model.n_ids;
    snprintf(where, sizeof where, "%s: normalizer", w);
    if ((rc = tk_normalizer_parse(json_object_get(j, "normalizer"), where, &tk->normalizer, err, errlen))) return rc;
    snprintf(where, sizeof where, "%s: pre_tokenizer", w);
    if ((rc = tk_pretok_parse(json_object_get(j, "pre_tokenizer"), where, &tk->pretok, err, errlen))) return rc;
    snprintf(where, sizeof where, "%s: post_processor", w);
    if ((rc = tk_post_parse(json_object_get(j, "post_processor"), where, &tk->post, err, errlen))) return rc;
    snprintf(where, sizeof where, "%s: decoder", w);
    if ((rc = tk_decoder_parse(json_object_get(j, "decoder"), where, &tk->decoder, err, errlen))) return rc;
    if ((rc = parse_added(tk, json_object_get(j, "added_tokens"), err, errlen))) return rc;
    if (index_added(tk)) return tk_oom(err, errlen);
    guess_specials(tk);
    return 0;
}

void peft_tokenizer_free(peft_tokenizer *tk)
{
    if (!tk) return;
    tk_model_free(&tk->model);
    for (size_t i = 0; i < tk->n_added; i++) {
        if (tk->added[i].decoded != tk->added[i].content) free(tk->added[i].decoded);
        free(tk->added[i].content);
        free(tk->added[i].raw.c);
        free(tk->added[i].norm.c);
    }
    free(tk->added);
    for (int k = 0; k < 2; k++) {
        free(tk->by_first[k]);
        free(tk->first_cp[k]);
    }
    tk_strmap_free(&tk->added_map);
    tk_normalizer_free(tk->normalizer);
    tk_pretok_free(tk->pretok);
    tk_post_free(tk->post);
    tk_decoder_free(tk->decoder);
    free(tk->name);
    free(tk);
}

int peft_tokenizer_from_json(const char *json_text, const char *name, peft_tokenizer **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!name) name = "tokenizer.json";
    if (!json_text) return tk_err(err, errlen, PEFT_EINVAL, "%s: no JSON text", name);
    json_error_t je;
    const size_t len = strlen(json_text);
    tk_json_arena *arena = tk_json_arena_open(len); /* the tree lives until parse() is done */
    json_t *j = json_loadb(json_text, len, 0, &je);
    if (!j) {
        tk_json_arena_close(arena, NULL);
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: invalid JSON at line %d, column %d: %s", name, je.line, je.column, je.text);
    }
    peft_tokenizer *tk = calloc(1, sizeof *tk);
    int rc = tk ? 0 : tk_oom(err, errlen);
    if (!rc && !(tk->name = strdup(name))) rc = tk_oom(err, errlen);
    if (!rc) rc = parse(tk, j, err, errlen);
    tk_json_arena_close(arena, j);
    if (rc) {
        peft_tokenizer_free(tk);
        return rc;
    }
    *out = tk;
    return 0;
}

int peft_tokenizer_load(const char *path, peft_tokenizer **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!path) return tk_err(err, errlen, PEFT_EINVAL, "peft_tokenizer_load: NULL path");
    struct stat st;
    if (stat(path, &st)) return tk_err(err, errlen, PEFT_EIO, "%s: %s", path, strerror(errno));
    size_t len = strlen(path);
    char *file = malloc(len + 32), *config = malloc(len + 32);
    if (!file || !config) {
        free(file);
        free(config);
        return tk_oom(err, errlen);
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(file, len + 32, "%s/tokenizer.json", path);
        snprintf(config, len + 32, "%s/tokenizer_config.json", path);
    } else {
        snprintf(file, len + 32, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(config, len + 32, "%.*s/tokenizer_config.json", (int)(slash - path), path);
        else snprintf(config, len + 32, "tokenizer_config.json");
    }
    char *text = NULL;
    int rc = read_file(file, &text, err, errlen);
    if (!rc) rc = peft_tokenizer_from_json(text, file, out, err, errlen);
    if (!rc && (rc = config_specials(*out, config, err, errlen))) {
        peft_tokenizer_free(*out);
        *out = NULL;
    }
    free(text);
    free(file);
    free(config);
    return rc;
}

/* ---- lookups ---- */
const char *tk_token_of(const peft_tokenizer *tk, int32_t id, int for_decode)
{
    for (size_t i = 0; i < tk->n_added; i++)
        if (tk->added[i].id == id) return for_decode ? tk->added[i].decoded : tk->added[i].content;
    if (id >= 0 && id < tk->model.n_ids) return tk->model.id_tok[id];
    return NULL;
}

int32_t peft_tokenizer_vocab_size(const peft_tokenizer *tk)
{
    return tk ? tk->vocab_size : 0;
}

int32_t peft_tokenizer_token_to_id(const peft_tokenizer *tk, const char *token)
{
    if (!tk || !token) return -1;
    int32_t a = tk_strmap_get(&tk->added_map, token, strlen(token));
    if (a >= 0) return tk->added[a].id;
    return tk_strmap_get(&tk->model.vocab, token, strlen(token));
}

const char *peft_tokenizer_id_to_token(const peft_tokenizer *tk, int32_t id)
{
    return tk ? tk_token_of(tk, id, 0) : NULL;
}

const peft_tokenizer_special *peft_tokenizer_special_ids(const peft_tokenizer *tk)
{
    return tk ? &tk->special : NULL;
}

const char *peft_tokenizer_model_type(const peft_tokenizer *tk)
{
    if (!tk) return "BPE";
    switch (tk->model.type) {
    case TK_MODEL_WORDPIECE: return "WordPiece";
    case TK_MODEL_UNIGRAM: return "Unigram";
    case TK_MODEL_WORDLEVEL: return "WordLevel";
    default: return "BPE";
    }
}

int peft_tokenizer_text_hook(void *ud, peft_ctx *ctx, const char *where, const char *text,
                             int32_t **ids, size_t *n)
{
    (void)ud;
    char err[1024] = "";
    peft_tokenizer *tk = NULL;
    int rc = peft_tokenizer_load(where, &tk, err, sizeof err);
    if (!rc) rc = peft_tokenizer_encode(tk, text, (size_t)-1, 1, ids, n, err, sizeof err);
    peft_tokenizer_free(tk);
    return rc ? peft_set_error(ctx, rc < 0 ? rc : PEFT_EINVAL, "%s", err) : PEFT_OK;
}

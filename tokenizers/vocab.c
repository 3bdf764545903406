/* tokenizer_vocab.c — a model's vocabulary ({"token": id, ...} in tokenizer.json's "model"):
 * token -> id hash map and id -> token array (pointing into the map's keys), shared by the BPE,
 * WordPiece and WordLevel models; and freeing a model. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

/* one token of the vocab object, waiting in a block for its store */
typedef struct entry { const char *k; size_t len; uint32_t h; int32_t id; } entry;
#define VOCAB_BLOCK 32

/* the block's tokens into the map (their slots fetched into the cache first: a 256k map does not
 * fit it) and into id_tok (the first token seen for an id keeps it), the array grown only when an
 * id passes its end and never past the density limit */
static int store_block(tk_model *m, const entry *e, size_t n, int64_t limit, size_t *cap)
{
    for (size_t i = 0; i < n; i++) tk_strmap_prefetch(&m->vocab, e[i].h);
    for (size_t i = 0; i < n; i++) {
        const char *key;
        const int32_t id = e[i].id;
        if (tk_strmap_put_h(&m->vocab, e[i].h, e[i].k, e[i].len, id, &key)) return PEFT_ENOMEM;
        if (id >= limit) continue;
        if ((size_t)id >= *cap) {
            size_t ncap = *cap * 2 > (size_t)id + 1 ? *cap * 2 : (size_t)id + 1;
            if (ncap > (size_t)limit) ncap = (size_t)limit;
            const char **t = realloc(m->id_tok, ncap * sizeof *t);
            if (!t) return PEFT_ENOMEM;
            memset(t + *cap, 0, (ncap - *cap) * sizeof *t);
            m->id_tok = t;
            *cap = ncap;
        }
        if (!m->id_tok[id]) m->id_tok[id] = key;
    }
    return 0;
}

/* one pass over the object, in blocks of VOCAB_BLOCK tokens: the map sized once for the count; a
 * file with ids beyond the density limit is refused after the pass */
int tk_model_parse_vocab(const json_t *vocab, const char *where, tk_model *m, char *err, size_t errlen)
{
    if (!json_is_object(vocab))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab: expected an object {\"token\": id}", where);
    const char *k;
    json_t *v;
    int64_t max = -1;
    const size_t count = json_object_size(vocab);
    const int64_t limit = 16 * (int64_t)count + 1024; /* ids >= limit: not a dense vocabulary */
    size_t cap = count, n = 0;
    entry block[VOCAB_BLOCK];
    if (tk_strmap_reserve(&m->vocab, count) || (cap && !(m->id_tok = calloc(cap, sizeof *m->id_tok))))
        return tk_oom(err, errlen);
    json_object_foreach((json_t *)vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX)
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab[\"%.60s\"]: expected an id in [0, 2^31-1)", where, k);
        const int64_t id = json_integer_value(v);
        if (id > max) max = id;
        const size_t len = strlen(k);
        block[n++] = (entry){k, len, tk_strmap_hash(k, len, NULL, 0), (int32_t)id};
        if (n == VOCAB_BLOCK) {
            if (store_block(m, block, n, limit, &cap)) return tk_oom(err, errlen);
            n = 0;
        }
    }
    if (store_block(m, block, n, limit, &cap)) return tk_oom(err, errlen);
    if (max >= limit)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab: ids up to %lld for %zu tokens: expected dense ids",
                      where, (long long)max, count);
    m->n_ids = (int32_t)(max + 1);
    return 0;
}

void tk_model_free(tk_model *m)
{
    tk_strmap_free(&m->vocab);
    free(m->id_tok); /* its strings are the vocabulary's keys */
    free(m->unk_token);
    tk_pairmap_free(&m->merges);
    free(m->cont_prefix);
    free(m->eow_suffix);
    free(m->wp_prefix);
    free(m->scores);
    memset(m, 0, sizeof *m);
}

int tk_model_word(const tk_model *m, const char *w, size_t len, tk_ids *out)
{
    switch (m->type) {
    case TK_MODEL_WORDPIECE: return tk_wordpiece_word(m, w, len, out);
    case TK_MODEL_UNIGRAM: return tk_unigram_word(m, w, len, out);
    case TK_MODEL_WORDLEVEL: return tk_wordlevel_word(m, w, len, out);
    default: return tk_bpe_word(m, w, len, out);
    }
}

/* tokenizer_vocab.c — a model's vocabulary ({"token": id, ...} in tokenizer.json's "model"):
 * token -> id hash map and id -> token array, shared by the BPE and WordPiece models; and
 * freeing a model. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

int tk_model_parse_vocab(const json_t *vocab, const char *where, tk_model *m, char *err, size_t errlen)
{
    if (!json_is_object(vocab))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab: expected an object {\"token\": id}", where);
    const char *k;
    json_t *v;
    int64_t max = -1;
    json_object_foreach((json_t *)vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX)
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab[\"%.60s\"]: expected an id in [0, 2^31-1)", where, k);
        if (json_integer_value(v) > max) max = json_integer_value(v);
    }
    if (max >= 16 * (int64_t)json_object_size(vocab) + 1024)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab: ids up to %lld for %zu tokens: expected dense ids",
                      where, (long long)max, json_object_size(vocab));
    m->n_ids = (int32_t)(max + 1);
    if (m->n_ids && !(m->id_tok = calloc((size_t)m->n_ids, sizeof *m->id_tok))) return tk_oom(err, errlen);
    json_object_foreach((json_t *)vocab, k, v) {
        int32_t id = (int32_t)json_integer_value(v);
        size_t len = strlen(k);
        if (tk_strmap_put(&m->vocab, k, len, id)) return tk_oom(err, errlen);
        if (!m->id_tok[id] && !(m->id_tok[id] = strdup(k))) return tk_oom(err, errlen);
    }
    return 0;
}

void tk_model_free(tk_model *m)
{
    tk_strmap_free(&m->vocab);
    for (int32_t i = 0; i < m->n_ids; i++) free(m->id_tok[i]);
    free(m->id_tok);
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

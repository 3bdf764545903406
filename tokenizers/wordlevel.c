/* wordlevel.c — the WordLevel model of tokenizer.json: each pre-tokenized word is one token, its
 * id from the vocabulary, else unk_token's (HF: an error when unk_token is not in the vocabulary). */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

int tk_wordlevel_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen)
{
    m->type = TK_MODEL_WORDLEVEL;
    m->unk_id = -1;
    int rc = tk_model_parse_vocab(json_object_get(j, "vocab"), where, m, err, errlen);
    if (rc) return rc;
    const json_t *unk = json_object_get(j, "unk_token");
    if (unk && !json_is_null(unk) && !json_is_string(unk))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.unk_token: expected a string", where);
    if (!(m->unk_token = strdup(json_is_string(unk) ? json_string_value(unk) : "<unk>"))) return tk_oom(err, errlen);
    m->unk_id = tk_strmap_get(&m->vocab, m->unk_token, strlen(m->unk_token));
    return 0;
}

int tk_wordlevel_word(const tk_model *m, const char *w, size_t len, tk_ids *out)
{
    if (!len) return 0;
    int32_t id = tk_strmap_get(&m->vocab, w, len);
    if (id < 0) id = m->unk_id;
    if (id < 0) return PEFT_EINVAL;
    return tk_ids_push(out, id);
}

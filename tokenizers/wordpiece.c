/* tokenizer_wordpiece.c — the WordPiece model of tokenizer.json (BERT): greedy longest match
 * first from the start of the word, pieces after the first looked up with the
 * continuing_subword_prefix ("##"); a word with a part that matches nothing, or longer than
 * max_input_chars_per_word characters, is the single unk token. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

int tk_wordpiece_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen)
{
    m->type = TK_MODEL_WORDPIECE;
    m->unk_id = -1;
    int rc = tk_model_parse_vocab(json_object_get(j, "vocab"), where, m, err, errlen);
    if (rc) return rc;
    const json_t *unk = json_object_get(j, "unk_token"), *pre = json_object_get(j, "continuing_subword_prefix"),
                 *mx = json_object_get(j, "max_input_chars_per_word");
    if (unk && !json_is_string(unk)) return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.unk_token: expected a string", where);
    if (pre && !json_is_string(pre))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.continuing_subword_prefix: expected a string", where);
    if (mx && (!json_is_integer(mx) || json_integer_value(mx) < 0))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.max_input_chars_per_word: expected a non-negative integer", where);
    m->unk_token = strdup(unk ? json_string_value(unk) : "[UNK]");
    m->wp_prefix = strdup(pre ? json_string_value(pre) : "##");
    if (!m->unk_token || !m->wp_prefix) return tk_oom(err, errlen);
    m->max_chars = mx ? json_integer_value(mx) : 100;
    m->unk_id = tk_strmap_get(&m->vocab, m->unk_token, strlen(m->unk_token));
    if (m->unk_id < 0)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.unk_token \"%.60s\" is not in the vocabulary", where, m->unk_token);
    return 0;
}

int tk_wordpiece_word(const tk_model *m, const char *w, size_t len, tk_ids *out)
{
    if (!len) return 0;
    int64_t chars = 0;
    for (size_t i = 0; i < len; i += tk_utf8_len(w + i, len - i)) chars++;
    if (chars > m->max_chars) return tk_ids_push(out, m->unk_id);
    size_t lp = strlen(m->wp_prefix);
    char *buf = malloc(lp + len + 1);
    if (!buf) return PEFT_ENOMEM;
    memcpy(buf, m->wp_prefix, lp);
    size_t n0 = out->n, start = 0;
    int rc = 0, bad = 0;
    while (start < len && !rc) {
        size_t end = len;
        int32_t id = -1;
        while (start < end) {
            const char *s = w + start;
            size_t n = end - start;
            if (start > 0) { /* prefix + piece */
                memcpy(buf + lp, w + start, n);
                s = buf;
                n += lp;
            }
            if ((id = tk_strmap_get(&m->vocab, s, n)) >= 0) break;
            size_t back = 1; /* step back over the last character */
            while (back < end - start && ((unsigned char)w[end - back] & 0xC0) == 0x80) back++;
            end -= back;
        }
        if (id < 0) {
            bad = 1;
            break;
        }
        rc = tk_ids_push(out, id);
        start = end;
    }
    free(buf);
    if (rc) return rc;
    if (bad) {
        out->n = n0;
        return tk_ids_push(out, m->unk_id);
    }
    return 0;
}

/* tokenizer_encode.c — text to ids, HF's pipeline: UTF-8 (invalid bytes -> U+FFFD) -> split out
 * the added tokens matched in the raw text (normalized: false) -> normalize each remaining piece
 * -> split out the added tokens matched in the normalized text (normalized: true) ->
 * pre-tokenize into words -> the model on each word -> the post-processor's special tokens. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

/* Does added token t match at c[i]? */
static int match_at(const tk_cps *pat, const uint32_t *c, size_t n, size_t i)
{
    return pat->n && i + pat->n <= n && !memcmp(c + i, pat->c, pat->n * sizeof *c);
}

/* Splits `in` on the added tokens whose `normalized` flag equals norm: leftmost-longest matches
 * (non-overlapping, as Aho-Corasick's leftmost-longest iterator), with single_word, lstrip and
 * rstrip applied as HF's AddedVocabulary::find_matches. Pieces go to out. */
static int split_added(const peft_tokenizer *tk, const tk_piece *in, int norm, tk_pieces *out)
{
    const uint32_t *c = in->t.c;
    size_t n = in->t.n, start_offset = 0, i = 0;
    int rc = 0;
    while (i < n && !rc) {
        const tk_added *best = NULL;
        /* the tokens whose pattern starts with c[i]: a range of the first-code-point index */
        const uint32_t *fc = tk->first_cp[norm];
        size_t lo = 0, hi = tk->n_first[norm];
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (fc[mid] < c[i]) lo = mid + 1;
            else hi = mid;
        }
        for (size_t k = lo; k < tk->n_first[norm] && fc[k] == c[i]; k++) {
            const tk_added *a = &tk->added[tk->by_first[norm][k]];
            const tk_cps *pat = norm ? &a->norm : &a->raw;
            /* the longest; among equal lengths the first in the file, as before */
            if (match_at(pat, c, n, i) && (!best || pat->n > (norm ? best->norm.n : best->raw.n) ||
                                           (pat->n == (norm ? best->norm.n : best->raw.n) && a < best)))
                best = a;
        }
        if (!best) {
            i++;
            continue;
        }
        size_t start = i, stop = i + (norm ? best->norm.n : best->raw.n);
        i = stop; /* the next search starts after this match, used or not */
        if (best->single_word) {
            int start_space = start == 0 || !tk_is_word(c[start - 1]);
            int stop_space = stop == n || !tk_is_word(c[stop]);
            if (!start_space || !stop_space) continue;
        }
        if (best->lstrip) {
            size_t s = start;
            while (s > 0 && tk_is_space(c[s - 1])) s--;
            start = s > start_offset ? s : start_offset;
        }
        if (best->rstrip) {
            while (stop < n && tk_is_space(c[stop])) stop++;
            i = stop;
        }
        if (start_offset < start) rc = tk_pieces_push(out, c + start_offset, start - start_offset, -1, in->at_start && start_offset == 0);
        if (!rc) rc = tk_pieces_push(out, c + start, stop - start, best->id, in->at_start && start == 0);
        start_offset = stop;
    }
    if (!rc && start_offset < n) rc = tk_pieces_push(out, c + start_offset, n - start_offset, -1, in->at_start && start_offset == 0);
    return rc;
}

/* one piece of plain text: pre-tokenize, then the model on each word */
static int encode_text(const peft_tokenizer *tk, const tk_piece *piece, tk_ids *ids, char *err, size_t errlen)
{
    tk_pieces words = {0};
    tk_str w = {0};
    int rc = tk_pretokenize(tk->pretok, piece, &words);
    for (size_t i = 0; i < words.n && !rc; i++) {
        w.n = 0;
        rc = tk_utf8_from_cps(words.p[i].t.c, words.p[i].t.n, &w);
        if (!rc) rc = tk_model_word(&tk->model, w.s, w.n, ids);
    }
    tk_pieces_free(&words);
    free(w.s);
    if (rc == PEFT_EINVAL)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.unk_token \"%s\" is not in the vocabulary (needed for an unknown character)",
                      tk->name, tk->model.unk_token ? tk->model.unk_token : "");
    if (rc == TK_E_REGEX_LIMIT)
        return tk_err(err, errlen, PEFT_EINVAL, "%s: a pre-tokenizer's regular expression exceeded its match limit "
                      "on this text (backtracking or memory); the text was not encoded", tk->name);
    return rc ? tk_oom(err, errlen) : 0;
}

int peft_tokenizer_encode(const peft_tokenizer *tk, const char *text, size_t len, int add_special_tokens,
                          int32_t **ids_out, size_t *n_out, char *err, size_t errlen)
{
    *ids_out = NULL;
    *n_out = 0;
    if (!tk || !text) return tk_err(err, errlen, PEFT_EINVAL, "peft_tokenizer_encode: NULL tokenizer or text");
    if (len == (size_t)-1) len = strlen(text);
    tk_piece whole = {{0}, -1, 1};
    tk_pieces raw = {0}, normd = {0};
    tk_cps nbuf = {0};
    tk_ids ids = {0}, out = {0};
    int rc = tk_utf8_decode(text, len, &whole.t) ? tk_oom(err, errlen) : 0;
    if (!rc && split_added(tk, &whole, 0, &raw)) rc = tk_oom(err, errlen);
    for (size_t i = 0; i < raw.n && !rc; i++) {
        const tk_piece *p = &raw.p[i];
        if (p->id >= 0) {
            if (tk_ids_push(&ids, p->id)) rc = tk_oom(err, errlen);
            continue;
        }
        tk_piece np = {{0}, -1, p->at_start};
        if (tk_normalize(tk->normalizer, &p->t, &nbuf)) {
            rc = tk_oom(err, errlen);
            break;
        }
        np.t = nbuf;
        tk_pieces_free(&normd);
        if (split_added(tk, &np, 1, &normd)) rc = tk_oom(err, errlen);
        for (size_t k = 0; k < normd.n && !rc; k++) {
            if (normd.p[k].id >= 0) rc = tk_ids_push(&ids, normd.p[k].id) ? tk_oom(err, errlen) : 0;
            else rc = encode_text(tk, &normd.p[k], &ids, err, errlen);
        }
    }
    if (!rc) {
        if (add_special_tokens) rc = tk_post_apply(tk->post, ids.v, ids.n, &out) ? tk_oom(err, errlen) : 0;
        else {
            out = ids;
            memset(&ids, 0, sizeof ids);
        }
    }
    free(whole.t.c);
    free(nbuf.c);
    tk_pieces_free(&raw);
    tk_pieces_free(&normd);
    free(ids.v);
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids_out = out.v;
    *n_out = out.n;
    return 0;
}

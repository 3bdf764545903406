/* unigram.c — the Unigram model of tokenizer.json (T5, ALBERT, XLM-R, mBART: SentencePiece's
 * unigram language model), as HF's Unigram::encode_optimized: Viterbi over the word's byte
 * positions, each vocabulary piece that starts at a position (shortest first, so that a tie keeps
 * the shorter piece, as HF's trie walk does) scored by its log-probability; a character no piece
 * covers becomes unk with score min_score - 10; consecutive unks are fused into one (HF's Unigram
 * always fuses). A piece that is not in the vocabulary (a fused unk) is unk_id, or its bytes as
 * <0xNN> tokens with byte_fallback. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

#define UNK_PENALTY 10.0

int tk_unigram_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen)
{
    m->type = TK_MODEL_UNIGRAM;
    m->unk_id = -1;
    const json_t *vocab = json_object_get(j, "vocab"), *unk = json_object_get(j, "unk_id");
    if (!json_is_array(vocab))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab: expected a list of [\"piece\", score]", where);
    size_t n = json_array_size(vocab);
    if (n >= INT32_MAX) return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab: too many pieces", where);
    m->n_ids = (int32_t)n;
    if (n && (!(m->id_tok = calloc(n, sizeof *m->id_tok)) || !(m->scores = malloc(n * sizeof *m->scores)) ||
              tk_strmap_reserve(&m->vocab, n)))
        return tk_oom(err, errlen);
    m->min_score = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(vocab, i), *p = json_array_get(e, 0), *s = json_array_get(e, 1);
        if (json_array_size(e) != 2 || !json_is_string(p) || !json_is_number(s))
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.vocab[%zu]: expected [\"piece\", score]", where, i);
        const char *t = json_string_value(p);
        size_t len = json_string_length(p);
        if (tk_strmap_put(&m->vocab, t, len, (int32_t)i, &m->id_tok[i])) return tk_oom(err, errlen);
        m->scores[i] = json_number_value(s);
        if (i == 0 || m->scores[i] < m->min_score) m->min_score = m->scores[i];
        if (len > m->max_piece) m->max_piece = len;
    }
    if (unk && !json_is_null(unk)) {
        if (!json_is_integer(unk) || json_integer_value(unk) < 0 || json_integer_value(unk) >= (json_int_t)n)
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.unk_id: expected an index into the %zu pieces", where, n);
        m->unk_id = (int32_t)json_integer_value(unk);
        if (!(m->unk_token = strdup(m->id_tok[m->unk_id]))) return tk_oom(err, errlen);
    }
    const json_t *bf = json_object_get(j, "byte_fallback");
    m->byte_fallback = json_is_true(bf);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tk_strmap_get(&m->vocab, name, 6);
    }
    return 0;
}

typedef struct node { double score; size_t start; int32_t id; int set; } node;

/* one piece s[0..len) of the best path -> ids */
static int emit(const tk_model *m, const char *s, size_t len, tk_ids *out)
{
    int32_t id = tk_strmap_get(&m->vocab, s, len);
    if (id >= 0) return tk_ids_push(out, id);
    if (m->byte_fallback) {
        int ok = 1;
        for (size_t b = 0; b < len && ok; b++) ok = m->byte_ids[(unsigned char)s[b]] >= 0;
        if (ok) {
            for (size_t b = 0; b < len; b++)
                if (tk_ids_push(out, m->byte_ids[(unsigned char)s[b]])) return PEFT_ENOMEM;
            return 0;
        }
    }
    if (m->unk_id < 0) return PEFT_EINVAL; /* HF: MissingUnkId */
    return tk_ids_push(out, m->unk_id);
}

int tk_unigram_word(const tk_model *m, const char *w, size_t len, tk_ids *out)
{
    if (!len) return 0;
    node *best = calloc(len + 1, sizeof *best);
    size_t *ends = NULL, nends = 0;
    if (!best) return PEFT_ENOMEM;
    best[0].set = 1;
    double unk_score = m->min_score - UNK_PENALTY;
    int rc = 0;
    for (size_t at = 0; at < len && !rc;) {
        size_t mb = tk_utf8_len(w + at, len - at);
        double here = best[at].score;
        int single = 0;
        /* every piece starting here, shortest first: the prefixes that end on a character boundary */
        for (size_t e = at + mb; e <= len && e - at <= m->max_piece; e += e < len ? tk_utf8_len(w + e, len - e) : 1) {
            int32_t id = tk_strmap_get(&m->vocab, w + at, e - at);
            if (id >= 0) {
                double cand = m->scores[id] + here;
                if (!best[e].set || cand > best[e].score) best[e] = (node){cand, at, id, 1};
                if (e - at == mb) single = 1;
            }
            if (e == len) break;
        }
        if (!single) {
            if (m->unk_id < 0) {
                rc = PEFT_EINVAL;
                break;
            }
            double cand = unk_score + here;
            if (!best[at + mb].set || cand > best[at + mb].score) best[at + mb] = (node){cand, at, m->unk_id, 1};
        }
        at += mb;
    }
    /* back from the end; the path's pieces come out last first */
    if (!rc && !(ends = malloc((len + 1) * sizeof *ends))) rc = PEFT_ENOMEM;
    for (size_t e = len; e > 0 && !rc; e = best[e].start) ends[nends++] = e;
    size_t fuse_from = (size_t)-1; /* start of a run of unks being fused, in forward order */
    for (size_t k = nends; k-- > 0 && !rc;) {
        size_t e = ends[k], s = best[e].start;
        int is_unk = m->unk_id >= 0 && best[e].id == m->unk_id;
        if (is_unk) {
            if (fuse_from == (size_t)-1) fuse_from = s;
            if (k == 0 || !(best[ends[k - 1]].id == m->unk_id)) { /* the run ends here */
                rc = emit(m, w + fuse_from, e - fuse_from, out);
                fuse_from = (size_t)-1;
            }
        } else {
            rc = emit(m, w + s, e - s, out);
        }
    }
    free(ends);
    free(best);
    return rc;
}

/* runner_data.c — the runner's data: JSONL files of examples per task (token ids, or text
 * through the model's tokenizer; an optional task_id per example) and padded batches of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runner/runner.h"

#define IGNORE (-100)

typedef struct lctx {
    const char *path;
    long line;
    char *err;
    size_t errlen;
    int64_t vocab;
    const peft_tokenizer *tk;
} lctx;

static int fail(const lctx *c, const char *key, const char *fmt, const char *detail)
{
    char what[512];
    snprintf(what, sizeof what, fmt, detail);
    if (key) snprintf(c->err, c->errlen, "%s:%ld: '%s': %s", c->path, c->line, key, what);
    else snprintf(c->err, c->errlen, "%s:%ld: %s", c->path, c->line, what);
    return -1;
}

/* a JSON list of ints (allow_ignore: -100 allowed) -> owned array */
static int read_ids(const lctx *c, json_t *v, const char *key, int allow_ignore, int check_vocab,
                    int32_t **out, int *n)
{
    if (!json_is_array(v)) return fail(c, key, "expected a list of integers%s", "");
    size_t k = json_array_size(v);
    if (k > (1u << 24)) return fail(c, key, "more than 16M entries%s", "");
    int32_t *a = malloc((k ? k : 1) * sizeof *a);
    if (!a) return fail(c, key, "out of memory%s", "");
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(v, i);
        json_int_t x = json_is_integer(e) ? json_integer_value(e) : -1000;
        int ok = json_is_integer(e) && ((x >= 0 && (!check_vocab || x < c->vocab)) || (allow_ignore && x == IGNORE));
        if (!ok) {
            char d[160];
            snprintf(d, sizeof d, "entry %zu is %s (expected %s)", i,
                     json_is_integer(e) ? "out of range" : "not an integer",
                     check_vocab ? "a token id below the vocabulary size" : "a non-negative integer");
            if (json_is_integer(e) && check_vocab)
                snprintf(d + strlen(d), sizeof d - strlen(d), ": %lld, vocabulary %lld", (long long)x, (long long)c->vocab);
            free(a);
            return fail(c, key, "%s", d);
        }
        a[i] = (int32_t)x;
    }
    *out = a;
    *n = (int)k;
    return 0;
}

/* text (through the tokenizer) or a list of ids */
static int read_tokens(const lctx *c, json_t *v, const char *key, int add_special, int32_t **out,
                       int *n)
{
    if (!json_is_string(v)) return read_ids(c, v, key, 0, 1, out, n);
    if (!c->tk) return fail(c, key, "text needs a tokenizer.json in the base model directory%s", "");
    char terr[512];
    size_t k;
    if (peft_tokenizer_encode(c->tk, json_string_value(v), json_string_length(v), add_special, out,
                              &k, terr, sizeof terr))
        return fail(c, key, "%s", terr);
    if (!*out && !(*out = malloc(sizeof **out))) return fail(c, key, "out of memory%s", "");
    for (size_t i = 0; i < k; i++)
        if ((*out)[i] >= c->vocab) {
            free(*out);
            *out = NULL;
            return fail(c, key, "the tokenizer gives ids beyond the model's vocabulary%s", "");
        }
    *n = (int)k;
    return 0;
}

static int get_index(const lctx *c, json_t *o, const char *key, int64_t below, int32_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v) return fail(c, key, "missing (an integer)%s", "");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= below) {
        char d[96];
        snprintf(d, sizeof d, "expected an integer in [0, %lld)", (long long)below);
        return fail(c, key, "%s", d);
    }
    *out = (int32_t)json_integer_value(v);
    return 0;
}

static int parse_example(const lctx *c, json_t *o, int task, int64_t max_len, int64_t num_labels,
                         runner_example *e)
{
    json_t *ids = json_object_get(o, "input_ids"), *text = json_object_get(o, "text");
    json_t *prompt = json_object_get(o, "prompt"), *compl = json_object_get(o, "completion");
    int pc = task == RUNNER_TASK_CAUSAL_LM && (prompt || compl);
    if (!!ids + !!text + pc != 1)
        return fail(c, NULL, "%s", task == RUNNER_TASK_CAUSAL_LM
                                       ? "expected one of \"input_ids\", \"text\", or \"prompt\" with \"completion\""
                                       : "expected one of \"input_ids\" or \"text\"");
    if (pc) {
        int32_t *p = NULL, *q = NULL;
        int np = 0, nq = 0;
        if (!prompt || !compl) return fail(c, prompt ? "completion" : "prompt", "missing (it goes with '%s')", prompt ? "prompt" : "completion");
        if (read_tokens(c, prompt, "prompt", 1, &p, &np)) return -1;
        if (read_tokens(c, compl, "completion", 0, &q, &nq)) { free(p); return -1; }
        e->ids = malloc((size_t)(np + nq + 1) * sizeof *e->ids);
        e->labels = malloc((size_t)(np + nq + 1) * sizeof *e->labels);
        if (!e->ids || !e->labels) { free(p); free(q); return fail(c, NULL, "out of memory%s", ""); }
        for (int i = 0; i < np + nq; i++) {
            e->ids[i] = i < np ? p[i] : q[i - np];
            e->labels[i] = i < np ? IGNORE : q[i - np];
        }
        e->n = e->n_labels = np + nq;
        free(p);
        free(q);
    } else if (ids) {
        if (read_ids(c, ids, "input_ids", 0, 1, &e->ids, &e->n)) return -1;
    } else if (read_tokens(c, text, "text", 1, &e->ids, &e->n)) {
        return -1;
    }
    if (e->n == 0) return fail(c, NULL, "an example without tokens%s", "");
    if (json_object_get(o, "task_id") && get_index(c, o, "task_id", INT32_MAX, &e->task_id))
        return -1;
    json_t *lab = json_object_get(o, "labels");
    switch (task) {
    case RUNNER_TASK_CAUSAL_LM:
        if (lab && !pc) {
            if (read_ids(c, lab, "labels", 1, 1, &e->labels, &e->n_labels)) return -1;
            if (e->n_labels != e->n) return fail(c, "labels", "expected one label per input token%s", "");
        }
        break;
    case RUNNER_TASK_SEQ_CLS:
        if (get_index(c, o, "label", num_labels, &e->label)) return -1;
        break;
    case RUNNER_TASK_TOKEN_CLS:
        if (!lab) return fail(c, "labels", "missing (one class per token, -100 = ignored)%s", "");
        if (read_ids(c, lab, "labels", 1, 0, &e->labels, &e->n_labels)) return -1;
        if (e->n_labels != e->n) return fail(c, "labels", "expected one label per input token%s", "");
        for (int i = 0; i < e->n_labels; i++)
            if (e->labels[i] >= num_labels) return fail(c, "labels", "a class beyond the model's num_labels%s", "");
        break;
    case RUNNER_TASK_QA:
        if (get_index(c, o, "start_position", e->n, &e->start) || get_index(c, o, "end_position", e->n, &e->end))
            return -1;
        if (e->end < e->start) return fail(c, "end_position", "is before start_position%s", "");
        break;
    case RUNNER_TASK_SEQ2SEQ: {
        json_t *tgt = json_object_get(o, "target");
        if (!!lab + !!tgt != 1) return fail(c, NULL, "expected one of \"labels\" (target ids) or \"target\" (text)%s", "");
        if (lab ? read_ids(c, lab, "labels", 0, 1, &e->labels, &e->n_labels)
                : read_tokens(c, tgt, "target", 1, &e->labels, &e->n_labels))
            return -1;
        if (e->n_labels == 0) return fail(c, lab ? "labels" : "target", "is empty%s", "");
        if (e->n_labels > max_len) e->n_labels = (int)max_len;
        break;
    }
    }
    if (e->n > max_len) { /* truncate from the right; QA spans must stay inside */
        if (task == RUNNER_TASK_QA && e->end >= max_len)
            return fail(c, "end_position", "lies beyond max_length%s", "");
        e->n = (int)max_len;
        if (task != RUNNER_TASK_SEQ2SEQ && e->labels) e->n_labels = (int)max_len;
    }
    return 0;
}

static void free_example(runner_example *e)
{
    free(e->ids);
    free(e->labels);
}

int runner_data_load(const char *path, int task, int64_t max_length, int64_t vocab,
                     int64_t num_labels, const peft_tokenizer *tk, runner_dataset *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = runner_read_file(path, &len, err, errlen);
    if (!text) return -1;
    lctx c = {path, 0, err, errlen, vocab, tk};
    size_t cap = 0;
    int rc = -1;
    for (char *p = text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        c.line++;
        char *s = p;
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        if (!*s) continue;
        json_error_t je;
        json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, &je);
        if (!o || !json_is_object(o)) {
            char d[256];
            snprintf(d, sizeof d, "%s", o ? "expected a JSON object" : je.text);
            json_decref(o);
            fail(&c, NULL, "invalid JSON line: %s", d);
            goto out;
        }
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            runner_example *ex = realloc(out->ex, nc * sizeof *ex);
            if (!ex) { json_decref(o); fail(&c, NULL, "out of memory%s", ""); goto out; }
            out->ex = ex;
            cap = nc;
        }
        runner_example *e = &out->ex[out->n];
        memset(e, 0, sizeof *e);
        int bad = parse_example(&c, o, task, max_length, num_labels, e);
        json_decref(o);
        if (bad) { free_example(e); goto out; }
        out->n++;
        if (task == RUNNER_TASK_SEQ_CLS || task == RUNNER_TASK_QA) out->n_label_tokens++;
        else if (!e->labels) out->n_label_tokens += e->n - 1;
        else
            for (int i = task == RUNNER_TASK_CAUSAL_LM; i < e->n_labels; i++) out->n_label_tokens += e->labels[i] != IGNORE;
    }
    if (out->n == 0) {
        snprintf(err, errlen, "%s: no examples (expected one JSON object per line)", path);
        goto out;
    }
    rc = 0;
out:
    free(text);
    if (rc) runner_data_free(out);
    return rc;
}

void runner_data_free(runner_dataset *d)
{
    for (size_t i = 0; i < d->n; i++) free_example(&d->ex[i]);
    free(d->ex);
    memset(d, 0, sizeof *d);
}

/* ---- batches -------------------------------------------------------------------------------- */

void runner_batch_free(runner_batch *b)
{
    free(b->ids);
    free(b->mask);
    free(b->labels);
    free(b->start);
    free(b->end);
    free(b->task_ids);
    memset(b, 0, sizeof *b);
}

int runner_batch_make(const runner_dataset *d, int task, const size_t *idx, int64_t B,
                      int32_t pad_id, runner_batch *b)
{
    memset(b, 0, sizeof *b);
    int64_t T = 1, L = 1;
    for (int64_t i = 0; i < B; i++) {
        const runner_example *e = &d->ex[idx[i]];
        if (e->n > T) T = e->n;
        if (task == RUNNER_TASK_SEQ2SEQ && e->n_labels > L) L = e->n_labels;
    }
    b->B = B, b->T = T, b->L = L;
    int64_t nl = task == RUNNER_TASK_SEQ_CLS ? B : task == RUNNER_TASK_SEQ2SEQ ? B * L : B * T;
    b->ids = malloc((size_t)(B * T) * sizeof *b->ids);
    b->mask = malloc((size_t)(B * T) * sizeof *b->mask);
    b->labels = malloc((size_t)nl * sizeof *b->labels);
    b->start = malloc((size_t)B * sizeof *b->start);
    b->end = malloc((size_t)B * sizeof *b->end);
    b->task_ids = malloc((size_t)B * sizeof *b->task_ids);
    if (!b->ids || !b->mask || !b->labels || !b->start || !b->end || !b->task_ids) {
        runner_batch_free(b);
        return -1;
    }
    for (int64_t i = 0; i < B; i++) {
        const runner_example *e = &d->ex[idx[i]];
        for (int64_t t = 0; t < T; t++) {
            int real = t < e->n;
            b->ids[i * T + t] = real ? e->ids[t] : pad_id;
            b->mask[i * T + t] = real;
            b->n_tokens += real;
            if (task == RUNNER_TASK_CAUSAL_LM || task == RUNNER_TASK_TOKEN_CLS)
                b->labels[i * T + t] = !real ? IGNORE : e->labels ? e->labels[t] : e->ids[t];
        }
        if (task == RUNNER_TASK_SEQ_CLS) b->labels[i] = e->label;
        if (task == RUNNER_TASK_SEQ2SEQ)
            for (int64_t t = 0; t < L; t++) b->labels[i * L + t] = t < e->n_labels ? e->labels[t] : IGNORE;
        b->start[i] = e->start;
        b->end[i] = e->end;
        b->task_ids[i] = e->task_id;
    }
    return 0;
}

void runner_batch_view(const runner_batch *b, int task, peft_model_inputs *in)
{
    memset(in, 0, sizeof *in);
    in->B = b->B;
    in->T = b->T;
    in->input_ids = b->ids;
    in->attention_mask = b->mask;
    in->task_ids = b->task_ids;
    if (task == RUNNER_TASK_QA) {
        in->start_positions = b->start;
        in->end_positions = b->end;
        return;
    }
    in->labels = b->labels;
    in->labels_len = task == RUNNER_TASK_SEQ_CLS ? 1 : task == RUNNER_TASK_SEQ2SEQ ? b->L : 0;
}

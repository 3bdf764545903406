/* gen_text.c — plain text in and out for `peft generate --text/--prompt`: the prompts encoded
 * with the model's tokenizer.json (special tokens added, as HF's tokenizer(text)), left-padded
 * into one batch with an attention mask; the new tokens decoded without special tokens. No chat
 * template: the prompt is taken as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/tokenizer.h"
#include "cli/gen_text.h"

int gen_text_inputs(const char *tok_path, const char *const *texts, int n, peft_inputs *in, peft_tokenizer **ptk)
{
    char err[1024];
    memset(in, 0, sizeof *in);
    if (peft_tokenizer_load(tok_path, ptk, err, sizeof err)) return cli_fail("%s", err);
    int32_t *ids[GEN_TEXT_MAX];
    size_t len[GEN_TEXT_MAX], T = 0;
    int rc = 0, k = 0;
    for (; k < n && !rc; k++) {
        if (peft_tokenizer_encode(*ptk, texts[k], (size_t)-1, 1, &ids[k], &len[k], err, sizeof err)) {
            rc = cli_fail("--text %d: %s", k + 1, err);
            break;
        }
        if (!len[k]) {
            free(ids[k]);
            rc = cli_fail("--text %d: the prompt encodes to no token", k + 1);
            break;
        }
        if (len[k] > T) T = len[k];
    }
    if (!rc) {
        const peft_tokenizer_special *sp = peft_tokenizer_special_ids(*ptk);
        int32_t pad = sp->pad >= 0 ? sp->pad : sp->eos >= 0 ? sp->eos : 0; /* masked out anyway */
        in->B = n;
        in->T = (int64_t)T;
        in->input_ids = malloc((size_t)n * T * sizeof *in->input_ids);
        in->attention_mask = malloc((size_t)n * T * sizeof *in->attention_mask);
        if (!in->input_ids || !in->attention_mask) rc = cli_fail("out of memory");
        for (int b = 0; b < n && !rc; b++) { /* left padding, as transformers' generate wants it */
            size_t off = T - len[b];
            for (size_t t = 0; t < T; t++) {
                in->input_ids[b * T + t] = t < off ? pad : ids[b][t - off];
                in->attention_mask[b * T + t] = t >= off;
            }
        }
    }
    for (int b = 0; b < k; b++) free(ids[b]); /* ids[0..k) were encoded */
    if (rc) {
        peft_inputs_free(in);
        peft_tokenizer_free(*ptk);
        *ptk = NULL;
    }
    return rc;
}

int gen_text_print(const peft_tokenizer *tk, const peft_gen_output *o, FILE *f)
{
    char err[1024];
    for (int64_t b = 0; b < o->B; b++) {
        char *text = NULL;
        size_t len = 0;
        int64_t n = o->lengths[b] < o->n_new ? o->lengths[b] : o->n_new;
        if (peft_tokenizer_decode(tk, o->tokens + b * o->n_new, (size_t)n, 1, &text, &len, err, sizeof err))
            return cli_fail("decoding row %lld: %s", (long long)b, err);
        fwrite(text, 1, len, f);
        fputc('\n', f);
        free(text);
    }
    return 0;
}

/* cmd_tokenize.c — `peft tokenize`: text -> token ids (or ids -> text) with a model's Hugging
 * Face tokenizer.json, the same ids as HF's tokenizers library. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "peft/tokenizer.h"

static const char *HELP =
    "usage: peft tokenize (--model DIR | --tokenizer FILE) (--text TEXT | --file PATH)\n"
    "                     [--no-special-tokens] [--tokens]\n"
    "       peft tokenize (--model DIR | --tokenizer FILE) --decode (--text IDS | --file PATH)\n"
    "                     [--skip-special-tokens]\n\n"
    "Encodes TEXT (or the file's contents) with DIR/tokenizer.json (or FILE) and prints the token\n"
    "ids on one line, special tokens included (<s> for Llama, [CLS] ... [SEP] for BERT) unless\n"
    "--no-special-tokens; --tokens prints one \"id<TAB>token\" line per token instead.\n"
    "With --decode, IDS is a list of ids (separated by spaces or commas, brackets allowed) and the\n"
    "decoded text is printed (--skip-special-tokens leaves the special tokens out).\n";

/* "[1, 2 3]" -> ids; 0, or 1 after printing what is wrong */
static int parse_ids(const char *s, int32_t **out, size_t *n)
{
    size_t cap = 64;
    int32_t *v = malloc(cap * sizeof *v);
    *n = 0;
    if (!v) return cli_fail("out of memory");
    while (*s) {
        if (strchr(" \t\r\n,[]", *s)) {
            s++;
            continue;
        }
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return cli_fail("--decode: \"%.20s\" is not a token id (expected non-negative integers)", s);
        }
        if (*n == cap) {
            int32_t *w = realloc(v, (cap *= 2) * sizeof *v);
            if (!w) {
                free(v);
                return cli_fail("out of memory");
            }
            v = w;
        }
        v[(*n)++] = (int32_t)x;
        s = end;
    }
    *out = v;
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *file = NULL, *text = NULL, *text_file = NULL;
    int decode = 0, special = 1, tokens = 0, skip = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(argv[i], "--decode")) decode = 1;
        else if (!strcmp(argv[i], "--no-special-tokens")) special = 0;
        else if (!strcmp(argv[i], "--skip-special-tokens")) skip = 1;
        else if (!strcmp(argv[i], "--tokens")) tokens = 1;
        else if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--tokenizer"))) file = v;
        else if ((v = cli_opt(argc, argv, &i, "--text"))) text = v;
        else if ((v = cli_opt(argc, argv, &i, "--file"))) text_file = v;
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!model == !file) { fputs(HELP, stderr); return cli_fail("give one of --model DIR or --tokenizer FILE"); }
    if (!text == !text_file) { fputs(HELP, stderr); return cli_fail("give one of --text or --file"); }
    char *owned = NULL;
    if (text_file && !(text = owned = cli_read_text(text_file))) return 1;
    char err[1024];
    peft_tokenizer *tk;
    if (peft_tokenizer_load(model ? model : file, &tk, err, sizeof err)) {
        free(owned);
        return cli_fail("%s", err);
    }
    int rc = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (decode) {
        char *out = NULL;
        size_t len = 0;
        if (!(rc = parse_ids(text, &ids, &n))) {
            if (peft_tokenizer_decode(tk, ids, n, skip, &out, &len, err, sizeof err)) rc = cli_fail("%s", err);
            else {
                fwrite(out, 1, len, stdout);
                fputc('\n', stdout);
            }
        }
        free(out);
    } else if (peft_tokenizer_encode(tk, text, (size_t)-1, special, &ids, &n, err, sizeof err)) {
        rc = cli_fail("%s", err);
    } else if (tokens) {
        for (size_t i = 0; i < n; i++) printf("%d\t%s\n", ids[i], peft_tokenizer_id_to_token(tk, ids[i]));
    } else {
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        fputc('\n', stdout);
    }
    free(ids);
    free(owned);
    peft_tokenizer_free(tk);
    return rc;
}

/* test_tokenizer.c — the tokenizers (core/tokenizer*.c) against Hugging Face's own tokenizers
 * library: for GPT-2 (byte-level BPE), Llama-2 (SentencePiece-style BPE with byte fallback, and
 * the same vocabulary under a Metaspace pre-tokenizer), bert-base-uncased (WordPiece) and a set
 * of small tokenizers that use the other supported parts, every test string's ids (with and
 * without special tokens) and decoded text must equal the reference made by
 * tests/tools/make-tokenizer-fixtures.js (files in tests/fixtures/tokenizers/). Also: invalid
 * UTF-8 (each bad sequence acts as U+FFFD, never a crash, random bytes fuzzed), lookups and
 * special ids, and bad tokenizer files refused with messages naming the file and key. */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "peft/peft.h"
#include "peft/tokenizer.h"
#include "testutil.h"

static char errbuf[1024];

/* tests/fixtures/tokenizers/<rel>: from the repo root (make check), or found from the binary's
 * place (build/tests/test_tokenizer -> ../../tests/...) */
static const char *tfix(const char *rel)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *b = bufs[next++ & 3];
    const char *env = getenv("PEFT_TOKENIZER_FIXTURES");
    struct stat st;
    if (env && *env) {
        snprintf(b, PATH_MAX, "%s/%s", env, rel);
        return b;
    }
    snprintf(b, PATH_MAX, "tests/fixtures/tokenizers/%s", rel);
    if (!stat(b, &st)) return b;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        snprintf(b, PATH_MAX, "%s/../../tests/fixtures/tokenizers/%s", dirname(exe), rel);
    }
    return b;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
    ck_assert_msg(j != NULL, "%s: %s (line %d)", path, je.text, je.line);
    return j;
}

static peft_tokenizer *load_tok(const char *rel)
{
    peft_tokenizer *tk = NULL;
    int rc = peft_tokenizer_load(tfix(rel), &tk, errbuf, sizeof errbuf);
    ck_assert_msg(rc == 0, "load %s: %s", rel, errbuf);
    return tk;
}

/* ids == the JSON list? */
static int ids_equal(const int32_t *ids, size_t n, const json_t *ref)
{
    if (json_array_size(ref) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(ref, i)) != ids[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n, const json_t *ref)
{
    fprintf(stderr, "  %s: got [", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, "%s%d", i ? ", " : "", ids[i]);
    fprintf(stderr, "]\n  %s: HF  [", what);
    for (size_t i = 0; i < json_array_size(ref) && i < 40; i++)
        fprintf(stderr, "%s%lld", i ? ", " : "", (long long)json_integer_value(json_array_get(ref, i)));
    fprintf(stderr, "]\n");
}

/* every case of a reference file against tk; returns the number of mismatching fields */
static int check_reference(peft_tokenizer *tk, const json_t *ref, const char *label)
{
    const json_t *cases = json_object_get(ref, "cases");
    ck_assert_msg(json_array_size(cases) > 0, "%s: no cases", label);
    int bad = 0, roundtrips = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *k = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(k, "text"));
        size_t tlen = json_string_length(json_object_get(k, "text")); /* may hold NUL */
        int32_t *ids = NULL, *plain = NULL;
        size_t n = 0, np = 0;
        ck_assert_int_eq(peft_tokenizer_encode(tk, text, tlen, 1, &ids, &n, errbuf, sizeof errbuf), 0);
        ck_assert_int_eq(peft_tokenizer_encode(tk, text, tlen, 0, &plain, &np, errbuf, sizeof errbuf), 0);
        if (!ids_equal(ids, n, json_object_get(k, "ids"))) {
            fprintf(stderr, "%s: case %zu \"%.60s\": ids differ\n", label, c, text);
            print_ids("ids", ids, n, json_object_get(k, "ids"));
            bad++;
        }
        if (!ids_equal(plain, np, json_object_get(k, "ids_plain"))) {
            fprintf(stderr, "%s: case %zu \"%.60s\": ids (no special tokens) differ\n", label, c, text);
            print_ids("ids_plain", plain, np, json_object_get(k, "ids_plain"));
            bad++;
        }
        const char *fields[2] = {"decoded", "decoded_skip_special"};
        for (int s = 0; s < 2; s++) {
            char *out = NULL;
            size_t olen;
            ck_assert_int_eq(peft_tokenizer_decode(tk, ids, n, s, &out, &olen, errbuf, sizeof errbuf), 0);
            const char *want = json_string_value(json_object_get(k, fields[s]));
            if (olen != json_string_length(json_object_get(k, fields[s])) || memcmp(out, want, olen)) {
                fprintf(stderr, "%s: case %zu \"%.60s\": %s differs:\n  got \"%s\"\n  HF  \"%s\"\n", label, c, text, fields[s], out, want);
                bad++;
            }
            free(out);
        }
        if (json_is_true(json_object_get(k, "roundtrip"))) { /* decode(encode(s)) == s where HF's does */
            char *out = NULL;
            size_t olen;
            ck_assert_int_eq(peft_tokenizer_decode(tk, plain, np, 0, &out, &olen, errbuf, sizeof errbuf), 0);
            if (olen != tlen || memcmp(out, text, tlen)) {
                fprintf(stderr, "%s: case %zu \"%.60s\": no round trip: \"%s\"\n", label, c, text, out);
                bad++;
            }
            roundtrips++;
            free(out);
        }
        free(ids);
        free(plain);
    }
    fprintf(stderr, "%s: %zu strings compared with HF tokenizers (%d round trips), %d mismatches\n", label,
            json_array_size(cases), roundtrips, bad);
    return bad;
}

/* A fixture directory as a model directory would hold it: the big tokenizer.json files are kept
 * xz-compressed in the repository (tokenizer.json.xz), so they are unpacked with
 * tokenizer_config.json into $PEFT_BUILD/fixtures-unpacked/DIR once (kept while newer than the
 * .xz: unpacking costs ~1 CPU-s a check; the files appear by rename, so suites running side by
 * side never read half a file). Returns the directory to load. */
static const char *unpacked(const char *dir)
{
    static char out[PATH_MAX];
    char xzp[PATH_MAX], tj[PATH_MAX + 32];
    struct stat st, su;
    snprintf(xzp, sizeof xzp, "%s/tokenizer.json.xz", tfix(dir));
    if (stat(xzp, &st)) return tfix(dir);
    snprintf(out, sizeof out, "%s/%s", tu_build("fixtures-unpacked"), dir);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", out);
    if (!stat(tj, &su) && su.st_mtime >= st.st_mtime) return out;
    char cmd[16 * PATH_MAX], *res;
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cp '%s/tokenizer_config.json' '%s/.cfg.%d' && mv '%s/.cfg.%d' "
             "'%s/tokenizer_config.json' && xz -dc '%s' > '%s/.tok.%d' && mv '%s/.tok.%d' '%s'",
             out, tfix(dir), out, (int)getpid(), out, (int)getpid(), out, xzp, out, (int)getpid(), out,
             (int)getpid(), tj);
    ck_assert_msg(tu_run_cmd(cmd, &res) == 0, "%s: %s", cmd, res);
    free(res);
    return out;
}

static peft_tokenizer *load_fixture(const char *dir)
{
    const char *d = unpacked(dir);
    peft_tokenizer *tk = NULL;
    int rc = peft_tokenizer_load(d, &tk, errbuf, sizeof errbuf);
    ck_assert_msg(rc == 0, "load %s: %s", dir, errbuf);
    return tk;
}

static void parity(const char *dir, const char *ref_name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s", dir, ref_name);
    json_t *ref = load_json(tfix(rel));
    peft_tokenizer *tk = load_fixture(dir);
    ck_assert_int_eq(peft_tokenizer_vocab_size(tk), json_integer_value(json_object_get(ref, "vocab_size")));
    ck_assert_int_eq(check_reference(tk, ref, dir), 0);
    peft_tokenizer_free(tk);
    json_decref(ref);
}

START_TEST(gpt2_parity) { parity("gpt2", "reference.json"); }
END_TEST
START_TEST(llama2_parity) { parity("llama2", "reference.json"); }
END_TEST
START_TEST(bert_parity) { parity("bert-base-uncased", "reference.json"); }
END_TEST
START_TEST(llama3_parity) { parity("llama3", "reference.json"); }
END_TEST
START_TEST(qwen3_parity) { parity("qwen3", "reference.json"); }
END_TEST
START_TEST(gemma2_parity) { parity("gemma2", "reference.json"); }
END_TEST
START_TEST(t5_unigram_parity) { parity("t5-unigram", "reference.json"); }
END_TEST

/* a tokenizer.json text with some top-level keys replaced */
static char *patched_json(const char *rel, const json_t *overrides)
{
    json_t *j = load_json(tfix(rel));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)overrides, key, v) json_object_set(j, key, v);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

START_TEST(llama2_metaspace_parity)
{
    json_t *ref = load_json(tfix("llama2/reference-metaspace.json"));
    char *text = patched_json("llama2/tokenizer.json", json_object_get(ref, "variant"));
    peft_tokenizer *tk = NULL;
    ck_assert_msg(peft_tokenizer_from_json(text, "llama2-metaspace", &tk, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    ck_assert_int_eq(check_reference(tk, ref, "llama2-metaspace"), 0);
    peft_tokenizer_free(tk);
    free(text);
    json_decref(ref);
}
END_TEST

/* small tokenizers for the parts the three real ones do not use */
START_TEST(mini_parity)
{
    json_t *all = load_json(tfix("mini/reference.json"));
    int bad = 0;
    size_t i;
    json_t *ref;
    json_array_foreach(json_object_get(all, "tokenizers"), i, ref) {
        const char *name = json_string_value(json_object_get(ref, "tokenizer"));
        char *text = json_dumps(json_object_get(ref, "tokenizer_json"), JSON_COMPACT);
        peft_tokenizer *tk = NULL;
        ck_assert_msg(peft_tokenizer_from_json(text, name, &tk, errbuf, sizeof errbuf) == 0, "%s: %s", name, errbuf);
        bad += check_reference(tk, ref, name);
        peft_tokenizer_free(tk);
        free(text);
    }
    ck_assert_int_gt(i, 5);
    ck_assert_int_eq(bad, 0);
    json_decref(all);
}
END_TEST

/* The robustness case's three real tokenizers, loaded once for the case (an unchecked fixture:
 * before Check forks, so each test's child shares them copy-on-write) instead of once per test
 * that reads them. The tests only read them; the teardown frees them. */
static peft_tokenizer *shared_gpt2, *shared_llama2, *shared_bert;

static void load_shared(void)
{
    shared_gpt2 = load_tok("gpt2");
    shared_llama2 = load_tok("llama2");
    shared_bert = load_tok("bert-base-uncased");
}

static void free_shared(void)
{
    peft_tokenizer_free(shared_gpt2);
    peft_tokenizer_free(shared_llama2);
    peft_tokenizer_free(shared_bert);
    shared_gpt2 = shared_llama2 = shared_bert = NULL;
}

START_TEST(lookups_and_special_ids)
{
    /* gpt2 from the file alone (no tokenizer_config.json: the usual names), the others from
     * their directories */
    peft_tokenizer *g = load_tok("gpt2/tokenizer.json"), *l = shared_llama2, *b = shared_bert;
    const peft_tokenizer_special *s = peft_tokenizer_special_ids(g);
    ck_assert_int_eq(s->bos, 50256);
    ck_assert_int_eq(s->eos, 50256);
    ck_assert_int_eq(s->unk, 50256);
    ck_assert_int_eq(s->pad, -1);
    ck_assert_int_eq(s->cls, -1);
    ck_assert_str_eq(peft_tokenizer_model_type(g), "BPE");
    ck_assert_int_eq(peft_tokenizer_token_to_id(g, "Ġthe"), 262);
    ck_assert_str_eq(peft_tokenizer_id_to_token(g, 262), "Ġthe");
    ck_assert_str_eq(peft_tokenizer_id_to_token(g, 50256), "<|endoftext|>");
    ck_assert_ptr_null(peft_tokenizer_id_to_token(g, 50257));
    ck_assert_ptr_null(peft_tokenizer_id_to_token(g, -1));
    ck_assert_int_eq(peft_tokenizer_token_to_id(g, "no such token"), -1);

    s = peft_tokenizer_special_ids(l); /* from llama2/tokenizer_config.json */
    ck_assert_int_eq(s->bos, 1);
    ck_assert_int_eq(s->eos, 2);
    ck_assert_int_eq(s->unk, 0);
    ck_assert_int_eq(s->pad, -1);
    ck_assert_int_eq(peft_tokenizer_vocab_size(l), 32000);
    ck_assert_int_eq(peft_tokenizer_token_to_id(l, "<0x0A>"), 13);

    s = peft_tokenizer_special_ids(b);
    ck_assert_int_eq(s->cls, 101);
    ck_assert_int_eq(s->sep, 102);
    ck_assert_int_eq(s->pad, 0);
    ck_assert_int_eq(s->unk, 100);
    ck_assert_int_eq(s->bos, -1);
    ck_assert_str_eq(peft_tokenizer_model_type(b), "WordPiece");
    ck_assert_str_eq(peft_tokenizer_id_to_token(b, 2015), "##s");

    /* every id's token maps back to that id (the vocabularies have no duplicates) */
    peft_tokenizer *all[3] = {g, l, b};
    for (int t = 0; t < 3; t++)
        for (int32_t id = 0; id < peft_tokenizer_vocab_size(all[t]); id += 7)
            ck_assert_int_eq(peft_tokenizer_token_to_id(all[t], peft_tokenizer_id_to_token(all[t], id)), id);
    peft_tokenizer_free(g);
}
END_TEST

/* encode(a) == encode(b)? */
static void same_ids(peft_tokenizer *tk, const char *a, size_t la, const char *b)
{
    int32_t *x, *y;
    size_t nx, ny;
    ck_assert_int_eq(peft_tokenizer_encode(tk, a, la, 1, &x, &nx, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(peft_tokenizer_encode(tk, b, (size_t)-1, 1, &y, &ny, errbuf, sizeof errbuf), 0);
    ck_assert_uint_eq(nx, ny);
    for (size_t i = 0; i < nx; i++) ck_assert_int_eq(x[i], y[i]);
    free(x);
    free(y);
}

#define R "\xEF\xBF\xBD" /* U+FFFD */

START_TEST(invalid_utf8)
{
    peft_tokenizer *const toks[3] = {shared_gpt2, shared_llama2, shared_bert};
    for (int t = 0; t < 3; t++) {
        peft_tokenizer *tk = toks[t];
        /* the reference string "bad \ufffd\ufffd bytes \ufffd end", with real bad bytes */
        same_ids(tk, "bad \xff\xfe bytes \xc3 end", (size_t)-1, "bad " R R " bytes " R " end");
        /* maximal subparts: truncated 3-byte char = 1, overlong = 2, surrogate = 3, > U+10FFFF = 4 */
        same_ids(tk, "a\xe2\x82 b", (size_t)-1, "a" R " b");
        same_ids(tk, "a\xc0\xaf b", (size_t)-1, "a" R R " b");
        same_ids(tk, "a\xed\xa0\x80 b", (size_t)-1, "a" R R R " b");
        same_ids(tk, "a\xf4\x90\x80\x80 b", (size_t)-1, "a" R R R R " b");
        same_ids(tk, "end\xf0\x9f\x98", (size_t)-1, "end" R);
        /* an embedded NUL is text, not the end */
        int32_t *ids;
        size_t n, n2;
        ck_assert_int_eq(peft_tokenizer_encode(tk, "a\0b", 3, 0, &ids, &n, errbuf, sizeof errbuf), 0);
        free(ids);
        ck_assert_int_eq(peft_tokenizer_encode(tk, "a", 1, 0, &ids, &n2, errbuf, sizeof errbuf), 0);
        free(ids);
        if (t != 2) ck_assert_uint_gt(n, n2); /* BERT's clean_text drops NUL */
        /* random bytes: never a crash, decode always gives a string */
        unsigned seed = 12345;
        for (int r = 0; r < 300; r++) {
            char buf[257];
            size_t len = (size_t)(rand_r(&seed) % 256);
            for (size_t i = 0; i < len; i++) buf[i] = (char)(rand_r(&seed) & 0xFF);
            ck_assert_int_eq(peft_tokenizer_encode(tk, buf, len, 1, &ids, &n, errbuf, sizeof errbuf), 0);
            char *out = NULL;
            ck_assert_int_eq(peft_tokenizer_decode(tk, ids, n, 0, &out, NULL, errbuf, sizeof errbuf), 0);
            ck_assert_ptr_nonnull(out);
            free(out);
            free(ids);
        }
        /* decoding ids that are not in the vocabulary skips them, as HF */
        int32_t odd[4] = {-5, 1 << 30, 500, -1}, one = 500;
        char *out = NULL, *want = NULL;
        ck_assert_int_eq(peft_tokenizer_decode(tk, odd, 4, 0, &out, NULL, errbuf, sizeof errbuf), 0);
        ck_assert_int_eq(peft_tokenizer_decode(tk, &one, 1, 0, &want, NULL, errbuf, sizeof errbuf), 0);
        ck_assert_str_eq(out, want);
        free(out);
        free(want);
        ck_assert_int_eq(peft_tokenizer_decode(tk, NULL, 0, 0, &out, NULL, errbuf, sizeof errbuf), 0);
        ck_assert_str_eq(out, "");
        free(out);
    }
}
END_TEST

/* a tokenizer.json text that must be refused with code and message fragments */
static void refused(const char *json, int code, const char *frag1, const char *frag2)
{
    peft_tokenizer *tk = (peft_tokenizer *)1;
    errbuf[0] = 0;
    ck_assert_int_eq(peft_tokenizer_from_json(json, "bad.json", &tk, errbuf, sizeof errbuf), code);
    ck_assert_ptr_null(tk);
    ck_assert_msg(strstr(errbuf, "bad.json") && strstr(errbuf, frag1) && (!frag2 || strstr(errbuf, frag2)),
                  "message \"%s\" should name bad.json, %s, %s", errbuf, frag1, frag2 ? frag2 : "");
}

#define BPE_MODEL "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"

START_TEST(bad_files)
{
    refused("{\"model\": ", PEFT_EFORMAT, "invalid JSON", "line");
    refused("[1, 2]", PEFT_EFORMAT, "object", NULL);
    refused("{}", PEFT_EFORMAT, "model", NULL);
    refused("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 1]], \"unk_id\": 3}}", PEFT_EFORMAT, "unk_id", NULL);
    refused("{\"model\": {\"type\": \"Unigram\", \"vocab\": [\"a\"]}}", PEFT_EFORMAT, "vocab[0]", "piece");
    refused("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}, \"normalizer\": {\"type\": \"Precompiled\", "
            "\"precompiled_charsmap\": \"AAA*\"}}", PEFT_EFORMAT, "precompiled_charsmap", "base64");
    refused("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}, \"normalizer\": {\"type\": \"Precompiled\", "
            "\"precompiled_charsmap\": \"/////w==\"}}", PEFT_EFORMAT, "precompiled_charsmap", "malformed");
    refused("{\"model\": {\"type\": \"Bigram\", \"vocab\": []}}", PEFT_EFORMAT, "Bigram", "not supported");
    refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a c\"]}}", PEFT_EFORMAT, "merges[0]", "\"c\"");
    refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"c\": 1}, \"merges\": [\"a c\"]}}", PEFT_EFORMAT, "merged token", "ac");
    refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"abc\"]}}", PEFT_EFORMAT, "merges[0]", "two tokens");
    refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", PEFT_EFORMAT, "vocab[\"a\"]", NULL);
    refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}", PEFT_EFORMAT, "dropout", NULL);
    refused("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}, \"unk_token\": \"[UNK]\"}}", PEFT_EFORMAT, "unk_token", "[UNK]");
    refused("{" BPE_MODEL ", \"normalizer\": {\"type\": \"NFKX\"}}", PEFT_EFORMAT, "normalizer", "NFKX");
    refused("{" BPE_MODEL ", \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Replace\", "
            "\"pattern\": {\"Regex\": \"(+\"}, \"content\": \" \"}]}}", PEFT_EFORMAT, "normalizers[0]", "regular expression");
    refused("{" BPE_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\"}}", PEFT_EFORMAT, "pre_tokenizer", "pattern");
    refused("{" BPE_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\\\\p{L}\"}, "
            "\"behavior\": \"Isolated\"}}", PEFT_EFORMAT, "pre_tokenizer.pattern", "missing closing parenthesis");
    refused("{" BPE_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, "
            "\"behavior\": \"Sideways\"}}", PEFT_EFORMAT, "behavior", "Sideways");
    refused("{" BPE_MODEL ", \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"ab\"}}", PEFT_EFORMAT, "Metaspace", "replacement");
    refused("{" BPE_MODEL ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
            "[{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {}}}", PEFT_EFORMAT, "special_tokens", "<s>");
    refused("{" BPE_MODEL ", \"decoder\": {\"type\": \"CTC\"}}", PEFT_EFORMAT, "decoder", "CTC");
    refused("{" BPE_MODEL ", \"added_tokens\": [{\"id\": 3}]}", PEFT_EFORMAT, "added_tokens[0]", NULL);
    refused("{" BPE_MODEL ", \"normalizer\": 5}", PEFT_EFORMAT, "normalizer", "type");

    /* files */
    peft_tokenizer *tk = NULL;
    ck_assert_int_eq(peft_tokenizer_load("/nonexistent/dir", &tk, errbuf, sizeof errbuf), PEFT_EIO);
    ck_assert_ptr_nonnull(strstr(errbuf, "/nonexistent/dir"));
    char *dir = tu_tmpdir(), path[4096];
    ck_assert_int_eq(peft_tokenizer_load(dir, &tk, errbuf, sizeof errbuf), PEFT_EIO); /* no tokenizer.json */
    ck_assert_ptr_nonnull(strstr(errbuf, "tokenizer.json"));
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    const char *ok = "{" BPE_MODEL ", \"added_tokens\": [{\"id\": 3, \"content\": \"<s>\", \"special\": true}]}";
    ck_assert_int_eq(tu_write_file(path, ok, strlen(ok)), 0);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *cfg = "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\"}";
    ck_assert_int_eq(tu_write_file(path, cfg, strlen(cfg)), 0);
    ck_assert_int_eq(peft_tokenizer_load(dir, &tk, errbuf, sizeof errbuf), PEFT_EFORMAT);
    ck_assert_msg(strstr(errbuf, "tokenizer_config.json") && strstr(errbuf, "eos_token") && strstr(errbuf, "</s>"), "%s", errbuf);
    cfg = "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": null}";
    ck_assert_int_eq(tu_write_file(path, cfg, strlen(cfg)), 0);
    ck_assert_int_eq(peft_tokenizer_load(dir, &tk, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(peft_tokenizer_special_ids(tk)->bos, 3);
    ck_assert_int_eq(peft_tokenizer_special_ids(tk)->eos, -1);
    ck_assert_int_eq(peft_tokenizer_vocab_size(tk), 4);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(peft_tokenizer_encode(tk, "ab<s>ba", (size_t)-1, 1, &ids, &n, errbuf, sizeof errbuf), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_int_eq(ids[1], 3);
    ck_assert_int_eq(ids[2], 1);
    ck_assert_int_eq(ids[3], 0);
    free(ids);
    peft_tokenizer_free(tk);
    tu_rmtree(dir);
    free(dir);
    peft_tokenizer_free(NULL);
}
END_TEST

/* the BPE merge loop on a long word (a heap, not a quadratic rescan); prints a rate, never fails on time */
START_TEST(long_text)
{
    peft_tokenizer *tk = shared_gpt2;
    size_t len = 1 << 20;
    char *text = malloc(len + 1);
    const char *words = "The quick brown fox, naïve café 中文 😀 jumps over 12,345 lazy dogs.\n";
    for (size_t i = 0; i < len; i++) text[i] = words[i % strlen(words)];
    text[len] = 0;
    int32_t *ids;
    size_t n;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(peft_tokenizer_encode(tk, text, len, 0, &ids, &n, errbuf, sizeof errbuf), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "gpt2: encoded 1 MiB into %zu tokens in %.3f s (%.1f MB/s)\n", n, s, 1.048576 / s);
    char *out;
    ck_assert_int_eq(peft_tokenizer_decode(tk, ids, n, 0, &out, NULL, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(strcmp(out, text), 0);
    free(out);
    free(ids);
    memset(text, 'x', len); /* one 1 MiB word */
    ck_assert_int_eq(peft_tokenizer_encode(tk, text, len, 0, &ids, &n, errbuf, sizeof errbuf), 0);
    ck_assert_uint_gt(n, 1000);
    free(ids);
    free(text);
}
END_TEST


/* `peft tokenize`: the command prints the same ids, and decodes them back */
static char *run_cmd(const char *cmd)
{
    static char out[4096];
    char *all;
    ck_assert_int_eq(tu_run_cmd(cmd, &all), 0);
    snprintf(out, sizeof out, "%s", all);
    free(all);
    return out;
}

START_TEST(cli_tokenize)
{
    char cmd[8192];
    const char *peft = tu_build("peft");
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --text \"Hello world, it's café time\"", peft, tfix("gpt2"));
    ck_assert_str_eq(run_cmd(cmd), "15496 995 11 340 338 40304 640\n");
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --text \"Hello, World!\"", peft, tfix("bert-base-uncased/tokenizer.json"));
    ck_assert_str_eq(run_cmd(cmd), "101 7592 1010 2088 999 102\n");
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --text \"Hello world\" --tokens", peft, tfix("llama2"));
    ck_assert_str_eq(run_cmd(cmd), "1\t<s>\n22557\t\xe2\x96\x81Hello\n1526\t\xe2\x96\x81world\n");
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --decode --text \"[1, 22557, 1526]\" --skip-special-tokens", peft, tfix("llama2"));
    ck_assert_str_eq(run_cmd(cmd), "Hello world\n");
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --decode --text \"1 x\" 2>/dev/null", peft, tfix("llama2"));
    char *out;
    ck_assert_int_ne(tu_run_cmd(cmd, &out), 0);
    free(out);
}
END_TEST

/* `peft generate --text`: the prompt encoded with the model's tokenizer gives the same tokens as
 * the ids given through --input, and the printed text is their decoding */
START_TEST(cli_generate_text)
{
    char cmd[8192], *out, *dir = tu_tmpdir();
    const char *peft = tu_build("peft"), *model = tfix("../../../examples/base-model");
    snprintf(cmd, sizeof cmd, "%s generate --model %s --text \"ab>c\" --max-new-tokens 6 --output %s/t.json 2>/dev/null",
             peft, model, dir);
    ck_assert_int_eq(tu_run_cmd(cmd, &out), 0);
    char text[256];
    snprintf(text, sizeof text, "%s", out);
    free(out);
    peft_tokenizer *tk = load_tok("../../../examples/base-model");
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(peft_tokenizer_encode(tk, "ab>c", (size_t)-1, 1, &ids, &n, errbuf, sizeof errbuf), 0);
    json_t *in = json_pack("{s:[o]}", "input_ids", json_array());
    for (size_t i = 0; i < n; i++) json_array_append_new(json_array_get(json_object_get(in, "input_ids"), 0), json_integer(ids[i]));
    char path[4096];
    snprintf(path, sizeof path, "%s/in.json", dir);
    ck_assert_int_eq(json_dump_file(in, path, 0), 0);
    json_decref(in);
    free(ids);
    snprintf(cmd, sizeof cmd, "%s generate --model %s --input %s/in.json --output %s/i.json --max-new-tokens 6 >/dev/null",
             peft, model, dir, dir);
    ck_assert_int_eq(tu_run_cmd(cmd, &out), 0);
    free(out);
    snprintf(path, sizeof path, "%s/t.json", dir);
    json_t *a = load_json(path);
    snprintf(path, sizeof path, "%s/i.json", dir);
    json_t *b = load_json(path);
    json_t *ga = json_array_get(json_object_get(a, "generated_ids"), 0), *gb = json_array_get(json_object_get(b, "generated_ids"), 0);
    ck_assert(json_equal(ga, gb));
    int32_t gen[64];
    size_t ng = 0, lim = (size_t)json_integer_value(json_array_get(json_object_get(a, "num_generated"), 0));
    for (size_t i = 0; i < json_array_size(ga) && i < lim && ng < 64; i++) gen[ng++] = (int32_t)json_integer_value(json_array_get(ga, i));
    char *dec;
    ck_assert_int_eq(peft_tokenizer_decode(tk, gen, ng, 1, &dec, NULL, errbuf, sizeof errbuf), 0);
    size_t tl = strlen(text);
    ck_assert_msg(tl && text[tl - 1] == '\n', "no line: '%s'", text);
    text[tl - 1] = 0;
    ck_assert_str_eq(text, dec);
    free(dec);
    json_decref(a);
    json_decref(b);
    peft_tokenizer_free(tk);
    /* --text and --input together, or neither, are refused */
    snprintf(cmd, sizeof cmd, "%s generate --model %s --text x --input %s/in.json --output %s/x.json 2>&1", peft, model, dir, dir);
    ck_assert_int_ne(tu_run_cmd(cmd, &out), 0);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("hf-parity");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gpt2_parity);
    tcase_add_test(tc, llama2_parity);
    tcase_add_test(tc, bert_parity);
    tcase_add_test(tc, llama3_parity);
    tcase_add_test(tc, qwen3_parity);
    tcase_add_test(tc, gemma2_parity);
    tcase_add_test(tc, t5_unigram_parity);
    tcase_add_test(tc, llama2_metaspace_parity);
    tcase_add_test(tc, mini_parity);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("robustness");
    tcase_set_tags(tr, TU_PART2); /* `make check` runs it beside the parity case */
    tcase_set_timeout(tr, 120);
    tcase_add_unchecked_fixture(tr, load_shared, free_shared);
    tcase_add_test(tr, lookups_and_special_ids);
    tcase_add_test(tr, invalid_utf8);
    tcase_add_test(tr, bad_files);
    tcase_add_test(tr, long_text);
    tcase_add_test(tr, cli_tokenize);
    tcase_add_test(tr, cli_generate_text);
    suite_add_tcase(s, tr);
    int failed = tu_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

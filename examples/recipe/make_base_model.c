/* make_base_model.c — the recipe of the embedded default's base model (examples/base-model):
 * a small LLaMA (LlamaForCausalLM, grouped-query attention, tied embeddings, byte vocabulary)
 * initialised from libpeft's seeded RNG as transformers does (Linear and Embedding weights
 * N(0, 0.02), RMSNorm weights 1), then pretrained with libpeft's own ops — every base parameter
 * trainable, AdamW, cosine schedule — on a stream of sentences from the seeded grammar
 * (grammar.h), and saved in bf16 as a Hugging Face model directory with a byte-level
 * tokenizer.json. Nothing is downloaded. `make base-model` runs it; the same seed gives the same
 * bytes on the same machine (the BLAS kernels in use fix the float rounding).
 *
 * usage: make_base_model --out DIR [--work DIR] [--steps 2000] [--seed 0]
 *        (--work: where the randomly initialised model is written first; default DIR.init)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "grammar.h"
#include "peft/model_save.h"
#include "peft/optim.h"
#include "runner/runner.h"

/* the architecture: ~0.6 M parameters */
#define HIDDEN 128
#define LAYERS 4
#define HEADS 4
#define KV_HEADS 2
#define INTER 256
#define VOCAB 256
#define POSITIONS 256
/* pretraining */
#define BATCH 32
#define WINDOW 64
#define CORPUS_LINES 120000

static json_t *llama_config(void)
{
    json_t *c = json_pack("{s:[s], s:s, s:b, s:b, s:i, s:i, s:s, s:i, s:f, s:i, s:i, s:s, s:i, s:i, "
                          "s:i, s:i, s:i, s:f, s:n, s:f, s:b, s:s, s:s, s:b, s:i}",
                          "architectures", "LlamaForCausalLM", "model_type", "llama",
                          "attention_bias", 0, "mlp_bias", 0, "bos_token_id", 2, "eos_token_id", 10,
                          "hidden_act", "silu", "hidden_size", HIDDEN, "initializer_range", 0.02,
                          "intermediate_size", INTER, "max_position_embeddings", POSITIONS,
                          "torch_dtype", "float32", "num_attention_heads", HEADS,
                          "num_hidden_layers", LAYERS, "num_key_value_heads", KV_HEADS,
                          "pad_token_id", 0, "pretraining_tp", 1, "rms_norm_eps", 1e-6,
                          "rope_scaling", "rope_theta", 10000.0, "tie_word_embeddings", 1,
                          "transformers_version", "4.44.2", "_name_or_path", "libpeft-tiny-llama",
                          "use_cache", 1, "vocab_size", VOCAB);
    json_object_set_new(c, "attention_dropout", json_real(0.0));
    return c;
}

/* GPT-2's bytes_to_unicode: the printable character standing for each byte in a byte-level BPE */
static int byte_char(int b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256 + n;
}

/* a byte-level BPE tokenizer.json without merges: token id = byte value */
static json_t *byte_tokenizer(void)
{
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        int cp = byte_char(b);
        char s[4];
        if (cp < 0x80) s[0] = (char)cp, s[1] = 0;
        else s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F)), s[2] = 0;
        json_object_set_new(vocab, s, json_integer(b));
    }
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                           "trim_offsets", 1, "use_regex", 1);
    return json_pack("{s:s, s:n, s:n, s:[], s:n, s:O, s:O, s:O, s:{s:s, s:n, s:n, s:s, s:s, s:b, "
                     "s:b, s:b, s:o, s:[]}}",
                     "version", "1.0", "truncation", "padding", "added_tokens", "normalizer",
                     "pre_tokenizer", bl, "post_processor", bl, "decoder", bl, "model", "type",
                     "BPE", "dropout", "unk_token", "continuing_subword_prefix", "",
                     "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback", 0,
                     "ignore_merges", 0, "vocab", vocab, "merges");
}

static int write_json(const char *path, json_t *j)
{
    peft_ctx *ctx = peft_ctx_new(0);
    char *txt = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc = txt && ctx ? peft_write_file_atomic(ctx, path, txt, strlen(txt)) : PEFT_ENOMEM;
    if (rc) fprintf(stderr, "make_base_model: %s\n", txt && ctx ? peft_errmsg(ctx) : "out of memory");
    peft_ctx_free(ctx);
    free(txt);
    json_decref(j);
    return rc;
}

/* config.json + tokenizer.json + random f32 weights, as LlamaForCausalLM(config) would be */
static int write_random_model(const char *dir, uint64_t seed)
{
    char path[1024];
    peft_ctx *mctx = peft_ctx_new(seed);
    int mrc = mctx ? peft_mkdirs(mctx, dir) : PEFT_ENOMEM;
    if (mrc) fprintf(stderr, "make_base_model: %s\n", mctx ? peft_errmsg(mctx) : "out of memory");
    peft_ctx_free(mctx);
    if (mrc) return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (write_json(path, llama_config())) return -1;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (write_json(path, byte_tokenizer())) return -1;
    enum { MAXT = 2 + LAYERS * 9 };
    char names[MAXT][96];
    int64_t shapes[MAXT][2];
    int ndims[MAXT], n = 0;
#define T2(nm, a, b) (snprintf(names[n], 96, "%s", nm), shapes[n][0] = a, shapes[n][1] = b, ndims[n++] = 2)
#define T1(nm, a) (snprintf(names[n], 96, "%s", nm), shapes[n][0] = a, shapes[n][1] = 1, ndims[n++] = 1)
    T2("model.embed_tokens.weight", VOCAB, HIDDEN);
    for (int l = 0; l < LAYERS; l++) {
        char b[96];
        const int D = HIDDEN / HEADS;
        const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                              "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        const int64_t out[7] = {HEADS * D, KV_HEADS * D, KV_HEADS * D, HIDDEN, INTER, INTER, HIDDEN};
        const int64_t in[7] = {HIDDEN, HIDDEN, HIDDEN, HEADS * D, HIDDEN, HIDDEN, INTER};
        for (int k = 0; k < 7; k++) {
            snprintf(b, sizeof b, "model.layers.%d.%s.weight", l, lin[k]);
            T2(b, out[k], in[k]);
        }
        snprintf(b, sizeof b, "model.layers.%d.input_layernorm.weight", l);
        T1(b, HIDDEN);
        snprintf(b, sizeof b, "model.layers.%d.post_attention_layernorm.weight", l);
        T1(b, HIDDEN);
    }
    T1("model.norm.weight", HIDDEN);
#undef T1
#undef T2
    peft_rng r;
    peft_rng_seed(&r, seed);
    peft_st_out outs[MAXT];
    float *bufs[MAXT];
    int rc = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel = shapes[i][0] * (ndims[i] == 2 ? shapes[i][1] : 1);
        bufs[i] = malloc((size_t)numel * sizeof(float));
        if (!bufs[i]) return fprintf(stderr, "make_base_model: out of memory\n"), -1;
        for (int64_t j = 0; j < numel; j++)
            bufs[i][j] = ndims[i] == 1 ? 1.0f : (float)(0.02 * peft_rng_normal(&r));
        outs[i] = (peft_st_out){names[i], PEFT_DTYPE_F32, ndims[i], shapes[i], bufs[i]};
    }
    static const char *const meta[] = {"format", "pt", NULL};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    peft_ctx *ctx = peft_ctx_new(seed);
    if (!ctx || peft_st_write(ctx, path, outs, (size_t)n, meta))
        rc = -1, fprintf(stderr, "make_base_model: %s\n", ctx ? peft_errmsg(ctx) : "out of memory");
    peft_ctx_free(ctx);
    for (int i = 0; i < n; i++) free(bufs[i]);
    return rc;
}

/* the pretraining text: CORPUS_LINES tagged lines, operations uniformly mixed */
static unsigned char *make_corpus(uint64_t seed, size_t *len)
{
    peft_rng r;
    peft_rng_seed(&r, seed);
    size_t n = 0;
    unsigned char *c = malloc((size_t)CORPUS_LINES * GRAMMAR_MAX_LINE);
    if (!c) return NULL;
    for (int i = 0; i < CORPUS_LINES; i++) {
        char line[GRAMMAR_MAX_LINE];
        unsigned char ans[GRAMMAR_MAX_LINE];
        int k = grammar_line(&r, (int)(peft_rng_uniform(&r) * GRAMMAR_N_OPS), 1, line, ans);
        memcpy(c + n, line, (size_t)k);
        n += (size_t)k;
    }
    *len = n;
    return c;
}

/* teacher-forced exact match (every answer letter of a line right) of each operation on 96
 * held-out lines, tagged and untagged */
static void evaluate(peft_base_model *m, peft_graph *g, uint64_t seed, FILE *out)
{
    enum { N = 96, T = GRAMMAR_MAX_LINE };
    static int32_t ids[N * T], mask[N * T], lab[N * T];
    for (int tagged = 1; tagged >= 0; tagged--)
        for (int op = 0; op < GRAMMAR_N_OPS; op++) {
            peft_rng r;
            peft_rng_seed(&r, seed + 1000 + (uint64_t)op);
            memset(ids, 0, sizeof ids), memset(mask, 0, sizeof mask);
            for (int i = 0; i < N * T; i++) lab[i] = -100;
            for (int b = 0; b < N; b++) {
                char line[GRAMMAR_MAX_LINE];
                unsigned char ans[GRAMMAR_MAX_LINE];
                int k = grammar_line(&r, op, tagged, line, ans);
                for (int t = 0; t < k; t++) {
                    ids[b * T + t] = (unsigned char)line[t];
                    mask[b * T + t] = 1;
                    if (ans[t]) lab[b * T + t] = ids[b * T + t];
                }
            }
            peft_graph_reset(g);
            peft_graph_set_recording(g, 0);
            peft_model_inputs in = {N, T, ids, mask, lab};
            peft_model_outputs o;
            if (peft_base_model_forward(m, g, &in, &o)) { fprintf(stderr, "%s\n", peft_graph_error(g)); return; }
            int ok = 0;
            for (int b = 0; b < N; b++) {
                int good = 1;
                for (int t = 1; t < T; t++) {
                    if (lab[b * T + t] < 0) continue;
                    const float *row = peft_f32(o.logits) + ((size_t)b * T + t - 1) * VOCAB;
                    int best = 0;
                    for (int v = 1; v < VOCAB; v++) if (row[v] > row[best]) best = v;
                    good &= best == lab[b * T + t];
                }
                ok += good;
            }
            fprintf(out, " %s%s %3d%%", tagged ? "" : "-", grammar_tag(op), ok * 100 / N);
        }
    fputc('\n', out);
}

int main(int argc, char **argv)
{
    const char *out = NULL, *work = NULL;
    long steps = 2000;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--work") && i + 1 < argc) work = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else return fprintf(stderr, "usage: make_base_model --out DIR [--work DIR] [--steps N] [--seed S]\n"), 2;
    }
    if (!out || steps < 1) return fprintf(stderr, "usage: make_base_model --out DIR [--work DIR] [--steps N] [--seed S]\n"), 2;
    char init_dir[1024];
    if (work) snprintf(init_dir, sizeof init_dir, "%s", work);
    else snprintf(init_dir, sizeof init_dir, "%s.init", out);
    if (write_random_model(init_dir, seed)) return 1;
    peft_ctx *ctx = peft_ctx_new(seed);
    peft_base_model *m;
    if (!ctx) return fprintf(stderr, "out of memory\n"), 1;
    if (peft_load_base_model(ctx, init_dir, &m)) return fprintf(stderr, "%s\n", peft_errmsg(ctx)), 1;
    size_t n_params = peft_base_model_num_params(m);
    peft_tensor **params = calloc(n_params, sizeof *params);
    for (size_t i = 0; i < n_params; i++) {
        peft_tensor *t = peft_base_model_param(m, i, NULL);
        if (peft_tensor_make_f32_owned(t, NULL, NULL, NULL)) return fprintf(stderr, "out of memory\n"), 1;
        t->requires_grad = 1;
        t->flags |= PEFT_T_PARAM;
        params[i] = t;
    }
    peft_adamw_config oc = {3e-3, 0.9, 0.98, 1e-8, 0.01};
    peft_adamw *opt = peft_adamw_new_params(ctx, params, n_params, &oc);
    if (!opt) return fprintf(stderr, "%s\n", peft_errmsg(ctx)), 1;
    size_t clen;
    unsigned char *corpus = make_corpus(seed, &clen);
    if (!corpus) return fprintf(stderr, "out of memory\n"), 1;
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    static int32_t ids[BATCH * WINDOW];
    peft_rng data;
    peft_rng_seed(&data, seed + 1);
    int64_t total = 0;
    for (size_t i = 0; i < n_params; i++) total += params[i]->numel;
    printf("pretraining a %lld-parameter LLaMA on %zu bytes of grammar text, %ld steps of %d x %d\n",
           (long long)total, clen, steps, BATCH, WINDOW);
    clock_t c0 = clock();
    double avg = 0;
    for (long step = 0; step < steps; step++) {
        for (int b = 0; b < BATCH; b++) {
            size_t off = (size_t)(peft_rng_uniform(&data) * (double)(clen - WINDOW));
            for (int t = 0; t < WINDOW; t++) ids[b * WINDOW + t] = corpus[off + (size_t)t];
        }
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        peft_model_inputs in = {BATCH, WINDOW, ids, NULL, ids};
        peft_model_outputs o;
        if (peft_base_model_forward(m, g, &in, &o)) return fprintf(stderr, "%s\n", peft_graph_error(g)), 1;
        double loss = peft_f32(o.loss)[0];
        avg = step ? 0.98 * avg + 0.02 * loss : loss;
        peft_graph_backward(g, o.loss);
        peft_adamw_clip_grad_norm(opt, 1.0);
        peft_adamw_step(opt, peft_lr_at(PEFT_SCHED_COSINE, oc.lr, step, steps, steps / 20));
        if ((step + 1) % 250 == 0 || step + 1 == steps) {
            printf("step %ld: loss %.4f (%.0f s) exact match:", step + 1, avg, (double)(clock() - c0) / CLOCKS_PER_SEC);
            evaluate(m, g, seed, stdout);
            fflush(stdout);
        }
    }
    if (peft_base_model_save(ctx, m, out, PEFT_DTYPE_BF16)) return fprintf(stderr, "%s\n", peft_errmsg(ctx)), 1;
    char src[1200], dst[1200];
    snprintf(src, sizeof src, "%s/tokenizer.json", init_dir);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", out);
    char *tok = peft_read_file(ctx, src, NULL);
    if (!tok || peft_write_file_atomic(ctx, dst, tok, strlen(tok)))
        return fprintf(stderr, "%s\n", peft_errmsg(ctx)), 1;
    free(tok);
    printf("wrote %s (config.json, model.safetensors in bf16, tokenizer.json)\n", out);
    peft_graph_free(g);
    peft_adamw_free(opt);
    peft_base_model_free(m);
    peft_ctx_free(ctx);
    free(params);
    free(corpus);
    return 0;
}

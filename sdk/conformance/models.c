/* models.c — the models the conformance checks run on. Built in: one tiny seeded model per
 * architecture family the library supports (LLaMA-like plain Linear layers, GPT-2's Conv1D,
 * a BERT encoder with a classification head, a T5 encoder-decoder), written at run time to a
 * temp dir from a config.json carried here and weights drawn from a fixed seed, so a
 * `peft plugin-check` works anywhere with nothing beside the binary. Or a fixture tree
 * (<dir>/hf-peft/_models, one model per architecture), or model directories given by the
 * user. Inputs: a model dir's inputs.json when it has one, else made here (pc_open_base). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conformance.h"
#include "peft/graph.h"
#include "peft/safetensors.h"

/* the tiny models: HF config.json texts (vocab 64, hidden 32, 2 layers, 4 heads) */
static const struct tiny {
    const char *arch;
    const char *config;
} TINY[] = {
    {"gpt2",
     "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", "
     "\"activation_function\": \"gelu_new\", \"n_embd\": 32, \"n_head\": 4, \"n_layer\": 2, "
     "\"n_positions\": 64, \"n_inner\": null, \"layer_norm_epsilon\": 1e-05, "
     "\"vocab_size\": 64, \"bos_token_id\": 63, \"eos_token_id\": 63, "
     "\"tie_word_embeddings\": true, \"scale_attn_weights\": true, \"torch_dtype\": \"float32\"}"},
    {"llama",
     "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
     "\"hidden_size\": 32, \"intermediate_size\": 64, \"num_attention_heads\": 4, "
     "\"num_hidden_layers\": 2, \"num_key_value_heads\": 2, \"max_position_embeddings\": 64, "
     "\"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0, \"rope_scaling\": null, "
     "\"hidden_act\": \"silu\", \"attention_bias\": false, \"mlp_bias\": false, "
     "\"tie_word_embeddings\": false, \"vocab_size\": 64, \"pad_token_id\": 0, "
     "\"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"float32\"}"},
    {"bert",
     "{\"architectures\": [\"BertForSequenceClassification\"], \"model_type\": \"bert\", "
     "\"hidden_size\": 32, \"intermediate_size\": 64, \"num_attention_heads\": 4, "
     "\"num_hidden_layers\": 2, \"max_position_embeddings\": 64, \"type_vocab_size\": 2, "
     "\"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-12, \"vocab_size\": 64, "
     "\"pad_token_id\": 0, \"position_embedding_type\": \"absolute\", "
     "\"id2label\": {\"0\": \"LABEL_0\", \"1\": \"LABEL_1\", \"2\": \"LABEL_2\"}, "
     "\"label2id\": {\"LABEL_0\": 0, \"LABEL_1\": 1, \"LABEL_2\": 2}, "
     "\"problem_type\": \"single_label_classification\", \"torch_dtype\": \"float32\"}"},
    {"t5",
     "{\"architectures\": [\"T5ForConditionalGeneration\"], \"model_type\": \"t5\", "
     "\"d_model\": 32, \"d_ff\": 64, \"d_kv\": 8, \"num_heads\": 4, \"num_layers\": 2, "
     "\"num_decoder_layers\": 2, \"relative_attention_num_buckets\": 8, "
     "\"relative_attention_max_distance\": 20, \"feed_forward_proj\": \"relu\", "
     "\"dense_act_fn\": \"relu\", \"is_gated_act\": false, \"is_encoder_decoder\": true, "
     "\"layer_norm_epsilon\": 1e-06, \"decoder_start_token_id\": 0, \"pad_token_id\": 0, "
     "\"eos_token_id\": 1, \"vocab_size\": 64, \"tie_word_embeddings\": true, "
     "\"torch_dtype\": \"float32\"}"},
};

const char *const *pc_builtin_archs(void)
{
    static const char *names[sizeof TINY / sizeof TINY[0] + 1];
    for (size_t i = 0; i < sizeof TINY / sizeof TINY[0]; i++) names[i] = TINY[i].arch;
    return names;
}

static int model_type_of(const char *dir, char *out, size_t len, int64_t *vocab)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    const char *mt = json_string_value(json_object_get(c, "model_type"));
    int ok = mt != NULL;
    if (ok) snprintf(out, len, "%s", mt);
    json_t *v = json_object_get(c, "vocab_size");
    *vocab = json_is_integer(v) ? json_integer_value(v) : 64;
    json_decref(c);
    return ok ? 0 : -1;
}

int pc_add_model(pc_env *env, const char *dir, const char *label, char *msg, size_t len)
{
    if (env->n_models >= (int)(sizeof env->models / sizeof env->models[0]))
        return pc_msg(msg, len, -1, "at most %d models",
                      (int)(sizeof env->models / sizeof env->models[0]));
    pc_model *m = &env->models[env->n_models];
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (model_type_of(dir, m->model_type, sizeof m->model_type, &m->vocab))
        return pc_msg(msg, len, -1, "%s/config.json: no such file, or it has no model_type", dir);
    char err[1024];
    peft_base_model *b;
    peft_ctx *lctx = peft_ctx_new(0);
    int lrc = lctx ? peft_load_base_model(lctx, dir, &b) : PEFT_ENOMEM;
    if (lrc) snprintf(err, sizeof err, "%s", lctx ? peft_errmsg(lctx) : "out of memory");
    peft_ctx_free(lctx);
    if (lrc)
        return pc_msg(msg, len, -1, "model %s: the host cannot load it: %s", dir, err);
    snprintf(m->task_type, sizeof m->task_type, "%s", peft_base_model_task(b));
    peft_base_model_free(b);
    snprintf(m->label, sizeof m->label, "%s", label ? label : m->model_type);
    char in[PATH_MAX];
    snprintf(in, sizeof in, "%s/inputs.json", dir);
    if (access(in, R_OK) == 0) snprintf(m->inputs, sizeof m->inputs, "%s", in);
    env->n_models++;
    return 0;
}

int pc_have_type(const pc_env *env, const char *mt)
{
    for (int i = 0; i < env->n_models; i++)
        if (!strcmp(env->models[i].model_type, mt)) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pc_fixture_models(pc_env *env, const char *fixtures, char *msg, size_t len)
{
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%.3800s/hf-peft/_models", fixtures);
    DIR *d = opendir(root);
    if (!d)
        return pc_msg(msg, len, -1, "fixtures %s: no model directory %s (%s)", fixtures, root,
                      strerror(errno));
    char *names[256];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 256)
        if (e->d_name[0] != '.') names[nn++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    int added = 0;
    for (int i = 0; i < nn; i++) {
        char dir[PATH_MAX], mt[64], why[PC_MSG];
        int64_t vocab;
        snprintf(dir, sizeof dir, "%.3800s/%.200s", root, names[i]);
        if (names[i] && !model_type_of(dir, mt, sizeof mt, &vocab) && peft_arch_find(mt) &&
            !pc_have_type(env, mt)) {
            char label[96];
            snprintf(label, sizeof label, strcmp(mt, names[i]) ? "%s (%.60s)" : "%s", mt,
                     names[i]);
            if (pc_add_model(env, dir, label, why, sizeof why) == 0) added++;
        }
        free(names[i]);
    }
    if (!added) return pc_msg(msg, len, -1, "fixtures %s: no loadable model under %s", fixtures, root);
    return 0;
}

/* N(0, 0.02) weights; norms' weights 1 + N(0, 0.1); biases N(0, 0.02): nothing at an identity */
static int is_norm(const char *name)
{
    return strstr(name, "norm") || strstr(name, "ln_") || strstr(name, "LayerNorm");
}

static int write_tiny(const char *dir, const struct tiny *t, uint64_t seed, char *msg, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%.4000s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(t->config, f) < 0 || fclose(f) != 0)
        return pc_msg(msg, len, -1, "%s: cannot write: %s", path, strerror(errno));
    /* the architecture's own parameter list, from the config alone (no weights yet) */
    peft_base_model *meta;
    char err[1024];
    peft_ctx *lctx = peft_ctx_new(0);
    int lrc = lctx ? peft_load_base_model_meta(lctx, path, NULL, &meta) : PEFT_ENOMEM;
    if (lrc) {
        snprintf(err, sizeof err, "%s", lctx ? peft_errmsg(lctx) : "out of memory");
        peft_ctx_free(lctx);
        return pc_msg(msg, len, -1, "built-in %s model: %s", t->arch, err);
    }
    size_t n = peft_base_model_num_params(meta);
    peft_st_out *outs = calloc(n ? n : 1, sizeof *outs);
    float **data = calloc(n ? n : 1, sizeof *data);
    int rc = -1;
    if (!outs || !data) {
        pc_msg(msg, len, -1, "out of memory");
        goto done;
    }
    peft_rng rng;
    peft_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const peft_tensor *p = peft_base_model_param(meta, i, &name);
        if (!(data[i] = malloc((size_t)p->numel * sizeof **data))) {
            pc_msg(msg, len, -1, "out of memory");
            goto done;
        }
        int norm = is_norm(name) && !strstr(name, "bias");
        for (int64_t k = 0; k < p->numel; k++)
            data[i][k] = norm ? (float)(1.0 + 0.1 * peft_rng_normal(&rng))
                              : (float)(0.02 * peft_rng_normal(&rng));
        outs[i] = (peft_st_out){name, PEFT_DTYPE_F32, p->ndim, p->shape, data[i]};
    }
    snprintf(path, sizeof path, "%.4000s/model.safetensors", dir);
    static const char *const meta_kv[] = {"format", "pt", NULL};
    if (peft_st_write(lctx, path, outs, n, meta_kv)) {
        pc_msg(msg, len, -1, "%s", peft_errmsg(lctx));
        goto done;
    }
    rc = 0;
done:
    for (size_t i = 0; data && i < n; i++) free(data[i]);
    free(data);
    free(outs);
    peft_base_model_free(meta);
    peft_ctx_free(lctx);
    return rc;
}

int pc_builtin_models(pc_env *env, const char *tmp_root, const char *only, char *msg, size_t len)
{
    for (size_t i = 0; i < sizeof TINY / sizeof TINY[0]; i++) {
        const struct tiny *t = &TINY[i];
        if (pc_have_type(env, t->arch)) continue;
        if (only) { /* a comma-separated list of arch names */
            size_t k = strlen(t->arch);
            const char *p = only;
            int hit = 0;
            for (; (p = strstr(p, t->arch)); p += k)
                if ((p == only || p[-1] == ',') && (p[k] == 0 || p[k] == ',')) hit = 1;
            if (!hit) continue;
        }
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.4000s/%s", tmp_root, t->arch);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return pc_msg(msg, len, -1, "%s: %s", dir, strerror(errno));
        if (write_tiny(dir, t, 0x5eed0000u + i, msg, len)) return -1;
        char label[96];
        snprintf(label, sizeof label, "%s (tiny)", t->arch);
        if (pc_add_model(env, dir, label, msg, len)) return -1;
    }
    return 0;
}

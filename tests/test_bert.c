/* test_bert.c — BERT and its four task classes against Hugging Face transformers 4.44 and PEFT
 * 0.13.2: base logits and losses of _models/bert_seqcls, bert_tokcls, bert_qa; parameter counts
 * (loaded and from config.json alone, also bert-base-cased); module and site names; the
 * prompt-learning hooks driven by a tiny provider that hands out the fixture adapters' saved
 * prompt_embeddings (prompt and prefix tuning on all three heads: logits, loss, gradients of the
 * prompt table and of the head); token types, dropout, regression, QA clamping; bad configs
 * and bad inputs. Fixtures: hf-peft/_models/bert_* (hidden 32, 4 heads, 2 layers, vocab 128). */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "peft/inputs.h"
#include "peft/model.h"
#include "core/ops/ops.h"
#include "model_fixture.h"
#include "testutil.h"

#define TOL 1e-4

static const char *const MODELS[] = {"bert_seqcls", "bert_tokcls", "bert_qa"};
static const char *const CLASSES[] = {"BertForSequenceClassification", "BertForTokenClassification",
                                      "BertForQuestionAnswering"};
static const char *const TASKS[] = {"SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS"};

#define ck_assert_has(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *model_dir(const char *name)
{
    static char buf[4][4096];
    static int k;
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft/_models/%s", name);
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s", tu_fixture(rel));
    return buf[k];
}

static json_t *idx; /* INDEX.json, loaded on first use */

static json_t *index_json(void)
{
    if (!idx) {
        json_error_t je;
        idx = json_load_file(tu_fixture("hf-peft/INDEX.json"), 0, &je);
        ck_assert_msg(idx != NULL, "INDEX.json: %s", je.text);
    }
    return idx;
}

static json_t *index_case(const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(index_json(), "cases"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "case")), name)) return c;
    ck_abort_msg("INDEX.json: no case %s", name);
    return NULL;
}

static json_t *index_model(const char *name)
{
    json_t *m = json_object_get(json_object_get(index_json(), "models"), name);
    ck_assert_msg(m != NULL, "INDEX.json: no model %s", name);
    return m;
}

typedef struct fwd {
    peft_rng rng;
    peft_graph *g;
    peft_model_outputs out;
} fwd;

/* a forward in a fresh graph (freed by fwd_free); 0 or -1 with err */
static int run(peft_base_model *m, const peft_model_inputs *pin, int record, int training, fwd *f,
               char *err, size_t errlen)
{
    peft_rng_seed(&f->rng, 7);
    f->g = peft_graph_new(&f->rng);
    ck_assert(f->g != NULL);
    peft_graph_set_recording(f->g, record);
    peft_graph_set_training(f->g, training);
    memset(&f->out, 0, sizeof f->out);
    err[0] = 0;
    int rc = m->arch->forward(m, f->g, pin, &f->out, err, errlen);
    if (rc) ck_assert_msg(err[0] != 0, "forward failed without a message");
    return rc;
}

static void run_ok(peft_base_model *m, const peft_model_inputs *pin, int record, fwd *f)
{
    char err[1024];
    ck_assert_msg(run(m, pin, record, 0, f, err, sizeof err) == 0, "forward: %s", err);
}

static const char *run_fails(peft_base_model *m, const peft_model_inputs *pin)
{
    static char err[1024];
    fwd f;
    ck_assert_int_eq(run(m, pin, 0, 0, &f, err, sizeof err), -1);
    peft_graph_free(f.g);
    if (getenv("TU_VERBOSE")) printf("  expected error: %s\n", err);
    return err;
}

/* largest difference between the tensors of fixture file rel and the outputs of those names
 * (shapes must match) */
static double diff_outputs(const char *rel, const peft_model_outputs *o)
{
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    double worst = 0;
    for (size_t i = 0; i < f->n_entries; i++) {
        const peft_st_entry *e = &f->entries[i];
        peft_tensor *t = tu_output_named(o, e->name);
        ck_assert_msg(t, "%s: no output '%s'", rel, e->name);
        ck_assert_int_eq(t->ndim, e->ndim);
        for (int k = 0; k < e->ndim; k++) ck_assert_int_eq(t->shape[k], e->shape[k]);
        double d = tu_max_abs_diff((const float *)e->data, peft_f32(t), t->numel);
        if (!(d <= worst)) worst = d;
    }
    peft_st_close(f);
    return worst;
}

/* a temp model dir: the fixture's weights (symlinked) and its config.json with patch merged */
static char *patched_model(const char *name, const char *patch)
{
    char *dir = tu_tmpdir();
    ck_assert(dir != NULL);
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/model.safetensors", model_dir(name));
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    ck_assert(symlink(src, dst) == 0);
    json_error_t je;
    snprintf(src, sizeof src, "%s/config.json", model_dir(name));
    json_t *cfg = json_load_file(src, 0, &je);
    ck_assert(cfg != NULL);
    if (patch) {
        json_t *p = json_loads(patch, 0, &je);
        ck_assert_msg(p != NULL, "patch: %s", je.text);
        json_object_update(cfg, p);
        json_decref(p);
    }
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    ck_assert(json_dump_file(cfg, dst, JSON_INDENT(2)) == 0);
    json_decref(cfg);
    return dir;
}

static void drop_dir(char *dir)
{
    tu_rmtree(dir);
    free(dir);
}

static int64_t param_total(const peft_base_model *m)
{
    int64_t n = 0;
    for (size_t i = 0; i < m->n_params; i++) n += m->params[i].t->numel;
    return n;
}

/* ---- base models ------------------------------------------------------------------------- */

START_TEST(test_base_logits_and_loss)
{
    const char *name = MODELS[_i];
    peft_base_model *m = tu_model_load_ok(model_dir(name));
    ck_assert_str_eq(m->arch->model_type, "bert");
    ck_assert_str_eq(peft_model_class(m), CLASSES[_i]);
    ck_assert_str_eq(peft_model_task(m), TASKS[_i]);
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft/_models/%s/inputs.json", name);
    peft_inputs in;
    tu_peft_inputs_load(rel, &in);
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    fwd f;
    run_ok(m, &pin, 0, &f);
    snprintf(rel, sizeof rel, "hf-peft/_models/%s/base_logits.safetensors", name);
    double d = diff_outputs(rel, &f.out);
    double ref = json_real_value(json_object_get(index_model(name), "base_loss"));
    ck_assert(f.out.loss != NULL);
    double loss = peft_f32(f.out.loss)[0];
    printf("%s: max |logits - HF| = %.3g, loss %.7f (HF %.7f, diff %.3g)\n", name, d, loss, ref,
           fabs(loss - ref));
    ck_assert_msg(d <= TOL, "%s: logits differ from HF by %g", name, d);
    ck_assert_msg(fabs(loss - ref) <= TOL, "%s: loss %.7f, HF %.7f", name, loss, ref);
    ck_assert_ptr_nonnull(f.out.last_hidden_state);
    ck_assert_int_eq(f.out.last_hidden_state->shape[2], 32);

    /* no mask: row 0 (unpadded) is unchanged; no labels: no loss */
    peft_model_inputs bare = {.B = pin.B, .T = pin.T, .input_ids = pin.input_ids, .attention_mask = NULL, .labels = NULL};
    fwd f2;
    run_ok(m, &bare, 0, &f2);
    ck_assert_ptr_null(f2.out.loss);
    peft_tensor *a = f.out.logits ? f.out.logits : f.out.start_logits;
    peft_tensor *b = f2.out.logits ? f2.out.logits : f2.out.start_logits;
    int64_t row = a->numel / pin.B;
    ck_assert(tu_max_abs_diff(peft_f32(a), peft_f32(b), row) <= 1e-6);
    ck_assert(tu_max_abs_diff(peft_f32(a) + row, peft_f32(b) + row, row) > 1e-6); /* padded row */

    /* explicit zero token types == none, bit for bit; ones change the result */
    int32_t *types = calloc((size_t)(pin.B * pin.T), sizeof *types);
    peft_model_inputs typed = pin;
    typed.token_type_ids = types;
    fwd f3;
    run_ok(m, &typed, 0, &f3);
    peft_tensor *c = f3.out.logits ? f3.out.logits : f3.out.start_logits;
    ck_assert(memcmp(peft_f32(a), peft_f32(c), (size_t)a->numel * sizeof(float)) == 0);
    ck_assert(peft_f32(f3.out.loss)[0] == (float)loss);
    for (int64_t i = 0; i < pin.B * pin.T; i++) types[i] = 1;
    peft_graph_free(f3.g);
    run_ok(m, &typed, 0, &f3);
    c = f3.out.logits ? f3.out.logits : f3.out.start_logits;
    ck_assert(tu_max_abs_diff(peft_f32(a), peft_f32(c), a->numel) > 1e-5);

    free(types);
    peft_graph_free(f.g);
    peft_graph_free(f2.g);
    peft_graph_free(f3.g);
    peft_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

START_TEST(test_params_and_counts)
{
    const char *name = MODELS[_i];
    peft_base_model *m = tu_model_load_ok(model_dir(name));
    int64_t want = json_integer_value(json_object_get(index_model(name), "num_params"));
    ck_assert_int_eq(param_total(m), want);
    for (size_t i = 0; i < m->n_params; i++) ck_assert_int_eq(m->params[i].t->requires_grad, 0);
    /* HF named_parameters() order */
    ck_assert_str_eq(m->params[0].name, "bert.embeddings.word_embeddings.weight");
    ck_assert_str_eq(m->params[1].name, "bert.embeddings.position_embeddings.weight");
    ck_assert_str_eq(m->params[2].name, "bert.embeddings.token_type_embeddings.weight");
    ck_assert_str_eq(m->params[3].name, "bert.embeddings.LayerNorm.weight");
    ck_assert_str_eq(m->params[5].name, "bert.encoder.layer.0.attention.self.query.weight");
    ck_assert_str_eq(m->params[13].name, "bert.encoder.layer.0.attention.output.LayerNorm.weight");
    ck_assert_str_eq(m->params[m->n_params - 1].name, _i == 2 ? "qa_outputs.bias" : "classifier.bias");
    ck_assert_uint_eq(m->n_params, 5 + 2 * 16 + (_i == 0 ? 2 : 0) + 2);
    ck_assert((peft_model_find_param(m, "bert.pooler.dense.weight") != NULL) == (_i == 0));
    /* facts for prompt learning */
    ck_assert_ptr_eq(m->word_embeddings, m->params[0].t);
    ck_assert_int_eq(m->n_layers, 2);
    ck_assert_int_eq(m->n_kv_heads, 4);
    ck_assert_int_eq(m->head_dim, 8);
    ck_assert_int_eq(m->hidden_size, 32);
    ck_assert_int_eq(m->is_encoder_decoder, 0);
    /* the count from config.json alone, for the config's class */
    int64_t n = -1;
    char err[512];
    ck_assert_ptr_nonnull(m->arch->count_params);
    ck_assert_int_eq(m->arch->count_params(m->config, NULL, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, want);
    ck_assert_int_eq(m->arch->count_params(m->config, CLASSES[_i], &n, err, sizeof err), 0);
    ck_assert_int_eq(n, want);
    peft_base_model_free(m);
}
END_TEST

/* the linear and Conv1D sites of m in module order (embedding and norm sites left out) */
static size_t linear_sites(const peft_base_model *m, peft_site **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_sites && n < max; i++)
        if (m->sites[i]->info.kind == PEFT_SITE_LINEAR || m->sites[i]->info.kind == PEFT_SITE_CONV1D)
            out[n++] = m->sites[i];
    return n;
}

START_TEST(test_sites)
{
    static const char *const mods[] = {"attention.self.query", "attention.self.key",
                                       "attention.self.value", "attention.output.dense",
                                       "intermediate.dense", "output.dense"};
    static const int64_t in_f[] = {32, 32, 32, 32, 32, 64}, out_f[] = {32, 32, 32, 32, 64, 32};
    peft_base_model *m = tu_model_load_ok(model_dir(MODELS[_i]));
    size_t want = 12 + (_i == 0 ? 2 : 1);
    peft_site *lin[32];
    ck_assert_uint_eq(linear_sites(m, lin, 32), want);
    /* + word_embeddings, embeddings.LayerNorm and 2 LayerNorms per layer */
    ck_assert_uint_eq(m->n_sites, want + 1 + 1 + 4);
    ck_assert_int_eq(m->sites[0]->info.kind, PEFT_SITE_EMBEDDING);
    ck_assert_int_eq(m->sites[1]->info.kind, PEFT_SITE_NORM);
    for (size_t i = 0; i < 12; i++) {
        peft_site *s = lin[i];
        char n[256];
        snprintf(n, sizeof n, "bert.encoder.layer.%zu.%s", i / 6, mods[i % 6]);
        ck_assert_str_eq(s->info.name, n);
        ck_assert_int_eq(s->info.kind, PEFT_SITE_LINEAR);
        ck_assert_int_eq(s->info.fan_in_fan_out, 0);
        ck_assert_int_eq(s->info.layer_index, (int)(i / 6));
        ck_assert_int_eq(s->info.in_features, in_f[i % 6]);
        ck_assert_int_eq(s->info.out_features, out_f[i % 6]);
        ck_assert_str_eq(s->info.model_type, "bert");
        char w[300];
        snprintf(w, sizeof w, "%s.weight", n);
        ck_assert_ptr_eq(s->info.weight, peft_model_find_param(m, w)->t);
        snprintf(w, sizeof w, "%s.bias", n);
        ck_assert_ptr_eq(s->info.bias, peft_model_find_param(m, w)->t);
    }
    if (_i == 0) {
        ck_assert_str_eq(lin[12]->info.name, "bert.pooler.dense");
        ck_assert_int_eq(lin[12]->info.layer_index, -1);
    }
    peft_site *head = lin[want - 1];
    ck_assert_str_eq(head->info.name, _i == 2 ? "qa_outputs" : "classifier");
    ck_assert_int_eq(head->info.layer_index, -1);
    ck_assert_int_eq(head->info.in_features, 32);
    ck_assert_int_eq(head->info.out_features, _i == 2 ? 2 : 3);
    peft_base_model_free(m);
}
END_TEST

START_TEST(test_count_params_bert_base)
{
    const peft_arch *a = peft_arch_find("bert");
    ck_assert_ptr_nonnull(a);
    json_error_t je;
    json_t *cfg = json_load_file(tu_fixture("hf-configs/bert-base-cased/config.json"), 0, &je);
    ck_assert_msg(cfg != NULL, "%s", je.text);
    int64_t n;
    char err[512];
    /* embeddings 22,665,216 + 12 x 7,087,872 + pooler 590,592 */
    ck_assert_int_eq(a->count_params(cfg, "BertModel", &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 108310272);
    /* PEFT's documented base model for SEQ_CLS: + classifier (2, 768) */
    ck_assert_int_eq(a->count_params(cfg, "BertForSequenceClassification", &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 108311810);
    ck_assert_int_eq(a->count_params(cfg, "BertForTokenClassification", &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 108310272 - 590592 + 1538);
    ck_assert_int_eq(a->count_params(cfg, "BertForQuestionAnswering", &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 108310272 - 590592 + 1538);
    /* its own architectures[0] is BertForMaskedLM: not one of ours */
    ck_assert_int_eq(a->count_params(cfg, NULL, &n, err, sizeof err), -1);
    ck_assert_has(err, "BertForMaskedLM");
    ck_assert_has(err, "BertForSequenceClassification");
    ck_assert_int_eq(a->count_params(cfg, "BertForNothing", &n, err, sizeof err), -1);
    ck_assert_has(err, "BertForNothing");
    json_object_set_new(cfg, "position_embedding_type", json_string("relative_key"));
    ck_assert_int_eq(a->count_params(cfg, "BertModel", &n, err, sizeof err), -1);
    ck_assert_has(err, "relative_key");
    json_decref(cfg);
}
END_TEST

/* a plain BertModel over a head checkpoint ("bert."-prefixed weights): names without the
 * prefix, FEATURE_EXTRACTION, last_hidden_state equal to the head model's sequence output */
START_TEST(test_bert_model_class)
{
    char *dir = patched_model("bert_seqcls", "{\"architectures\": [\"BertModel\"]}");
    peft_base_model *m = tu_model_load_ok(dir);
    ck_assert_str_eq(peft_model_class(m), "BertModel");
    ck_assert_str_eq(peft_model_task(m), "FEATURE_EXTRACTION");
    ck_assert_str_eq(m->params[0].name, "embeddings.word_embeddings.weight");
    ck_assert_str_eq(m->sites[0]->info.name, "embeddings.word_embeddings");
    ck_assert_str_eq(m->sites[2]->info.name, "encoder.layer.0.attention.self.query");
    ck_assert_str_eq(m->sites[m->n_sites - 1]->info.name, "pooler.dense");
    ck_assert_ptr_null(peft_model_find_site(m, "classifier"));
    ck_assert_int_eq(param_total(m), 24515 - 99);
    int64_t n;
    char err[512];
    ck_assert_int_eq(m->arch->count_params(m->config, NULL, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 24515 - 99);

    peft_base_model *ref = tu_model_load_ok(model_dir("bert_seqcls"));
    peft_inputs in;
    tu_peft_inputs_load("hf-peft/_models/bert_seqcls/inputs.json", &in);
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    fwd r;
    run_ok(ref, &pin, 0, &r);
    pin.labels = NULL; /* BertModel takes none */
    fwd f;
    run_ok(m, &pin, 0, &f);
    ck_assert_ptr_null(f.out.logits);
    ck_assert_ptr_null(f.out.loss);
    peft_tensor *h = f.out.last_hidden_state;
    ck_assert_int_eq(h->ndim, 3);
    ck_assert_int_eq(h->shape[0], 2);
    ck_assert_int_eq(h->shape[1], 8);
    ck_assert_int_eq(h->shape[2], 32);
    ck_assert(memcmp(h->data, r.out.last_hidden_state->data, (size_t)h->numel * 4) == 0);
    pin.labels = in.labels;
    ck_assert_has(run_fails(m, &pin), "labels");
    peft_graph_free(f.g);
    peft_graph_free(r.g);
    peft_inputs_free(&in);
    peft_base_model_free(ref);
    peft_base_model_free(m);
    drop_dir(dir);
}
END_TEST

/* ---- prompt-learning hooks ------------------------------------------------------------------ */

/* a provider that hands out the saved prompt_embeddings (nvt, W) of a fixture adapter:
 * prompt tuning W = C, rows expanded to (B, nvt, C); prefix tuning W = 2*L*C, layer l's keys
 * are columns [2l*C, (2l+1)*C) and its values the next C (PEFT's view(B, nvt, 2L, H, D)) */
typedef struct provider {
    peft_prompt_hooks hooks;
    peft_tensor *table; /* (nvt, W), requires grad: collects PEFT's embedding gradient */
    int64_t C;
} provider;

static peft_tensor *rows(provider *p, peft_graph *g, int64_t B)
{
    int64_t nvt = p->table->shape[0];
    int64_t shape[2] = {B, nvt};
    peft_tensor *ids = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, shape);
    if (!ids) return NULL;
    int32_t *id = ids->data;
    for (int64_t i = 0; i < B * nvt; i++) id[i] = (int32_t)(i % nvt);
    int32_t bad;
    return op_embedding(g, p->table, id, B, nvt, &bad); /* (B, nvt, W) */
}

static peft_tensor *hook_virtual_tokens(void *ud, peft_graph *g, int64_t B)
{
    return rows(ud, g, B);
}

static int hook_layer_prefix(void *ud, peft_graph *g, int stack, int layer, int64_t B,
                             peft_tensor **k, peft_tensor **v)
{
    provider *p = ud;
    ck_assert_int_eq(stack, 0);
    peft_tensor *e = rows(p, g, B);
    ck_assert(e != NULL);
    *k = op_slice_lastdim(g, e, 2 * layer * p->C, p->C);
    *v = op_slice_lastdim(g, e, (2 * layer + 1) * p->C, p->C);
    return 0;
}

/* the model's head weights := the case's trained modules_to_save copy, made trainable */
static void load_head_copy(peft_base_model *m, const char *case_name, const char *head)
{
    char rel[256], key[256], pname[128];
    snprintf(rel, sizeof rel, "hf-peft/%s/trainable_params.safetensors", case_name);
    for (int k = 0; k < 2; k++) {
        const char *suffix = k ? "bias" : "weight";
        snprintf(key, sizeof key, "base_model.%s.modules_to_save.default.%s", head, suffix);
        snprintf(pname, sizeof pname, "%s.%s", head, suffix);
        peft_param *p = peft_model_find_param(m, pname);
        ck_assert_ptr_nonnull(p);
        void *old;
        int32_t odt;
        int owned;
        ck_assert_int_eq(peft_tensor_make_f32_owned(p->t, &old, &odt, &owned), 0);
        int64_t n;
        float *v = tu_fixture_f32(rel, key, &n);
        ck_assert_int_eq(n, p->t->numel);
        memcpy(p->t->data, v, (size_t)n * sizeof(float));
        free(v);
        p->t->requires_grad = 1;
    }
}

static double grad_diff(const char *case_name, const char *key, const float *grad, int64_t n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft/%s/grads.safetensors", case_name);
    int64_t m;
    float *ref = tu_fixture_f32(rel, key, &m);
    ck_assert_int_eq(m, n);
    ck_assert_ptr_nonnull(grad);
    double d = tu_max_abs_diff(ref, grad, n);
    free(ref);
    return d;
}

/* one prompt-learning case through the hooks; labels_override: (B, T) token labels or NULL */
static void hook_case(const char *case_name, int prefix, int proj, const int32_t *labels_override)
{
    json_t *c = index_case(case_name);
    const char *arch = json_string_value(json_object_get(c, "arch"));
    const char *head = !strcmp(arch, "bert_qa") ? "qa_outputs" : "classifier";
    peft_base_model *m = tu_model_load_ok(model_dir(arch));
    load_head_copy(m, case_name, head);

    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter/adapter_model.safetensors", case_name);
    int64_t n;
    float *emb = tu_fixture_f32(rel, "prompt_embeddings", &n);
    provider p = {.C = m->hidden_size};
    int64_t W = prefix ? 2 * m->n_layers * m->hidden_size : m->hidden_size;
    int64_t shape[2] = {n / W, W};
    ck_assert_int_eq(shape[0], 5);
    p.table = peft_tensor_new(PEFT_DTYPE_F32, 2, shape);
    memcpy(p.table->data, emb, (size_t)n * sizeof(float));
    free(emb);
    p.table->requires_grad = 1;
    p.hooks.ud = &p;
    p.hooks.n_virtual = shape[0];
    if (prefix) p.hooks.layer_prefix = hook_layer_prefix;
    else p.hooks.virtual_tokens = hook_virtual_tokens;
    m->prompt = &p.hooks;

    snprintf(rel, sizeof rel, "hf-peft/%s/inputs.json", case_name);
    peft_inputs in;
    tu_peft_inputs_load(rel, &in);
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    if (labels_override) {
        pin.labels = labels_override;
        pin.labels_len = 0;
    }
    fwd f;
    run_ok(m, &pin, 1, &f);
    snprintf(rel, sizeof rel, "hf-peft/%s/peft_logits.safetensors", case_name);
    double d = diff_outputs(rel, &f.out);
    double ref = json_real_value(json_object_get(c, "loss"));
    ck_assert_ptr_nonnull(f.out.loss);
    double loss = peft_f32(f.out.loss)[0];
    ck_assert_int_eq(peft_graph_backward(f.g, f.out.loss), 0);

    char key[256];
    snprintf(key, sizeof key, "base_model.%s.modules_to_save.default.weight", head);
    char pname[128];
    snprintf(pname, sizeof pname, "%s.weight", head);
    peft_tensor *w = peft_model_find_param(m, pname)->t;
    double gw = grad_diff(case_name, key, w->grad, w->numel);
    snprintf(key, sizeof key, "base_model.%s.modules_to_save.default.bias", head);
    snprintf(pname, sizeof pname, "%s.bias", head);
    peft_tensor *b = peft_model_find_param(m, pname)->t;
    double gb = grad_diff(case_name, key, b->grad, b->numel);
    double ge = proj ? 0 : grad_diff(case_name, "prompt_encoder.default.embedding.weight",
                                     p.table->grad, p.table->numel);
    printf("%s%s: max |logits - PEFT| = %.3g, loss diff %.3g, max |grad - PEFT|: %s %.3g, "
           "prompt table %s%.3g\n", case_name, labels_override ? " (labels padded here)" : "", d,
           fabs(loss - ref), head, gw > gb ? gw : gb, proj ? "(projection, not compared) " : "", ge);
    ck_assert_msg(d <= TOL, "%s: logits differ from PEFT by %g", case_name, d);
    ck_assert_msg(fabs(loss - ref) <= TOL, "%s: loss %.7f, PEFT %.7f", case_name, loss, ref);
    ck_assert_msg(gw <= TOL && gb <= TOL && ge <= TOL, "%s: grads differ (%g %g %g)", case_name, gw,
                  gb, ge);

    peft_graph_free(f.g);
    peft_inputs_free(&in);
    peft_tensor_free(p.table);
    m->prompt = NULL;
    peft_base_model_free(m);
}

static const char *const PROMPT_CASES[] = {"bert_seqcls__prompt", "bert_tokcls__prompt", "bert_qa__prompt"};
static const char *const PREFIX_CASES[] = {"bert_seqcls__prefix", "bert_tokcls__prefix", "bert_qa__prefix",
                                           "bert_seqcls__prefix_proj"};

START_TEST(test_prompt_hook)
{
    hook_case(PROMPT_CASES[_i], 0, 0, NULL);
}
END_TEST

START_TEST(test_prefix_hook)
{
    hook_case(PREFIX_CASES[_i], 1, _i == 3, NULL);
}
END_TEST

/* token labels of length T with virtual tokens get P leading -100 here (PEFT wants P + T) */
START_TEST(test_prompt_tokcls_label_padding)
{
    peft_inputs in;
    tu_peft_inputs_load("hf-peft/_models/bert_tokcls/inputs.json", &in);
    ck_assert_int_eq(in.labels_len, 0);
    hook_case("bert_tokcls__prompt", 0, 0, in.labels);
    peft_inputs_free(&in);
}
END_TEST

/* ---- heads: QA clamping, regression, dropout --------------------------------------------- */

static double ce_row(const float *x, int64_t n, int64_t target)
{
    double mx = x[0], s = 0;
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < n; i++) s += exp(x[i] - mx);
    return log(s) + mx - x[target];
}

START_TEST(test_qa_positions_clamped)
{
    peft_base_model *m = tu_model_load_ok(model_dir("bert_qa"));
    peft_inputs in;
    tu_peft_inputs_load("hf-peft/_models/bert_qa/inputs.json", &in);
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    int32_t sp[2] = {100, -3}, ep[2] = {8, 5}; /* 100 -> 8 (ignored), -3 -> 0; 8 ignored */
    pin.start_positions = sp;
    pin.end_positions = ep;
    fwd f;
    run_ok(m, &pin, 0, &f);
    const float *st = peft_f32(f.out.start_logits), *en = peft_f32(f.out.end_logits);
    double want = (ce_row(st + 8, 8, 0) + ce_row(en + 8, 8, 5)) / 2;
    double got = peft_f32(f.out.loss)[0];
    ck_assert_msg(fabs(got - want) < 1e-5, "loss %.7f, expected %.7f", got, want);
    /* only one of start/end: no loss (transformers needs both) */
    pin.end_positions = NULL;
    peft_graph_free(f.g);
    run_ok(m, &pin, 0, &f);
    ck_assert_ptr_null(f.out.loss);
    ck_assert_int_eq(f.out.start_logits->ndim, 2);
    ck_assert_int_eq(f.out.start_logits->shape[1], 8);
    peft_graph_free(f.g);
    peft_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

/* num_labels 1: regression (MSE); the classifier keeps row 0 of the fixture's */
START_TEST(test_regression)
{
    char *dir = patched_model("bert_seqcls", "{\"id2label\": {\"0\": \"LABEL_0\"}, \"label2id\": "
                                             "{\"LABEL_0\": 0}, \"problem_type\": null}");
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert(unlink(path) == 0);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture("hf-peft/_models/bert_seqcls/model.safetensors"), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_st_out *t = calloc(f->n_entries, sizeof *t);
    int64_t one[2] = {1, 32};
    for (size_t i = 0; i < f->n_entries; i++) {
        const peft_st_entry *e = &f->entries[i];
        t[i] = (peft_st_out){e->name, e->dtype, e->ndim, e->shape, e->data};
        if (!strcmp(e->name, "classifier.weight")) t[i].shape = one;
        if (!strcmp(e->name, "classifier.bias")) t[i].shape = one;
    }
    ck_assert_msg(peft_st_write(tu_ctx(), path, t, f->n_entries, NULL) == 0, "%s", peft_errmsg(tu_ctx()));
    free(t);
    peft_st_close(f);

    peft_base_model *m = tu_model_load_ok(dir), *ref = tu_model_load_ok(model_dir("bert_seqcls"));
    peft_inputs in;
    tu_peft_inputs_load("hf-peft/_models/bert_seqcls/inputs.json", &in); /* labels 0, 2 */
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    fwd a, b;
    run_ok(m, &pin, 0, &a);
    run_ok(ref, &pin, 0, &b);
    ck_assert_int_eq(a.out.logits->shape[1], 1);
    const float *la = peft_f32(a.out.logits), *lb = peft_f32(b.out.logits);
    /* the same row of the classifier, computed by differently shaped products: equal to rounding */
    ck_assert_msg(fabsf(la[0] - lb[0]) < 1e-6f && fabsf(la[1] - lb[3]) < 1e-6f, "%g %g / %g %g", la[0], lb[0], la[1], lb[3]);
    double want = ((la[0] - 0.0) * (la[0] - 0.0) + (la[1] - 2.0) * (la[1] - 2.0)) / 2;
    ck_assert_msg(fabs(peft_f32(a.out.loss)[0] - want) < 1e-6, "mse %g, expected %g",
                  peft_f32(a.out.loss)[0], want);
    peft_graph_free(a.g);
    peft_graph_free(b.g);
    peft_inputs_free(&in);
    peft_base_model_free(m);
    peft_base_model_free(ref);
    drop_dir(dir);
}
END_TEST

START_TEST(test_dropout_only_in_training)
{
    char *dir = patched_model("bert_tokcls", "{\"hidden_dropout_prob\": 0.3}");
    peft_base_model *m = tu_model_load_ok(dir), *ref = tu_model_load_ok(model_dir("bert_tokcls"));
    peft_inputs in;
    tu_peft_inputs_load("hf-peft/_models/bert_tokcls/inputs.json", &in);
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    fwd a, b, c;
    char err[512];
    run_ok(m, &pin, 0, &a);
    run_ok(ref, &pin, 0, &b);
    ck_assert(memcmp(a.out.logits->data, b.out.logits->data, (size_t)a.out.logits->numel * 4) == 0);
    ck_assert_int_eq(run(m, &pin, 0, 1, &c, err, sizeof err), 0);
    ck_assert(tu_max_abs_diff(peft_f32(a.out.logits), peft_f32(c.out.logits), a.out.logits->numel) > 1e-3);
    peft_graph_free(a.g);
    peft_graph_free(b.g);
    peft_graph_free(c.g);
    peft_inputs_free(&in);
    peft_base_model_free(m);
    peft_base_model_free(ref);
    drop_dir(dir);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

START_TEST(test_bad_configs)
{
    static const struct {
        const char *model, *patch, *needle1, *needle2;
    } bad[] = {
        {"bert_seqcls", "{\"position_embedding_type\": \"relative_key\"}", "position_embedding_type", "relative_key"},
        {"bert_seqcls", "{\"hidden_act\": \"swish\"}", "hidden_act", "swish"},
        {"bert_seqcls", "{\"architectures\": [\"BertForMaskedLM\"]}", "architectures[0]", "BertForMaskedLM"},
        {"bert_seqcls", "{\"architectures\": \"BertModel\"}", "architectures", "list"},
        {"bert_seqcls", "{\"num_attention_heads\": 5}", "hidden_size (32)", "num_attention_heads (5)"},
        {"bert_seqcls", "{\"is_decoder\": true}", "is_decoder", "encoder"},
        {"bert_seqcls", "{\"add_cross_attention\": true}", "add_cross_attention", "unsupported"},
        {"bert_seqcls", "{\"hidden_dropout_prob\": 1.5}", "hidden_dropout_prob", "[0, 1)"},
        {"bert_seqcls", "{\"problem_type\": \"ranking\"}", "problem_type", "ranking"},
        {"bert_seqcls", "{\"layer_norm_eps\": \"small\"}", "layer_norm_eps", "number"},
        {"bert_seqcls", "{\"vocab_size\": 100}", "word_embeddings", "[100, 32]"},
        {"bert_seqcls", "{\"id2label\": {\"0\": \"a\", \"1\": \"b\"}}", "classifier.weight", "[2, 32]"},
        {"bert_qa", "{\"num_labels\": 3}", "BertForQuestionAnswering", "2 labels"},
        {"bert_qa", "{\"architectures\": [\"BertForTokenClassification\"]}", "classifier.weight", "model.safetensors"},
        {"bert_tokcls", "{\"architectures\": [\"BertForSequenceClassification\"]}", "pooler.dense.weight", "bert."},
        {"bert_seqcls", "{\"num_hidden_layers\": 3}", "encoder.layer.2", "model.safetensors"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *dir = patched_model(bad[i].model, bad[i].patch);
        const char *e = tu_model_load_fails(dir);
        ck_assert_has(e, bad[i].needle1);
        ck_assert_has(e, bad[i].needle2);
        ck_assert_has(e, dir);
        drop_dir(dir);
    }
}
END_TEST

START_TEST(test_bad_inputs)
{
    peft_base_model *m = tu_model_load_ok(model_dir(MODELS[_i]));
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft/_models/%s/inputs.json", MODELS[_i]);
    peft_inputs in;
    tu_peft_inputs_load(rel, &in);
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);

    peft_model_inputs x = pin;
    x.input_ids = NULL;
    ck_assert_has(run_fails(m, &x), "input_ids");
    int32_t ids[2 * 8];
    memcpy(ids, in.input_ids, sizeof ids);
    ids[9] = 128;
    x = pin;
    x.input_ids = ids;
    ck_assert_has(run_fails(m, &x), "input_ids[1][1] = 128");
    int32_t types[2 * 8] = {0};
    types[3] = 2;
    x = pin;
    x.token_type_ids = types;
    ck_assert_has(run_fails(m, &x), "token_type_ids[0][3] = 2");
    int32_t *longer = calloc(2 * 65, sizeof *longer);
    x = (peft_model_inputs){.B = 2, .T = 65, .input_ids = longer};
    ck_assert_has(run_fails(m, &x), "max_position_embeddings 64");
    free(longer);
    if (_i == 0) {
        int32_t lab[2] = {0, 3};
        x = pin;
        x.labels = lab;
        ck_assert_has(run_fails(m, &x), "labels[1][0] = 3");
        x.labels = in.labels;
        x.labels_len = 0; /* (B, T) labels on a sequence classifier */
        int32_t tl[16] = {0};
        x.labels = tl;
        ck_assert_has(run_fails(m, &x), "one label per example");
    } else if (_i == 1) {
        int32_t lab[16];
        memcpy(lab, in.labels, sizeof lab);
        lab[2] = -5;
        x = pin;
        x.labels = lab;
        ck_assert_has(run_fails(m, &x), "labels[0][2] = -5");
        x.labels_len = 1;
        ck_assert_has(run_fails(m, &x), "labels of shape (2, 8)");
    }
    peft_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

START_TEST(test_multi_label_refused)
{
    char *dir = patched_model("bert_seqcls", "{\"problem_type\": \"multi_label_classification\"}");
    peft_base_model *m = tu_model_load_ok(dir);
    peft_inputs in;
    tu_peft_inputs_load("hf-peft/_models/bert_seqcls/inputs.json", &in);
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    ck_assert_has(run_fails(m, &pin), "multi_label_classification");
    pin.labels = NULL; /* inference still works */
    fwd f;
    run_ok(m, &pin, 0, &f);
    peft_graph_free(f.g);
    peft_inputs_free(&in);
    peft_base_model_free(m);
    drop_dir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bert");
    TCase *tc = tcase_create("bert");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_base_logits_and_loss, 0, 3);
    tcase_add_loop_test(tc, test_params_and_counts, 0, 3);
    tcase_add_loop_test(tc, test_sites, 0, 3);
    tcase_add_test(tc, test_count_params_bert_base);
    tcase_add_test(tc, test_bert_model_class);
    tcase_add_loop_test(tc, test_prompt_hook, 0, 3);
    tcase_add_loop_test(tc, test_prefix_hook, 0, 4);
    tcase_add_test(tc, test_prompt_tokcls_label_padding);
    tcase_add_test(tc, test_qa_positions_clamped);
    tcase_add_test(tc, test_regression);
    tcase_add_test(tc, test_dropout_only_in_training);
    tcase_add_test(tc, test_bad_configs);
    tcase_add_loop_test(tc, test_bad_inputs, 0, 3);
    tcase_add_test(tc, test_multi_label_refused);
    suite_add_tcase(s, tc);
    int failed = tu_run_suite(s);
    json_decref(idx);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

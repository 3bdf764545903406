/* test_gpt2.c — the GPT-2 base model against Hugging Face transformers 4.44: logits (2, 8, 128)
 * and loss on the fixture inputs, parameter count, linear sites, sharded / bf16 / old-name
 * checkpoints, an untied lm_head, and the errors for bad directories, configs, weights and
 * inputs; token_type_ids (transformers adds wte[token_type_ids] to the embeddings): against
 * the same model with those rows folded into wpe, their gradient by finite differences, and
 * PEFT's prompt-learning rule (dropped with a warning). Fixture: hf-peft/_models/gpt2 (n_embd
 * 32, n_head 4, n_layer 2, vocab 128). */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "peft/dtype.h"
#include "peft/model.h"
#include "peft/peft.h"
#include "peft/warn.h"
#include "fd.h"
#include "model_fixture.h"
#include "testutil.h"

#define GPT2_DIR "hf-peft/_models/gpt2"
#define BASE_LOSS 4.879459857940674
#define NUM_PARAMS 31616

/* ---- helpers ------------------------------------------------------------------------------ */

/* runs the forward; returns malloc'd logits (B*T*V floats) and the loss (NAN without labels),
 * or NULL with err set */
static float *forward(peft_base_model *m, const peft_model_inputs *pin, double *loss, char *err,
                      size_t errlen)
{
    peft_rng rng;
    peft_rng_seed(&rng, 42);
    peft_graph *g = peft_graph_new(&rng);
    ck_assert(g != NULL);
    peft_model_outputs out = {0};
    float *logits = NULL;
    *loss = NAN;
    if (m->arch->forward(m, g, pin, &out, err, errlen) == 0) {
        ck_assert(out.logits != NULL);
        ck_assert_int_eq(out.logits->numel, pin->B * pin->T * 128);
        logits = malloc((size_t)out.logits->numel * sizeof *logits);
        memcpy(logits, out.logits->data, (size_t)out.logits->numel * sizeof *logits);
        if (out.loss) *loss = peft_f32(out.loss)[0];
        else ck_assert(pin->labels == NULL);
    }
    peft_graph_free(g);
    return logits;
}

static float *forward_fixture(peft_base_model *m, double *loss)
{
    tu_inputs in = tu_inputs_load(GPT2_DIR);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels};
    char err[512] = "";
    float *logits = forward(m, &pin, loss, err, sizeof err);
    ck_assert_msg(logits != NULL, "forward: %s", err);
    tu_inputs_free(&in);
    return logits;
}

/* the reference logits (2, 8, 128), malloc'd */
static float *ref_logits(int64_t *n)
{
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(GPT2_DIR "/base_logits.safetensors"), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, "logits");
    ck_assert(e && e->dtype == PEFT_DTYPE_F32 && e->ndim == 3);
    *n = (int64_t)(e->nbytes / 4);
    float *r = malloc(e->nbytes);
    memcpy(r, e->data, e->nbytes);
    peft_st_close(f);
    return r;
}

static peft_base_model *load_ok(const char *dir)
{
    peft_base_model *m = tu_model_load_ok(dir);
    ck_assert(m != NULL);
    return m;
}

#define ck_assert_has(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(test_logits_and_loss)
{
    peft_base_model *m = load_ok(tu_fixture(GPT2_DIR));
    ck_assert_str_eq(m->arch->model_type, "gpt2");
    ck_assert_str_eq(m->arch->class_name, "GPT2LMHeadModel");
    ck_assert_str_eq(m->arch->task_type, "CAUSAL_LM");
    double loss;
    float *logits = forward_fixture(m, &loss);
    int64_t n;
    float *ref = ref_logits(&n);
    ck_assert_int_eq(n, 2 * 8 * 128);
    double d = tu_max_abs_diff(logits, ref, n);
    printf("gpt2: max |logits - HF| = %.3g, loss %.7f (HF %.7f, diff %.3g)\n", d, loss, BASE_LOSS,
           fabs(loss - BASE_LOSS));
    ck_assert_msg(d <= 1e-4, "logits differ from HF by %g", d);
    ck_assert_msg(fabs(loss - BASE_LOSS) <= 1e-4, "loss %.7f, HF %.7f", loss, BASE_LOSS);
    free(logits);
    free(ref);
    peft_base_model_free(m);
}
END_TEST

/* without a mask every key is visible: the unpadded row 0 is unchanged; no labels, no loss */
START_TEST(test_no_mask_no_labels)
{
    peft_base_model *m = load_ok(tu_fixture(GPT2_DIR));
    tu_inputs in = tu_inputs_load(GPT2_DIR);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = NULL, .labels = NULL};
    char err[512] = "";
    double loss;
    float *logits = forward(m, &pin, &loss, err, sizeof err);
    ck_assert_msg(logits != NULL, "%s", err);
    ck_assert(isnan(loss));
    int64_t n;
    float *ref = ref_logits(&n);
    double d = tu_max_abs_diff(logits, ref, 8 * 128); /* row 0 */
    ck_assert_msg(d <= 1e-4, "row 0 differs by %g", d);
    free(logits);
    free(ref);
    tu_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

START_TEST(test_params)
{
    peft_base_model *m = load_ok(tu_fixture(GPT2_DIR));
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        total += m->params[i].t->numel;
        ck_assert_int_eq(m->params[i].t->requires_grad, 0);
        ck_assert_int_eq(m->params[i].t->dtype, PEFT_DTYPE_F32);
    }
    ck_assert_int_eq(total, NUM_PARAMS);
    ck_assert_uint_eq(m->n_params, 2 + 2 * 12 + 2);
    /* HF named_parameters() order, lm_head tied (not listed) */
    ck_assert_str_eq(m->params[0].name, "transformer.wte.weight");
    ck_assert_str_eq(m->params[1].name, "transformer.wpe.weight");
    ck_assert_str_eq(m->params[2].name, "transformer.h.0.ln_1.weight");
    ck_assert_str_eq(m->params[4].name, "transformer.h.0.attn.c_attn.weight");
    ck_assert_str_eq(m->params[m->n_params - 1].name, "transformer.ln_f.bias");
    ck_assert_ptr_null(peft_model_find_param(m, "lm_head.weight"));
    peft_param *p = peft_model_find_param(m, "transformer.h.1.mlp.c_fc.weight");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p->t->ndim, 2);
    ck_assert_int_eq(p->t->shape[0], 32);
    ck_assert_int_eq(p->t->shape[1], 128);
    ck_assert_ptr_null(peft_model_find_param(m, "transformer.h.2.ln_1.weight"));
    /* config getters */
    int64_t v;
    double r;
    ck_assert_int_eq(peft_config_int(tu_ctx(), m, "n_embd", 0, 0, &v), 0);
    ck_assert_int_eq(v, 32);
    ck_assert_int_eq(peft_config_int(tu_ctx(), m, "n_inner", 1, 77, &v), 0); /* null */
    ck_assert_int_eq(v, 77);
    ck_assert_int_eq(peft_config_real(tu_ctx(), m, "layer_norm_epsilon", 0, 0, &r), 0);
    ck_assert(fabs(r - 1e-5) < 1e-12);
    ck_assert_int_eq(peft_config_int(tu_ctx(), m, "no_such_field", 0, 0, &v), PEFT_EFORMAT);
    ck_assert_has(peft_errmsg(tu_ctx()), "config.json");
    ck_assert_has(peft_errmsg(tu_ctx()), "no_such_field");
    ck_assert_int_eq(peft_config_int(tu_ctx(), m, "model_type", 0, 0, &v), PEFT_EFORMAT);
    ck_assert_has(peft_errmsg(tu_ctx()), "config.json");
    ck_assert_has(peft_errmsg(tu_ctx()), "model_type");
    ck_assert_has(peft_errmsg(tu_ctx()), "integer");
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
    static const char *const names[] = {
        "transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc",
        "transformer.h.0.mlp.c_proj",  "transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj",
        "transformer.h.1.mlp.c_fc",    "transformer.h.1.mlp.c_proj",
    };
    static const int64_t in_f[] = {32, 32, 32, 128}, out_f[] = {96, 32, 128, 32};
    peft_base_model *m = load_ok(tu_fixture(GPT2_DIR));
    peft_site *lin[32];
    ck_assert_uint_eq(linear_sites(m, lin, 32), 9); /* 8 Conv1D + lm_head */
    /* + transformer.wte and the norms ln_1, ln_2 (x2 blocks), ln_f */
    ck_assert_uint_eq(m->n_sites, 9 + 1 + 5);
    for (size_t i = 0; i < 8; i++) {
        peft_site *s = lin[i];
        ck_assert_str_eq(s->info.name, names[i]);
        ck_assert_ptr_eq(peft_model_find_site(m, names[i]), s);
        ck_assert_uint_eq(s->info.struct_size, sizeof(peft_site_info));
        ck_assert_int_eq(s->info.kind, PEFT_SITE_CONV1D);
        ck_assert_int_eq(s->info.fan_in_fan_out, 1);
        ck_assert_int_eq(s->info.layer_index, (int)(i / 4));
        ck_assert_int_eq(s->info.in_features, in_f[i % 4]);
        ck_assert_int_eq(s->info.out_features, out_f[i % 4]);
        ck_assert_str_eq(s->info.model_type, "gpt2");
        ck_assert_ptr_eq(s->owner, m);
        ck_assert_int_eq(s->n_chain, 0);
        char wname[256];
        snprintf(wname, sizeof wname, "%s.weight", names[i]);
        ck_assert_ptr_eq(s->info.weight, peft_model_find_param(m, wname)->t);
        snprintf(wname, sizeof wname, "%s.bias", names[i]);
        ck_assert_ptr_eq(s->info.bias, peft_model_find_param(m, wname)->t);
    }
    /* lm_head: tied to wte, an nn.Linear site over wte's weight; wte an embedding site */
    peft_site *lm = peft_model_find_site(m, "lm_head"), *wte = peft_model_find_site(m, "transformer.wte");
    ck_assert_ptr_eq(lm, lin[8]);
    ck_assert_ptr_eq(m->sites[0], wte);
    ck_assert_int_eq(lm->info.kind, PEFT_SITE_LINEAR);
    ck_assert_int_eq(wte->info.kind, PEFT_SITE_EMBEDDING);
    ck_assert_ptr_eq(lm->info.weight, peft_model_find_param(m, "transformer.wte.weight")->t);
    ck_assert_ptr_eq(wte->info.weight, lm->info.weight);
    ck_assert(lm->info.tied && wte->info.tied);
    ck_assert_int_eq(wte->info.in_features, 128);
    ck_assert_int_eq(wte->info.out_features, 32);
    peft_site *ln = peft_model_find_site(m, "transformer.h.1.ln_2");
    ck_assert(ln && ln->info.kind == PEFT_SITE_NORM && ln->info.norm_type == PEFT_NORM_LAYER);
    ck_assert_ptr_eq(ln->info.bias, peft_model_find_param(m, "transformer.h.1.ln_2.bias")->t);
    ck_assert_int_eq(ln->info.layer_index, 1);
    ck_assert_ptr_null(peft_model_find_site(m, "c_attn")); /* exact names only */
    peft_base_model_free(m);
}
END_TEST

START_TEST(test_sharded)
{
    char *dir = tu_tmpdir();
    ck_assert(dir != NULL);
    tu_write_config(GPT2_DIR, dir, NULL, TU_NULL_SETS);
    tu_tensors ts = tu_tensors_read(GPT2_DIR);
    size_t half = ts.n / 2;
    tu_tensors part = ts;
    part.n = half;
    tu_tensors_write(&part, dir, "model-00001-of-00002.safetensors");
    part.t += half;
    part.n = ts.n - half;
    tu_tensors_write(&part, dir, "model-00002-of-00002.safetensors");
    json_t *idx = json_object(), *wm = json_object();
    json_object_set_new(idx, "metadata", json_pack("{s:i}", "total_size", 126464));
    for (size_t i = 0; i < ts.n; i++)
        json_object_set_new(wm, ts.names[i], json_string(i < half ? "model-00001-of-00002.safetensors"
                                                                  : "model-00002-of-00002.safetensors"));
    json_object_set_new(idx, "weight_map", wm);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    ck_assert(json_dump_file(idx, path, JSON_INDENT(2)) == 0);
    json_decref(idx);

    peft_base_model *m = load_ok(dir);
    ck_assert_uint_eq(m->n_files, 2); /* each shard opened once */
    double loss;
    float *logits = forward_fixture(m, &loss);
    peft_base_model *ref_m = load_ok(tu_fixture(GPT2_DIR));
    double ref_loss;
    float *ref = forward_fixture(ref_m, &ref_loss);
    ck_assert(memcmp(logits, ref, 2 * 8 * 128 * sizeof(float)) == 0);
    ck_assert(loss == ref_loss);
    free(logits);
    free(ref);
    peft_base_model_free(m);
    peft_base_model_free(ref_m);

    /* a shard named in the index but absent */
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    ck_assert(remove(path) == 0);
    const char *e = tu_model_load_fails(dir);
    ck_assert_has(e, "model-00002-of-00002.safetensors");
    ck_assert_has(e, "model.safetensors.index.json");
    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bf16)
{
    char *dir = tu_tmpdir();
    tu_write_config(GPT2_DIR, dir, NULL, TU_NULL_SETS);
    tu_tensors ts = tu_tensors_read(GPT2_DIR);
    for (size_t i = 0; i < ts.n; i++) {
        int64_t n = peft_shape_numel(ts.t[i].ndim, ts.t[i].shape);
        const float *src = ts.data[i];
        uint16_t *dst = malloc((size_t)n * 2);
        ck_assert_int_eq(peft_convert_from_f32(PEFT_DTYPE_BF16, src, dst, n), 0);
        free(ts.data[i]);
        ts.data[i] = dst;
        ts.t[i].data = dst;
        ts.t[i].dtype = PEFT_DTYPE_BF16;
    }
    tu_tensors_write(&ts, dir, NULL);
    peft_base_model *m = load_ok(dir);
    ck_assert_int_eq(peft_model_find_param(m, "transformer.wte.weight")->t->dtype, PEFT_DTYPE_BF16);
    double loss;
    float *logits = forward_fixture(m, &loss);
    int64_t n;
    float *ref = ref_logits(&n);
    double d = tu_max_abs_diff(logits, ref, n);
    printf("gpt2 bf16 weights: max |logits - HF f32| = %.3g, loss %.5f\n", d, loss);
    ck_assert_msg(d <= 2e-2, "bf16 logits differ by %g", d);
    ck_assert(fabs(loss - BASE_LOSS) <= 2e-2);
    free(logits);
    free(ref);
    peft_base_model_free(m);
    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* old checkpoints name the weights without "transformer."; they load under the HF names */
START_TEST(test_old_names)
{
    char *dir = tu_tmpdir();
    tu_write_config(GPT2_DIR, dir, NULL, TU_NULL_SETS);
    tu_tensors ts = tu_tensors_read(GPT2_DIR);
    for (size_t i = 0; i < ts.n; i++) {
        char *stripped = strdup(ts.names[i] + strlen("transformer."));
        free(ts.names[i]);
        ts.names[i] = stripped;
        ts.t[i].name = stripped;
    }
    tu_tensors_write(&ts, dir, NULL);
    peft_base_model *m = load_ok(dir);
    ck_assert_ptr_nonnull(peft_model_find_param(m, "transformer.h.0.attn.c_attn.weight"));
    ck_assert_ptr_null(peft_model_find_param(m, "h.0.attn.c_attn.weight"));
    double loss;
    float *logits = forward_fixture(m, &loss);
    int64_t n;
    float *ref = ref_logits(&n);
    ck_assert(tu_max_abs_diff(logits, ref, n) <= 1e-4);
    free(logits);
    free(ref);
    peft_base_model_free(m);
    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* tie_word_embeddings false with a separate lm_head.weight = 2 * wte: logits double */
START_TEST(test_untied_head)
{
    char *dir = tu_tmpdir();
    tu_write_config(GPT2_DIR, dir, "{\"tie_word_embeddings\": false}", TU_NULL_SETS);
    tu_tensors ts = tu_tensors_read(GPT2_DIR);
    size_t w = tu_tensors_find(&ts, "transformer.wte.weight");
    float *head = malloc(128 * 32 * sizeof *head);
    for (int i = 0; i < 128 * 32; i++) head[i] = 2.0f * ((float *)ts.data[w])[i];
    tu_tensors_add(&ts, "lm_head.weight", PEFT_DTYPE_F32, 2, ts.shapes[w], head);
    free(head);
    tu_tensors_write(&ts, dir, NULL);

    peft_base_model *m = load_ok(dir);
    ck_assert_ptr_nonnull(peft_model_find_param(m, "lm_head.weight"));
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++) total += m->params[i].t->numel;
    ck_assert_int_eq(total, NUM_PARAMS + 128 * 32);
    double loss;
    float *logits = forward_fixture(m, &loss);
    int64_t n;
    float *ref = ref_logits(&n);
    for (int64_t i = 0; i < n; i++) ref[i] *= 2.0f;
    ck_assert(tu_max_abs_diff(logits, ref, n) <= 2e-4);
    free(logits);
    free(ref);
    peft_base_model_free(m);

    /* untied but the file has no lm_head.weight: an error, not a random head */
    tu_tensors_remove(&ts, "lm_head.weight");
    tu_tensors_write(&ts, dir, NULL);
    const char *e = tu_model_load_fails(dir);
    ck_assert_has(e, "lm_head.weight");
    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_dirs)
{
    char *dir = tu_tmpdir();
    char sub[4096], path[4096];
    const char *e;

    /* missing config.json */
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "config.json");

    /* invalid JSON */
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert(tu_write_file(path, "{\"model_type\": ", 15) == 0);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "config.json");
    ck_assert_has(e, "JSON");

    /* no model_type */
    ck_assert(tu_write_file(path, "{\"n_embd\": 32}", 14) == 0);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "config.json");
    ck_assert_has(e, "model_type");

    /* unknown model_type: named, with the supported list */
    tu_write_config(GPT2_DIR, dir, "{\"model_type\": \"gpt3-turbo\"}", TU_NULL_SETS);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "config.json");
    ck_assert_has(e, "gpt3-turbo");
    ck_assert_has(e, "gpt2");

    /* no weights at all: both paths named */
    tu_write_config(GPT2_DIR, dir, NULL, TU_NULL_SETS);
    e = tu_model_load_fails(dir);
    snprintf(sub, sizeof sub, "%s/model.safetensors", dir);
    ck_assert_has(e, sub);
    snprintf(sub, sizeof sub, "%s/model.safetensors.index.json", dir);
    ck_assert_has(e, sub);

    /* unsupported config values */
    tu_tensors ts = tu_tensors_read(GPT2_DIR);
    tu_tensors_write(&ts, dir, NULL);
    tu_write_config(GPT2_DIR, dir, "{\"activation_function\": \"relu\"}", TU_NULL_SETS);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "activation_function");
    ck_assert_has(e, "relu");
    tu_write_config(GPT2_DIR, dir, "{\"scale_attn_by_inverse_layer_idx\": true}", TU_NULL_SETS);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "scale_attn_by_inverse_layer_idx");
    tu_write_config(GPT2_DIR, dir, "{\"n_embd\": \"32\"}", TU_NULL_SETS);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "config.json");
    ck_assert_has(e, "n_embd");

    /* a missing tensor */
    tu_write_config(GPT2_DIR, dir, NULL, TU_NULL_SETS);
    size_t k = tu_tensors_find(&ts, "transformer.ln_f.bias");
    peft_st_out tmp = ts.t[k];
    ts.t[k] = ts.t[ts.n - 1];
    tu_tensors part = ts;
    part.n--;
    tu_tensors_write(&part, dir, NULL);
    ts.t[ts.n - 1] = ts.t[k];
    ts.t[k] = tmp;
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "transformer.ln_f.bias");
    ck_assert_has(e, "model.safetensors");

    /* c_attn weight (32, 64) where the config implies (32, 96) */
    k = tu_tensors_find(&ts, "transformer.h.0.attn.c_attn.weight");
    ts.shapes[k][1] = 64;
    tu_tensors_write(&ts, dir, NULL);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "transformer.h.0.attn.c_attn.weight");
    ck_assert_has(e, "[32, 64]");
    ck_assert_has(e, "[32, 96]");
    ck_assert_has(e, "model.safetensors");

    /* an integer tensor where a weight is expected */
    ts.shapes[k][1] = 96;
    size_t b = tu_tensors_find(&ts, "transformer.h.0.attn.c_attn.bias");
    ts.t[b].dtype = PEFT_DTYPE_I32;
    tu_tensors_write(&ts, dir, NULL);
    e = tu_model_load_fails(dir);
    ck_assert_has(e, "transformer.h.0.attn.c_attn.bias");
    ck_assert_has(e, "I32");

    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_inputs)
{
    peft_base_model *m = load_ok(tu_fixture(GPT2_DIR));
    tu_inputs in = tu_inputs_load(GPT2_DIR);
    char err[512];
    double loss;

    in.ids[1 * in.T + 3] = 128; /* == vocab_size */
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels};
    ck_assert_ptr_null(forward(m, &pin, &loss, err, sizeof err));
    ck_assert_has(err, "input_ids[1][3]");
    ck_assert_has(err, "128");
    in.ids[1 * in.T + 3] = -1;
    ck_assert_ptr_null(forward(m, &pin, &loss, err, sizeof err));
    ck_assert_has(err, "-1");
    in.ids[1 * in.T + 3] = 91;

    in.labels[5] = 500;
    ck_assert_ptr_null(forward(m, &pin, &loss, err, sizeof err));
    ck_assert_has(err, "labels[0][5]");
    ck_assert_has(err, "500");
    in.labels[5] = 74;

    /* longer than n_positions (64) */
    int32_t *ids = calloc(65, sizeof *ids);
    peft_model_inputs lng = {.B = 1, .T = 65, .input_ids = ids, .attention_mask = NULL, .labels = NULL};
    ck_assert_ptr_null(forward(m, &lng, &loss, err, sizeof err));
    ck_assert_has(err, "65");
    ck_assert_has(err, "n_positions");
    /* exactly n_positions is fine */
    lng.T = 64;
    float *l = forward(m, &lng, &loss, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    free(l);
    free(ids);

    /* still fine afterwards */
    float *ok = forward(m, &pin, &loss, err, sizeof err);
    ck_assert_msg(ok != NULL, "%s", err);
    ck_assert(fabs(loss - BASE_LOSS) <= 1e-4);
    free(ok);
    tu_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

/* ---- token_type_ids ----------------------------------------------------------------------- */

/* a token type per position, the same for every row, with repeats and ids also in input_ids */
static int32_t tt_at(int64_t t) { return (int32_t)((t * 37 + 5) % 7 == 0 ? 0 : (t * 53 + 11) % 128); }

/* GPT2Model: hidden = wte[ids] + wpe[pos] + wte[token_type_ids]. Positions run 0..T-1 for every
 * row, so with one token type per position the same logits come from the model whose wpe row t
 * holds wpe[t] + wte[tt[t]] (up to the order of the float additions) */
START_TEST(test_token_type_ids)
{
    peft_base_model *m = load_ok(tu_fixture(GPT2_DIR));
    tu_inputs in = tu_inputs_load(GPT2_DIR);
    int32_t *tt = malloc((size_t)(in.B * in.T) * sizeof *tt);
    for (int64_t i = 0; i < in.B * in.T; i++) tt[i] = tt_at(i % in.T);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask,
                             .labels = in.labels, .token_type_ids = tt};
    char err[512] = "";
    double loss_tt, loss_folded, loss_plain;
    float *with_tt = forward(m, &pin, &loss_tt, err, sizeof err);
    ck_assert_msg(with_tt != NULL, "%s", err);
    float *plain = forward_fixture(m, &loss_plain);
    double diff = 0;
    for (int64_t i = 0; i < in.B * in.T * 128; i++) diff = fmax(diff, fabs(with_tt[i] - plain[i]));
    ck_assert_msg(diff > 1e-2, "token_type_ids changed nothing (max |diff| %g)", diff);
    peft_base_model_free(m);

    /* the same weights with wte[tt[t]] folded into wpe[t] */
    tu_tensors ts = tu_tensors_read(GPT2_DIR);
    const size_t iw = tu_tensors_find(&ts, "transformer.wte.weight");
    const size_t ip = tu_tensors_find(&ts, "transformer.wpe.weight");
    ck_assert_int_eq(ts.t[iw].dtype, PEFT_DTYPE_F32);
    ck_assert_int_eq(ts.t[ip].dtype, PEFT_DTYPE_F32);
    const int64_t C = ts.shapes[iw][1];
    const float *wte = ts.data[iw];
    float *wpe = ts.data[ip];
    for (int64_t t = 0; t < in.T; t++)
        for (int64_t c = 0; c < C; c++) wpe[t * C + c] += wte[(int64_t)tt_at(t) * C + c];
    char *dir = tu_tmpdir();
    tu_tensors_write(&ts, dir, NULL);
    tu_write_config(GPT2_DIR, dir, NULL, TU_NULL_SETS);
    tu_tensors_free(&ts);
    m = load_ok(dir);
    float *folded = forward_fixture(m, &loss_folded);
    diff = 0;
    for (int64_t i = 0; i < in.B * in.T * 128; i++) diff = fmax(diff, fabs(with_tt[i] - folded[i]));
    ck_assert_msg(diff < 2e-5, "logits with token_type_ids vs wpe + wte[tt]: max |diff| %g", diff);
    ck_assert_msg(fabs(loss_tt - loss_folded) < 1e-5, "loss %.8f vs %.8f", loss_tt, loss_folded);

    /* a token type outside the vocabulary: refused by name */
    tt[1 * in.T + 2] = 128;
    ck_assert_ptr_null(forward(m, &pin, &loss_tt, err, sizeof err));
    ck_assert_has(err, "gpt2: token_type_ids[1][2] = 128 is outside the vocabulary [0, 128)");
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);
    free(with_tt);
    free(plain);
    free(folded);
    free(tt);
    tu_inputs_free(&in);
}
END_TEST

typedef struct {
    peft_base_model *m;
    const peft_model_inputs *in;
} tt_fd_ud;

static peft_tensor *tt_fd_build(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)in; /* in[0] is the model's own wte */
    const tt_fd_ud *u = ud;
    peft_model_outputs out;
    char err[512] = "";
    ck_assert_msg(u->m->arch->forward(u->m, g, u->in, &out, err, sizeof err) == 0, "%s", err);
    return out.logits;
}

/* d logits / d wte by finite differences on a tiny random GPT-2 (n_embd 4, vocab 8, wte tied to
 * lm_head): the token types' lookup in wte gets its gradient through the tape */
START_TEST(test_token_type_ids_grad)
{
    char *dir = tu_tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    const char *cfg = "{\"model_type\": \"gpt2\", \"n_layer\": 1, \"n_embd\": 4, \"n_head\": 2,"
                      " \"vocab_size\": 8, \"n_positions\": 8, \"embd_pdrop\": 0, \"resid_pdrop\": 0,"
                      " \"attn_pdrop\": 0}";
    ck_assert(tu_write_file(p, cfg, strlen(cfg)) == 0);
    peft_load_options o = {.struct_size = sizeof o, .random_init = 1, .seed = 3};
    peft_base_model *m = NULL;
    ck_assert_msg(peft_load_base_model_ex(tu_ctx(), dir, &o, &m) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_param *w = peft_model_find_param(m, "transformer.wte.weight");
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->t->dtype, PEFT_DTYPE_F32);
    for (int64_t i = 0; i < w->t->numel; i++) peft_f32(w->t)[i] *= 20.0f; /* not near zero */
    w->t->requires_grad = 1;
    int32_t ids[6] = {1, 2, 3, 4, 5, 1}, tt[6] = {0, 0, 6, 7, 7, 2};
    peft_model_inputs pin = {.B = 2, .T = 3, .input_ids = ids, .token_type_ids = tt};
    tt_fd_ud u = {m, &pin};
    fd_opts fo = {.graph_seed = 1, .training = 0};
    peft_tensor *in[1] = {w->t};
    peft_rng_seed(&fd_rng, 1234); /* the random R of L = sum(logits * R) */
    fd_check_grads(&fo, "gpt2 token_type_ids", tt_fd_build, in, 1, &u, 1e-2, 2e-2, 2e-3);
    w->t->requires_grad = 0;
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static int n_tt_warnings;
static void count_tt_warning(const char *msg, void *ud)
{
    (void)ud;
    if (strstr(msg, "Token type ids are not supported for parameter efficient tuning. Ignoring "
                    "token type ids"))
        n_tt_warnings++;
}

/* PeftModelForCausalLM with a prompt-learning adapter drops token_type_ids with a warning: the
 * logits are those without them */
START_TEST(test_token_type_ids_prompt_learning)
{
    static const char *const cfgs[] = {
        "{\"peft_type\": \"PROMPT_TUNING\", \"task_type\": \"CAUSAL_LM\", \"num_virtual_tokens\": 3}",
        "{\"peft_type\": \"PREFIX_TUNING\", \"task_type\": \"CAUSAL_LM\", \"num_virtual_tokens\": 3}",
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        peft_ctx *ctx = peft_ctx_new(1);
        peft_base_model *b = load_ok(tu_fixture(GPT2_DIR));
        peft_model *pm = NULL;
        ck_assert_msg(peft_get_peft_model(ctx, b, cfgs[k], "default", 0, &pm) == 0, "%s",
                      peft_errmsg(ctx));
        int32_t ids[4] = {5, 9, 2, 7}, tt[4] = {1, 1, 3, 3};
        peft_model_inputs pin = {.B = 1, .T = 4, .input_ids = ids};
        float logits[2][7 * 128];
        n_tt_warnings = 0;
        peft_set_warning_handler(count_tt_warning, NULL);
        for (int with = 0; with < 2; with++) {
            pin.token_type_ids = with ? tt : NULL;
            peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
            peft_model_outputs out;
            ck_assert_msg(peft_model_forward(pm, g, &pin, &out) == 0, "%s", peft_errmsg(ctx));
            ck_assert(out.logits->numel <= 7 * 128);
            memcpy(logits[with], out.logits->data, (size_t)out.logits->numel * sizeof(float));
            peft_graph_free(g);
        }
        peft_set_warning_handler(NULL, NULL);
        ck_assert_int_eq(n_tt_warnings, 1);
        ck_assert(memcmp(logits[0], logits[1], sizeof logits[0]) == 0);
        peft_model_free(pm);
        peft_ctx_free(ctx);
    }
}
END_TEST

/* a GPT2ForSequenceClassification copy of the fixture (score (2, 32), pad_token_id 0) in a new
 * temp dir (caller removes and frees it), with wte[types[t]] folded into wpe row t for t < n */
static char *seqcls_dir(const int32_t *types, int64_t n)
{
    tu_tensors ts = tu_tensors_read(GPT2_DIR);
    const size_t iw = tu_tensors_find(&ts, "transformer.wte.weight");
    const size_t ip = tu_tensors_find(&ts, "transformer.wpe.weight");
    const float *wte = ts.data[iw];
    float *wpe = ts.data[ip];
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < 32; c++) wpe[t * 32 + c] += wte[(int64_t)types[t] * 32 + c];
    float score[2 * 32];
    for (int i = 0; i < 2 * 32; i++) score[i] = (float)((i * 29) % 17 - 8) / 16.0f;
    tu_tensors_add(&ts, "score.weight", PEFT_DTYPE_F32, 2, (int64_t[]){2, 32}, score);
    char *dir = tu_tmpdir();
    tu_tensors_write(&ts, dir, NULL);
    tu_tensors_free(&ts);
    tu_write_config(GPT2_DIR, dir, "{\"architectures\": [\"GPT2ForSequenceClassification\"], "
                    "\"pad_token_id\": 0}", TU_NULL_SETS);
    return dir;
}

/* (B, 2) logits of a prompt-tuning adapter (3 virtual tokens, seed 7) on the model in dir */
static void seqcls_prompt_logits(const char *dir, const peft_model_inputs *pin, float *out2)
{
    peft_ctx *ctx = peft_ctx_new(7);
    peft_base_model *b = load_ok(dir);
    peft_model *pm = NULL;
    ck_assert_msg(peft_get_peft_model(ctx, b, "{\"peft_type\": \"PROMPT_TUNING\", \"task_type\": "
                                      "\"SEQ_CLS\", \"num_virtual_tokens\": 3}", "default", 0, &pm) == 0,
                  "%s", peft_errmsg(ctx));
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_outputs out;
    ck_assert_msg(peft_model_forward(pm, g, pin, &out) == 0, "%s", peft_errmsg(ctx));
    ck_assert_int_eq(out.logits->numel, pin->B * 2);
    memcpy(out2, out.logits->data, (size_t)(pin->B * 2) * sizeof(float));
    peft_graph_free(g);
    peft_model_free(pm);
    peft_ctx_free(ctx);
}

/* PeftModelForSequenceClassification with prompt tuning keeps token_type_ids, with P zeros in
 * front for the virtual tokens: the same logits as wpe[t] += wte[0] for t < P and
 * wte[tt[t - P]] after */
START_TEST(test_token_type_ids_seqcls_prompt)
{
    tu_inputs in = tu_inputs_load(GPT2_DIR);
    const int64_t P = 3;
    int32_t *tt = malloc((size_t)(in.B * in.T) * sizeof *tt), full[64] = {0};
    for (int64_t i = 0; i < in.B * in.T; i++) tt[i] = tt_at(i % in.T);
    for (int64_t t = 0; t < in.T; t++) full[P + t] = tt_at(t);
    char *plain = seqcls_dir(full, 0), *folded = seqcls_dir(full, P + in.T);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask};
    float a[16], b[16], c[16];
    pin.token_type_ids = tt;
    seqcls_prompt_logits(plain, &pin, a);
    pin.token_type_ids = NULL;
    seqcls_prompt_logits(folded, &pin, b);
    seqcls_prompt_logits(plain, &pin, c);
    double d = 0, moved = 0;
    for (int64_t i = 0; i < in.B * 2; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        moved = fmax(moved, fabs(a[i] - c[i]));
    }
    ck_assert_msg(d < 2e-5, "seq-cls prompt tuning with token_type_ids vs folded wpe: %g", d);
    ck_assert_msg(moved > 1e-3, "token_type_ids changed nothing (%g)", moved);
    tu_rmtree(plain);
    tu_rmtree(folded);
    free(plain);
    free(folded);
    free(tt);
    tu_inputs_free(&in);
}
END_TEST

static Suite *gpt2_suite(void)
{
    Suite *s = suite_create("gpt2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_logits_and_loss);
    tcase_add_test(tc, test_no_mask_no_labels);
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_sites);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_old_names);
    tcase_add_test(tc, test_untied_head);
    tcase_add_test(tc, test_bad_dirs);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_token_type_ids);
    tcase_add_test(tc, test_token_type_ids_grad);
    tcase_add_test(tc, test_token_type_ids_prompt_learning);
    tcase_add_test(tc, test_token_type_ids_seqcls_prompt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = tu_run_suite(gpt2_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

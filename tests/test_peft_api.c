/* test_peft_api.c — the PeftModel API on the tiny GPT-2 fixture: target matching rules,
 * config validation, init modes, patterns, safe merge, modules_to_save, several adapters,
 * saving options, bad adapter files, and a few training steps. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "peft/inputs.h"
#include "peft/optim.h"
#include "peft/peft.h"
#include "testutil.h"
#include "peft/warn.h"

static peft_ctx *ctx;
static peft_inputs in;

static void setup(void)
{
    peft_set_warning_handler(tu_quiet, NULL);
    ctx = peft_ctx_new(7);
    ck_assert(peft_inputs_load_json(tu_ctx(), tu_fixture("hf-peft/_models/gpt2/inputs.json"), &in) == 0);
}

static void teardown(void)
{
    peft_inputs_free(&in);
    peft_ctx_free(ctx);
}

static peft_base_model *base(void)
{
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &b) == 0, "%s", peft_errmsg(ctx));
    return b;
}

/* get_peft_model; returns NULL and keeps the message when it fails */
static peft_model *make(const char *cfg)
{
    peft_base_model *b = base();
    peft_model *m = NULL;
    if (peft_get_peft_model(ctx, b, cfg, NULL, 0, &m)) {
        peft_base_model_free(b);
        return NULL;
    }
    return m;
}

static int n_adapted_sites(peft_model *m)
{
    peft_base_model *b = peft_get_base_model(m);
    int n = 0;
    for (size_t i = 0; i < peft_base_model_num_sites(b); i++) n += peft_base_model_site_adapter(b, i, 0, NULL, NULL, NULL);
    return n;
}

/* logits of a forward (caller frees) */
static float *logits(peft_model *m, int64_t *n)
{
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi = {.B = in.B, .T = in.T, .input_ids = in.input_ids, .attention_mask = in.attention_mask, .labels = in.labels};
    peft_model_outputs out;
    ck_assert_msg(peft_model_forward(m, g, &mi, &out) == 0, "%s", peft_errmsg(ctx));
    *n = out.logits->numel;
    float *c = malloc((size_t)*n * 4);
    memcpy(c, out.logits->data, (size_t)*n * 4);
    peft_graph_free(g);
    return c;
}

/* the handles are opaque (peft/model.h): what an application reads goes through accessors */
START_TEST(opaque_handle_accessors)
{
    const peft_arch *a = peft_arch_find("gpt2");
    ck_assert_str_eq(peft_arch_model_type(a), "gpt2");
    ck_assert_str_eq(peft_arch_class_name(a), "GPT2LMHeadModel");
    ck_assert_str_eq(peft_arch_task_type(a), "CAUSAL_LM");
    ck_assert_ptr_null(peft_arch_model_type(NULL));
    ck_assert_ptr_nonnull(peft_arch_at(0));
    peft_base_model *b = base();
    peft_site *s = peft_model_find_site(b, "transformer.h.0.attn.c_attn");
    const peft_site_info *si = peft_site_get_info(s);
    ck_assert_ptr_nonnull(si);
    ck_assert_str_eq(si->name, "transformer.h.0.attn.c_attn");
    ck_assert_ptr_null(peft_site_get_info(NULL));
    ck_assert_int_eq(peft_base_model_num_labels(b), 2); /* no id2label, no num_labels */
    peft_base_model_free(b);
}
END_TEST

START_TEST(target_rules)
{
    struct { const char *cfg; int sites; } cases[] = {
        {"{\"peft_type\":\"LORA\",\"r\":2}", 2}, /* the GPT-2 default: c_attn */
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"c_attn\",\"c_fc\"]}", 4},
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":\"all-linear\"}", 8},
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":\".*h\\\\.0\\\\.(attn|mlp)\\\\.c_proj\"}", 2},
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"c_proj\"],\"exclude_modules\":[\"mlp.c_proj\"]}", 2},
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"c_attn\",\"c_fc\"],\"layers_to_transform\":[1]}", 2},
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"c_attn\"],\"layers_to_transform\":0,\"layers_pattern\":\"h\"}", 1},
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"attn.c_attn\"]}", 2},
        {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"ttn.c_attn\"]}", -1}, /* suffix must be whole components */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        peft_model *m = make(cases[i].cfg);
        if (cases[i].sites < 0) {
            ck_assert_msg(!m, "case %zu should fail", i);
            ck_assert_msg(strstr(peft_errmsg(ctx), "matched no module"), "%s", peft_errmsg(ctx));
            continue;
        }
        ck_assert_msg(m, "case %zu: %s", i, peft_errmsg(ctx));
        ck_assert_int_eq(n_adapted_sites(m), cases[i].sites);
        peft_model_free(m);
    }
}
END_TEST

START_TEST(config_errors)
{
    struct { const char *cfg; const char *msg; } cases[] = {
        {"{\"peft_type\":\"LORA\",\"lora_alpah\":8}", "did you mean 'lora_alpha'"},
        {"{\"peft_type\":\"LORA\",\"r\":0}", "'r'"},
        {"{\"peft_type\":\"LORA\",\"r\":\"8\"}", "'r'"},
        {"{\"peft_type\":\"LORA\",\"bias\":\"some\"}", "lora_only"},
        {"{\"peft_type\":\"LORA\",\"lora_dropout\":1.5}", "lora_dropout"},
        {"{\"peft_type\":\"LORA\",\"init_lora_weights\":\"pissa\"}", "not supported"},
        {"{\"peft_type\":\"NOPE\"}", "NOPE"},
        {"{\"r\":4}", "peft_type"},
        {"{\"peft_type\":\"LORA\",", "invalid JSON"},
        {"[1,2]", "JSON object"},
        {"{\"peft_type\":\"LORA\",\"target_modules\":\"(\"}", "regular expression"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        peft_model *m = make(cases[i].cfg);
        ck_assert_msg(!m, "case %zu accepted", i);
        ck_assert_msg(strstr(peft_errmsg(ctx), cases[i].msg), "case %zu: '%s' lacks '%s'", i,
                      peft_errmsg(ctx), cases[i].msg);
    }
}
END_TEST

START_TEST(init_modes_and_patterns)
{
    int64_t n;
    peft_base_model *b = base();
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi = {.B = in.B, .T = in.T, .input_ids = in.input_ids, .attention_mask = in.attention_mask, .labels = NULL};
    peft_model_outputs out;
    ck_assert_msg(peft_base_model_forward(b, g, &mi, &out) == 0, "%s", peft_graph_error(g));
    float *ref = malloc((size_t)out.logits->numel * 4);
    memcpy(ref, out.logits->data, (size_t)out.logits->numel * 4);
    peft_graph_free(g);
    peft_base_model_free(b);

    const char *cfgs[3] = {"{\"peft_type\":\"LORA\",\"init_lora_weights\":true}",
                           "{\"peft_type\":\"LORA\",\"init_lora_weights\":\"gaussian\"}",
                           "{\"peft_type\":\"LORA\",\"init_lora_weights\":false}"};
    for (int i = 0; i < 3; i++) {
        peft_model *m = make(cfgs[i]);
        ck_assert_msg(m, "%s", peft_errmsg(ctx));
        float *l = logits(m, &n);
        double d = tu_max_abs_diff(ref, l, n);
        if (i < 2) ck_assert_msg(d == 0, "init %d changes the output by %g", i, d);
        else ck_assert_msg(d > 1e-4, "init_lora_weights=false should change the output");
        free(l);
        peft_model_free(m);
    }
    free(ref);

    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":4,\"target_modules\":[\"c_attn\"],"
                         "\"rank_pattern\":{\"h.1.attn.c_attn\":2},\"alpha_pattern\":{\"h.1.attn.c_attn\":6}}");
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    ck_assert_int_eq(sd->n, 4);
    for (size_t i = 0; i < sd->n; i++) {
        int layer1 = strstr(sd->names[i], "h.1.") != NULL, isA = strstr(sd->names[i], "lora_A") != NULL;
        int r = (int)(isA ? sd->tensors[i]->shape[0] : sd->tensors[i]->shape[1]);
        ck_assert_int_eq(r, layer1 ? 2 : 4);
    }
    peft_state_dict_free(sd);
    peft_model_free(m);
}
END_TEST

static void fill(peft_tensor *t, float v)
{
    for (int64_t i = 0; i < t->numel; i++) peft_f32(t)[i] = v;
}

START_TEST(safe_merge_refuses_nonfinite)
{
    int64_t n;
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":2}");
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    for (size_t i = 0; i < sd->n; i++) fill(sd->tensors[i], 0.01f);
    fill(sd->tensors[1], INFINITY); /* h.0 lora_B */
    peft_state_dict_free(sd);
    float *before = logits(m, &n);
    ck_assert(peft_merge_adapter(m, NULL, 0, 1) != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "NaN/Inf"), "%s", peft_errmsg(ctx));
    /* the refused layer is untouched and not marked merged */
    char *st;
    peft_get_layer_status(m, &st);
    ck_assert_msg(strstr(st, "\"merged_adapters\": []"), "%s", st);
    free(st);
    peft_unmerge_adapter(m);
    float *after = logits(m, &n);
    ck_assert(memcmp(before, after, (size_t)n * 4) == 0 || isnan(before[0]));
    free(before);
    free(after);
    peft_model_free(m);
}
END_TEST

START_TEST(modules_to_save)
{
    int64_t n;
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":2,\"modules_to_save\":[\"ln_f\"]}");
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    /* 2 x (A 2x32 + B 96x2) + ln_f weight and bias copies (64); all counts the copy too */
    ck_assert_int_eq(t, 2 * (64 + 192) + 64);
    ck_assert_int_eq(a, 31616 + 2 * (64 + 192) + 64);
    peft_state_dict *sd;
    ck_assert(peft_trainable_parameters(m, &sd) == 0);
    int found = 0;
    for (size_t i = 0; i < sd->n; i++) {
        if (!strcmp(sd->names[i], "base_model.model.transformer.ln_f.modules_to_save.default.weight")) {
            found = 1;
            fill(sd->tensors[i], 2.0f);
        }
    }
    ck_assert(found);
    peft_state_dict_free(sd);
    float *trained = logits(m, &n);
    ck_assert(peft_disable_adapter(m) == 0);
    float *off = logits(m, &n);
    ck_assert_msg(tu_max_abs_diff(trained, off, n) > 1e-3, "disabling should restore the original ln_f");
    ck_assert(peft_enable_adapter(m) == 0);

    char *dir = tu_tmpdir();
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    peft_state_dict *saved;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &saved) == 0);
    int has = 0;
    for (size_t i = 0; i < saved->n; i++) has |= !strcmp(saved->names[i], "base_model.model.transformer.ln_f.weight");
    ck_assert(has);
    peft_state_dict_free(saved);
    peft_model *m2;
    ck_assert_msg(peft_from_pretrained(ctx, base(), dir, NULL, 0, &m2) == 0, "%s", peft_errmsg(ctx));
    float *re = logits(m2, &n);
    ck_assert(memcmp(re, trained, (size_t)n * 4) == 0);
    peft_model_free(m2);

    peft_base_model *b;
    ck_assert(peft_merge_and_unload(m, 1, NULL, 0, &b) == 0); /* keeps the trained ln_f, as PEFT */
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi = {.B = in.B, .T = in.T, .input_ids = in.input_ids, .attention_mask = in.attention_mask, .labels = NULL};
    peft_model_outputs out;
    ck_assert_msg(peft_base_model_forward(b, g, &mi, &out) == 0, "%s", peft_graph_error(g));
    ck_assert(tu_max_abs_diff(trained, peft_f32(out.logits), n) < 1e-5);
    peft_graph_free(g);
    peft_base_model_free(b);
    tu_rmtree(dir);
    free(dir);
    free(trained);
    free(off);
    free(re);
}
END_TEST

static int exists(const char *dir, const char *rel)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return stat(p, &st) == 0;
}

START_TEST(several_adapters)
{
    int64_t n;
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":2,\"init_lora_weights\":false}");
    ck_assert(peft_add_adapter(m, "a", "{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"c_fc\"],\"init_lora_weights\":false}") == 0);
    ck_assert(peft_add_adapter(m, "a", "{\"peft_type\":\"LORA\"}") != 0);
    ck_assert(strstr(peft_errmsg(ctx), "already exists"));
    float *d = logits(m, &n);
    ck_assert(peft_set_adapter(m, "a") == 0);
    float *la = logits(m, &n);
    ck_assert(tu_max_abs_diff(d, la, n) > 1e-5);
    char *st;
    peft_get_model_status(m, &st);
    ck_assert_msg(strstr(st, "\"active_adapters\": [\n  \"a\"\n ]"), "%s", st);
    ck_assert_msg(strstr(st, "\"num_adapter_layers\": 4"), "%s", st);
    free(st);
    const char *both[2] = {"default", "a"};
    ck_assert(peft_set_adapters(m, both, 2) == 0);
    ck_assert(peft_set_adapter(m, "zzz") == PEFT_ENOTFOUND);

    char *dir = tu_tmpdir();
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 0) == 0); /* not the main process */
    ck_assert(!exists(dir, "adapter_config.json"));
    const char *sel[1] = {"a"};
    ck_assert(peft_save_pretrained(m, dir, sel, 1, 1) == 0);
    ck_assert(!exists(dir, "adapter_config.json") && exists(dir, "a/adapter_config.json") &&
              exists(dir, "a/adapter_model.safetensors"));
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    ck_assert(exists(dir, "adapter_model.safetensors"));
    /* one-letter names: the saved keys of 'a' are its own and cleanly stripped */
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "a", &sd) == 0);
    ck_assert_int_eq(sd->n, 4);
    for (size_t i = 0; i < sd->n; i++) {
        ck_assert_msg(strstr(sd->names[i], ".mlp.c_fc.lora_"), "%s", sd->names[i]);
        ck_assert_msg(!strstr(sd->names[i], ".a."), "%s", sd->names[i]);
    }
    peft_state_dict_free(sd);

    ck_assert(peft_delete_adapter(m, "a") == 0);
    ck_assert_int_eq(peft_adapter_count(m), 1);
    ck_assert_int_eq(n_adapted_sites(m), 2);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/a", dir); /* PEFT layout: non-default adapters in dir/<name> */
    ck_assert_msg(peft_load_adapter(m, sub, "a", 0) == 0, "%s", peft_errmsg(ctx));
    ck_assert(peft_set_adapter(m, "a") == 0);
    float *lb = logits(m, &n);
    ck_assert(memcmp(la, lb, (size_t)n * 4) == 0);
    tu_rmtree(dir);
    free(dir);
    free(d);
    free(la);
    free(lb);
    peft_model_free(m);
}
END_TEST

START_TEST(inject_is_bare)
{
    peft_model *m;
    ck_assert(peft_inject_adapter_in_model(ctx, base(), "{\"peft_type\":\"LORA\",\"r\":2}", NULL, &m) == 0);
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    ck_assert_str_eq(sd->names[0], "transformer.h.0.attn.c_attn.lora_A.weight");
    peft_state_dict_free(sd);
    peft_model_free(m);
}
END_TEST

/* writes a copy of the gpt2__lora_default adapter into dir with its safetensors replaced */
static void write_bad_adapter(const char *dir, const void *st, size_t len)
{
    size_t cl;
    char *cfg = tu_read_file(tu_fixture("hf-peft/gpt2__lora_default/adapter/adapter_config.json"), &cl);
    char p[4096];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    tu_write_file(p, cfg, cl);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    tu_write_file(p, st, len);
    free(cfg);
}

START_TEST(bad_adapter_files)
{
    char *dir = tu_tmpdir();
    peft_model *m;
    peft_base_model *b = base();
    /* missing directory */
    ck_assert(peft_from_pretrained(ctx, b, "/nonexistent/adapter", NULL, 0, &m) != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "/nonexistent/adapter"), "%s", peft_errmsg(ctx));
    /* truncated safetensors */
    size_t len;
    char *good = tu_read_file(tu_fixture("hf-peft/gpt2__lora_default/adapter/adapter_model.safetensors"), &len);
    write_bad_adapter(dir, good, len / 2);
    ck_assert(peft_from_pretrained(ctx, b, dir, NULL, 0, &m) != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "adapter_model.safetensors"), "%s", peft_errmsg(ctx));
    /* a tensor with the wrong shape, and an unknown key */
    float zeros[4 * 96] = {0};
    int64_t bad_shape[2] = {4, 96};
    peft_st_out t1[4] = {
        {"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", PEFT_DTYPE_F32, 2, bad_shape, zeros},
    };
    char p[4096];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    ck_assert(peft_st_write(tu_ctx(), p, t1, 1, NULL) == 0);
    ck_assert(peft_from_pretrained(ctx, b, dir, NULL, 0, &m) != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "[4, 96]") && strstr(peft_errmsg(ctx), "[4, 32]"), "%s", peft_errmsg(ctx));
    t1[0].name = "base_model.model.transformer.h.0.attn.c_attn.lora_C.weight";
    ck_assert(peft_st_write(tu_ctx(), p, t1, 1, NULL) == 0);
    ck_assert(peft_from_pretrained(ctx, b, dir, NULL, 0, &m) != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "lora_C"), "%s", peft_errmsg(ctx));
    /* a config with a typo */
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    tu_write_file(p, "{\"peft_type\": \"LORA\", \"rr\": 4}", 31);
    ck_assert(peft_from_pretrained(ctx, b, dir, NULL, 0, &m) != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "adapter_config.json") && strstr(peft_errmsg(ctx), "'rr'"), "%s",
                  peft_errmsg(ctx));
    peft_base_model_free(b);
    free(good);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(training_lowers_the_loss)
{
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"lora_dropout\":0.1,"
                         "\"target_modules\":[\"c_attn\",\"c_fc\"]}");
    peft_adamw_config oc = {1e-2, 0.9, 0.999, 1e-8, 0.0};
    peft_adamw *opt = peft_adamw_new(m, &oc);
    ck_assert(opt);
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi = {.B = in.B, .T = in.T, .input_ids = in.input_ids, .attention_mask = in.attention_mask, .labels = in.labels};
    double first = 0, last = 0;
    peft_model_train(m, 1);
    for (int step = 0; step < 30; step++) {
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        peft_model_outputs out;
        ck_assert(peft_model_forward(m, g, &mi, &out) == 0);
        if (step == 0) first = peft_f32(out.loss)[0];
        last = peft_f32(out.loss)[0];
        ck_assert(peft_graph_backward(g, out.loss) == 0);
        peft_adamw_step(opt, 0);
    }
    ck_assert_msg(last < first - 0.5, "loss %g -> %g", first, last);
    /* frozen base weights never got a gradient buffer */
    peft_base_model *b = peft_get_base_model(m);
    for (size_t i = 0; i < peft_base_model_num_params(b); i++)
        ck_assert_ptr_null(peft_base_model_param(b, i, NULL)->grad);
    peft_graph_free(g);
    peft_adamw_free(opt);
    peft_model_free(m);
}
END_TEST

START_TEST(bias_all_and_dropout)
{
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":2,\"bias\":\"all\",\"lora_dropout\":0.5,"
                         "\"init_lora_weights\":false}");
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    /* LoRA 2 x (2x32 + 96x2) + every bias: per block 96+32+128+32 (linear) + 32+32 (ln), + ln_f */
    ck_assert_int_eq(t, 2 * 256 + 2 * 352 + 32);
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    int ln = 0, wrapped = 0;
    for (size_t i = 0; i < sd->n; i++) {
        ln |= !strcmp(sd->names[i], "base_model.model.transformer.h.0.ln_1.bias");
        wrapped |= !strcmp(sd->names[i], "base_model.model.transformer.h.0.attn.c_attn.base_layer.bias");
    }
    ck_assert(ln && wrapped);
    peft_state_dict_free(sd);
    /* dropout: active only in training mode, and seeded */
    int64_t n;
    float *e1 = logits(m, &n), *e2 = logits(m, &n);
    ck_assert(memcmp(e1, e2, (size_t)n * 4) == 0);
    peft_model_train(m, 1);
    float *t1 = logits(m, &n);
    ck_assert(tu_max_abs_diff(e1, t1, n) > 0);
    peft_model_free(m);
    free(e1);
    free(e2);
    free(t1);
}
END_TEST

/* adapter bookkeeping found in review: failed adds leave nothing behind, switching unmerges,
 * deleting the active adapter activates another, bias=all + modules_to_save saves */
START_TEST(adapter_bookkeeping)
{
    int64_t n, t0, t1, a;
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":2}");
    peft_get_nb_trainable_parameters(m, &t0, &a);
    ck_assert(peft_add_adapter(m, "bad", "{\"peft_type\":\"LORA\",\"bias\":\"all\",\"modules_to_save\":[\"nonexistent\"]}") != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "nonexistent"), "%s", peft_errmsg(ctx));
    ck_assert(peft_add_adapter(m, "c", "{\"peft_type\":\"LORA\",\"r\":2,\"init_lora_weights\":false}") == 0);
    ck_assert(peft_set_adapter(m, "c") == 0);
    peft_get_nb_trainable_parameters(m, &t1, &a);
    ck_assert_int_eq(t1, t0); /* no stray trainable biases from the failed adapter */

    float *only_c = logits(m, &n);
    ck_assert(peft_set_adapter(m, "default") == 0);
    ck_assert(peft_merge_adapter(m, NULL, 0, 1) == 0);
    ck_assert(peft_set_adapter(m, "c") == 0); /* unmerges default first */
    float *again = logits(m, &n);
    ck_assert(memcmp(only_c, again, (size_t)n * 4) == 0);
    ck_assert(peft_delete_adapter(m, "c") == 0);
    char *st;
    peft_get_model_status(m, &st);
    ck_assert_msg(strstr(st, "\"active_adapters\": [\n  \"default\"\n ]"), "%s", st);
    free(st);
    free(only_c);
    free(again);
    peft_model_free(m);

    m = make("{\"peft_type\":\"LORA\",\"r\":2,\"bias\":\"all\",\"modules_to_save\":[\"ln_f\"]}");
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    char *dir = tu_tmpdir();
    ck_assert_msg(peft_save_pretrained(m, dir, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    ck_assert(peft_add_adapter(m, "d", "{\"peft_type\":\"LORA\",\"r\":2,\"modules_to_save\":[\"ln_f\"]}") == 0);
    const char *both[2] = {"default", "d"};
    ck_assert(peft_set_adapters(m, both, 2) != 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "modules_to_save"), "%s", peft_errmsg(ctx));
    tu_rmtree(dir);
    free(dir);
    peft_model_free(m);
}
END_TEST

START_TEST(mixed_precision_and_model_card)
{
    int64_t n;
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":2,\"init_lora_weights\":false}");
    float *f32 = logits(m, &n);
    ck_assert(peft_cast_mixed_precision_params(m, PEFT_DTYPE_BF16) == 0);
    peft_base_model *b = peft_get_base_model(m);
    ck_assert_int_eq(peft_base_model_param(b, 0, NULL)->dtype, PEFT_DTYPE_BF16);
    peft_state_dict *sd;
    ck_assert(peft_trainable_parameters(m, &sd) == 0);
    for (size_t i = 0; i < sd->n; i++) ck_assert_int_eq(sd->tensors[i]->dtype, PEFT_DTYPE_F32);
    peft_state_dict_free(sd);
    float *b16 = logits(m, &n);
    double d = tu_max_abs_diff(f32, b16, n);
    ck_assert_msg(d > 0 && d < 2e-2, "bf16 base changes logits by %g", d);
    ck_assert(peft_cast_mixed_precision_params(m, 99) != 0);

    char *dir = tu_tmpdir(), path[4096];
    ck_assert(peft_create_or_update_model_card(m, dir) == 0);
    snprintf(path, sizeof path, "%s/README.md", dir);
    char *card = tu_read_file(path, NULL);
    ck_assert_msg(!strncmp(card, "---\n", 4) && strstr(card, "library_name: peft") && strstr(card, "base_model: ") &&
                      strstr(card, "### Framework versions") && strstr(card, "- PEFT 0.13.2"), "%s", card);
    free(card);
    const char *mine = "---\nlicense: mit\nlibrary_name: transformers\n---\n\nMy notes about this adapter.\n";
    tu_write_file(path, mine, strlen(mine));
    ck_assert(peft_create_or_update_model_card(m, dir) == 0);
    ck_assert(peft_create_or_update_model_card(m, dir) == 0); /* idempotent */
    card = tu_read_file(path, NULL);
    ck_assert_msg(strstr(card, "license: mit") && strstr(card, "library_name: peft") && !strstr(card, "transformers") &&
                      strstr(card, "My notes about this adapter.") && strstr(card, "base_model: "), "%s", card);
    const char *first = strstr(card, "- PEFT 0.13.2");
    ck_assert(first && !strstr(first + 1, "- PEFT 0.13.2"));
    free(card);
    tu_rmtree(dir);
    free(dir);
    free(f32);
    free(b16);
    peft_model_free(m);
}
END_TEST

/* logits (B, T, V) of a forward with the given inputs (caller frees) */
static float *run_rows(peft_model *m, const int32_t *ids, const int32_t *mask, int64_t B, int64_t T,
                       const char *const *rows, int64_t *n)
{
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask, .labels = NULL};
    peft_model_outputs out;
    int rc = rows ? peft_model_forward_rows(m, g, &mi, rows, &out) : peft_model_forward(m, g, &mi, &out);
    ck_assert_msg(rc == 0, "%s", peft_errmsg(ctx));
    *n = out.logits->numel;
    float *c = malloc((size_t)*n * 4);
    memcpy(c, out.logits->data, (size_t)*n * 4);
    peft_graph_free(g);
    return c;
}

START_TEST(mixed_batch_rows)
{
    peft_model *m = make("{\"peft_type\":\"LORA\",\"r\":2,\"init_lora_weights\":false}");
    ck_assert(peft_add_adapter(m, "a", "{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"c_attn\",\"c_fc\"],\"init_lora_weights\":false}") == 0);
    int64_t T = in.T, n;
    int32_t ids[3 * 64], mask[3 * 64];
    for (int r = 0; r < 3; r++) { /* rows: input 0, input 1, input 0 */
        memcpy(ids + r * T, in.input_ids + (r == 1) * T, (size_t)T * 4);
        memcpy(mask + r * T, in.attention_mask + (r == 1) * T, (size_t)T * 4);
    }
    const char *rows[3] = {"default", "__base__", "a"};
    float *mixed = run_rows(m, ids, mask, 3, T, rows, &n);
    int64_t per = n / 3;
    float *only_default = run_rows(m, ids, mask, 3, T, NULL, &n);
    ck_assert(peft_set_adapter(m, "a") == 0);
    float *only_a = run_rows(m, ids, mask, 3, T, NULL, &n);
    ck_assert(peft_disable_adapter(m) == 0);
    float *base_only = run_rows(m, ids, mask, 3, T, NULL, &n);
    ck_assert(peft_enable_adapter(m) == 0);
    ck_assert(tu_max_abs_diff(mixed, only_default, per) < 1e-6);
    ck_assert(tu_max_abs_diff(mixed + per, base_only + per, per) < 1e-6);
    ck_assert(tu_max_abs_diff(mixed + 2 * per, only_a + 2 * per, per) < 1e-6);
    ck_assert(tu_max_abs_diff(only_a, only_default, per) > 1e-5); /* the adapters differ */
    const char *bad[3] = {"default", "nope", "a"};
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi = {.B = 3, .T = T, .input_ids = ids, .attention_mask = mask, .labels = NULL};
    peft_model_outputs out;
    ck_assert(peft_model_forward_rows(m, g, &mi, bad, &out) == PEFT_ENOTFOUND);
    ck_assert_msg(strstr(peft_errmsg(ctx), "'nope'"), "%s", peft_errmsg(ctx));
    peft_graph_free(g);
    free(mixed);
    free(only_default);
    free(only_a);
    free(base_only);
    peft_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peft_api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, target_rules);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, init_modes_and_patterns);
    tcase_add_test(tc, safe_merge_refuses_nonfinite);
    tcase_add_test(tc, modules_to_save);
    tcase_add_test(tc, several_adapters);
    tcase_add_test(tc, inject_is_bare);
    tcase_add_test(tc, bad_adapter_files);
    tcase_add_test(tc, training_lowers_the_loss);
    tcase_add_test(tc, bias_all_and_dropout);
    tcase_add_test(tc, adapter_bookkeeping);
    tcase_add_test(tc, mixed_precision_and_model_card);
    tcase_add_test(tc, mixed_batch_rows);
    tcase_add_test(tc, opaque_handle_accessors);
    suite_add_tcase(s, tc);
    int failed = tu_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

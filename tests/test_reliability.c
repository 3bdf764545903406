/* test_reliability.c — regression tests for issue 16's smaller defects: the Strip decoder on
 * an empty token (it did NULL + 0, undefined behaviour; `make asan` runs this under UBSan);
 * building a model with many layers (parameter and site lookups were linear scans, so building
 * was quadratic: 4000 layers took 100 s); an adapter config whose sizes do not match its weights
 * (`r: 10000000` allocated gigabytes before the shapes were compared): refused before the memory
 * is taken, naming the field; an I32 adapter tensor named as such; lenient or misleading input
 * handling (mask values, duplicate and unknown input keys, token_type_ids for a model that takes
 * none, YAML tags, a non-string peft_type, layers_to_transform out of range, a message that
 * repeated itself); a plugin that crashes in forward, or in the backward closure its forward
 * recorded, named before the process dies of the signal. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peft/model.h"
#include "peft/peft.h"
#include "peft/registry.h"
#include "peft/safetensors.h"
#include "testutil.h"

START_TEST(strip_decoder_empty_token)
{
    char *dir = tu_tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    const char *tk =
        "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": [],"
        " \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"post_processor\": null,"
        " \"decoder\": {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 1},"
        " \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"\": 0, \"a\": 1, \"[UNK]\": 2},"
        " \"unk_token\": \"[UNK]\"}}";
    ck_assert(tu_write_file(p, tk, strlen(tk)) == 0);
    char *out = NULL;
    int st = tu_run_peft(&out, "tokenize --tokenizer %s --decode --text '0 1 0'", p);
    ck_assert_msg(st == 0 && strstr(out, "a"), "status %d: %s", st, out);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* 10000 GPT-2 blocks of width 4 (120004 parameters, 60003 sites): quadratic lookups would take
 * hours; indexed, well under a second. Not timed: the suite's timeout is the guard. */
START_TEST(many_layers_build_fast)
{
    char *dir = tu_tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    const char *cfg = "{\"model_type\": \"gpt2\", \"n_layer\": 10000, \"n_embd\": 4, \"n_head\": 1,"
                      " \"vocab_size\": 8, \"n_positions\": 8}";
    ck_assert(tu_write_file(p, cfg, strlen(cfg)) == 0);
    peft_load_options o = {.struct_size = sizeof o, .random_init = 1, .seed = 1};
    peft_base_model *m = NULL;
    int rc = peft_load_base_model_ex(tu_ctx(), dir, &o, &m);
    ck_assert_msg(rc == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_uint_eq(peft_base_model_num_params(m), 12u * 10000 + 4);
    /* 4 Conv1D + ln_1 + ln_2 per block; wte, ln_f, lm_head */
    ck_assert_uint_eq(peft_base_model_num_sites(m), 6u * 10000 + 3);
    peft_tensor *q = peft_base_model_find_param(m, "transformer.h.7777.attn.c_attn.weight");
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(q->ndim, 2);
    ck_assert_ptr_null(peft_base_model_find_param(m, "transformer.h.10000.attn.c_attn.weight"));
    peft_site *s = peft_model_find_site(m, "transformer.h.9999.mlp.c_proj");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(peft_site_get_info(s)->name, "transformer.h.9999.mlp.c_proj");
    ck_assert_ptr_null(peft_model_find_site(m, "transformer.h.9999.mlp"));
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* `peft info --config` of a 10000-layer GPT-2 (the most a config may ask for) with a LoRA config:
 * the counts come out right (a meta model: one mmap per tensor and a hash that reread every key
 * on growth made 100000 layers take 8 CPU-seconds, 14 s on a loaded machine; not timed here) */
START_TEST(many_layers_info_config)
{
    char *dir = tu_tmpdir(), c[4200], a[4200];
    snprintf(c, sizeof c, "%s/config.json", dir);
    snprintf(a, sizeof a, "%s/adapter_config.json", dir);
    const char *cfg = "{\"model_type\": \"gpt2\", \"n_layer\": 10000, \"n_embd\": 4, \"n_head\": 1,"
                      " \"vocab_size\": 8, \"n_positions\": 8}";
    const char *ac = "{\"peft_type\": \"LORA\", \"target_modules\": [\"c_attn\"], \"r\": 2,"
                     " \"fan_in_fan_out\": true}";
    ck_assert(tu_write_file(c, cfg, strlen(cfg)) == 0);
    ck_assert(tu_write_file(a, ac, strlen(ac)) == 0);
    char *out = NULL;
    /* per block: ln_1 8, c_attn 60, c_proj 20, ln_2 8, c_fc 80, mlp.c_proj 68; wte, wpe 32 each,
     * ln_f 8; LoRA r=2 on c_attn (4 -> 12): 8 + 24 per block */
    int st = tu_run_peft(&out, "info --config %s --peft-config %s", c, a);
    ck_assert_msg(st == 0, "status %d: %s", st, out);
    ck_assert_msg(strstr(out, "GPT2LMHeadModel (gpt2): 2440072 parameters\n"), "%s", out);
    ck_assert_msg(strstr(out, "trainable params: 320,000 || all params: 2,760,072 || trainable%: 11.5939"),
                  "%s", out);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* a ~150-byte config.json with tens of millions of layers (fuzz/regressions/config/: n_layer
 * 50250256 made the meta model allocate 4 GB for its block table before building 600 million
 * tensors) is refused at once, for every architecture family's layer keys */
START_TEST(huge_layer_count_refused)
{
    static const char *const cfgs[][2] = {
        {"{\"model_type\": \"gpt2\", \"n_layer\": 50250256, \"n_embd\": 4, \"n_head\": 1}", "\"n_layer\" is 50250256"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 4, \"num_attention_heads\": 1, "
         "\"num_hidden_layers\": 10001, \"vocab_size\": 8, \"intermediate_size\": 8}", "\"num_hidden_layers\" is 10001"},
        {"{\"model_type\": \"t5\", \"num_decoder_layers\": 41288}", "\"num_decoder_layers\" is 41288"},
        {"{\"model_type\": \"bert\", \"num_hidden_layers\": 4000000000}", "\"num_hidden_layers\" is 4000000000"},
        {"{\"model_type\": \"t5\", \"num_layers\": 2, \"num_decoder_layers\": 1000000000}", "\"num_decoder_layers\" is 1000000000"},
    };
    char *dir = tu_tmpdir(), c[4200];
    snprintf(c, sizeof c, "%s/config.json", dir);
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        ck_assert(tu_write_file(c, cfgs[i][0], strlen(cfgs[i][0])) == 0);
        peft_ctx *ctx = peft_ctx_new(0);
        peft_base_model *m = NULL;
        ck_assert_int_ne(peft_load_base_model_meta(ctx, c, NULL, &m), 0);
        ck_assert_msg(strstr(peft_errmsg(ctx), cfgs[i][1]) &&
                      strstr(peft_errmsg(ctx), "a layer count must be 0..10000"), "%s", peft_errmsg(ctx));
        peft_ctx_free(ctx);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* a copy of the gpt2 LoRA fixture's adapter in a temp dir with `from` replaced by `to` in its
 * adapter_config.json; caller frees the dir (tu_rmtree + free) */
static char *adapter_with(const char *from, const char *to)
{
    char *dir = tu_tmpdir(), cmd[8400], p[4200];
    snprintf(cmd, sizeof cmd, "cp %s/* %s/", tu_fixture("hf-peft/gpt2__lora_default/adapter"), dir);
    ck_assert(system(cmd) == 0);
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    size_t n;
    char *text = tu_read_file(p, &n), *at = text ? strstr(text, from) : NULL;
    ck_assert_msg(at != NULL, "'%s' not in %s", from, p);
    char out[16384];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    free(text);
    ck_assert(tu_write_file(p, out, strlen(out)) == 0);
    return dir;
}

/* peft_from_pretrained of dir on the gpt2 fixture model that must fail; its message (static) */
static const char *load_fails(const char *dir, int code)
{
    static char msg[2048];
    peft_ctx *ctx = peft_ctx_new(1);
    peft_base_model *b = NULL;
    ck_assert_int_eq(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &b), 0);
    peft_model *m = NULL;
    int rc = peft_from_pretrained(ctx, b, dir, NULL, 0, &m);
    snprintf(msg, sizeof msg, "%s", peft_errmsg(ctx));
    ck_assert_msg(rc == code && m == NULL, "rc %d: %s", rc, msg);
    peft_base_model_free(b);
    peft_ctx_free(ctx);
    return msg;
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* r: 10000000 with weights of r = 4: refused before anything near 1.28 GB per tensor is taken */
START_TEST(huge_rank_refused_before_allocating)
{
    char *dir = adapter_with("\"r\": 4", "\"r\": 10000000");
    long before = max_rss_kb();
    const char *msg = load_fails(dir, PEFT_EINVAL);
    ck_assert_msg(strstr(msg, "field 'r' = 10000000") && strstr(msg, "[10000000, 32]") &&
                      strstr(msg, "does not match its weights"), "%s", msg);
    ck_assert_msg(max_rss_kb() - before < 100 * 1024, "peak RSS grew by %ld KB", max_rss_kb() - before);
    tu_rmtree(dir);
    free(dir);
    /* without a file (get_peft_model): the same bound against the base model's sizes */
    peft_ctx *ctx = peft_ctx_new(1);
    peft_base_model *b = NULL;
    ck_assert_int_eq(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &b), 0);
    peft_model *m = NULL;
    int rc = peft_get_peft_model(ctx, b, "{\"peft_type\": \"LORA\", \"r\": 10000000, "
                                 "\"target_modules\": [\"c_attn\"]}", "default", 0, &m);
    ck_assert_msg(rc == PEFT_EINVAL && strstr(peft_errmsg(ctx), "field 'r' = 10000000"), "%s",
                  peft_errmsg(ctx));
    ck_assert_msg(max_rss_kb() - before < 100 * 1024, "peak RSS grew by %ld KB", max_rss_kb() - before);
    peft_base_model_free(b);
    peft_ctx_free(ctx);
}
END_TEST

/* a modest mismatch (r: 1000 for weights of r = 4) is caught at the first site, by shape */
START_TEST(rank_mismatch_names_field)
{
    char *dir = adapter_with("\"r\": 4", "\"r\": 1000");
    const char *msg = load_fails(dir, PEFT_EINVAL);
    ck_assert_msg(strstr(msg, "has shape [4, 32], the config implies [1000, 32] (field 'r' = 1000)"),
                  "%s", msg);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* an I32 tensor of the right shape: named by its dtype, not as a shape mismatch */
START_TEST(int32_adapter_tensor_named)
{
    char *dir = adapter_with("\"r\": 4", "\"r\": 4"), p[4200];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    peft_st_file *f = NULL;
    ck_assert_int_eq(peft_st_open(tu_ctx(), p, &f), 0);
    peft_st_out outs[16];
    int32_t *bufs[16];
    size_t n = f->n_entries;
    ck_assert(n <= 16);
    for (size_t i = 0; i < n; i++) {
        int64_t numel = peft_shape_numel(f->entries[i].ndim, f->entries[i].shape);
        bufs[i] = calloc((size_t)numel, sizeof(int32_t));
        outs[i] = (peft_st_out){f->entries[i].name, i == 0 ? PEFT_DTYPE_I32 : f->entries[i].dtype,
                                f->entries[i].ndim, f->entries[i].shape, i == 0 ? bufs[i] : f->entries[i].data};
    }
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, outs, n, NULL), 0);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    peft_st_close(f);
    const char *msg = load_fails(dir, PEFT_EFORMAT);
    ck_assert_msg(strstr(msg, "has dtype I32; adapter weights must be F32, F16 or BF16"), "%s", msg);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* `peft forward` of the gpt2 or llama fixture model on inputs JSON text: must fail with want */
static void forward_fails(const char *model, const char *json, const char *want)
{
    char *dir = tu_tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/in.json", dir);
    ck_assert(tu_write_file(p, json, strlen(json)) == 0);
    char *out = NULL;
    int st = tu_run_peft(&out, "forward --model %s --input %s --output %s/o.safetensors",
                         tu_fixture(model), p, dir);
    ck_assert_msg(st != 0 && strstr(out, want), "status %d, wanted '%s': %s", st, want, out);
    free(out);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(lenient_inputs_refused)
{
    const char *gpt2 = "hf-peft/_models/gpt2", *llama = "hf-peft/_models/llama";
    forward_fails(gpt2, "{\"input_ids\": [[1, 2, 3]], \"attention_mask\": [[1, 2, 1]]}",
                  "'attention_mask'[0][1] = 2: a mask holds only 0 (masked) and 1");
    forward_fails(gpt2, "{\"input_ids\": [[1, 2, 3]], \"input_ids\": [[4, 5, 6]]}",
                  "duplicate object key");
    forward_fails(gpt2, "{\"input_ids\": [[1, 2, 3]], \"attention_msk\": [[1, 1, 1]]}",
                  "unknown key 'attention_msk' (did you mean 'attention_mask'?");
    forward_fails(llama, "{\"input_ids\": [[1, 2, 3]], \"token_type_ids\": [[0, 0, 1]]}",
                  "LlamaForCausalLM takes no token_type_ids");
    forward_fails(gpt2, "{\"input_ids\": [[1, 2, 3]], \"token_type_ids\": [[0, 0, 128]]}",
                  "gpt2: token_type_ids[0][2] = 128 is outside the vocabulary [0, 128)");
    forward_fails(llama, "{\"input_ids\": [[1, 2, 3]], \"decoder_input_ids\": [[0, 0, 1]]}",
                  "LlamaForCausalLM takes no decoder_input_ids");
}
END_TEST

START_TEST(yaml_tags_refused)
{
    char *dir = tu_tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/e.yaml", dir);
    const char *y = "name: x\nbase_model: !!python/object/apply:os.system [\"true\"]\n";
    ck_assert(tu_write_file(p, y, strlen(y)) == 0);
    char *out = NULL;
    int st = tu_run_peft(&out, "run %s", p);
    ck_assert_msg(st != 0 && strstr(out, "e.yaml:2:13: YAML tags are not supported (found "
                                          "'!!python/object/apply:os.system')"), "status %d: %s", st, out);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* get_peft_model with config text on the gpt2 fixture: must fail with want (and only once) */
static void config_fails(const char *cfg, const char *want)
{
    peft_ctx *ctx = peft_ctx_new(1);
    peft_base_model *b = NULL;
    ck_assert_int_eq(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &b), 0);
    peft_model *m = NULL;
    int rc = peft_get_peft_model(ctx, b, cfg, "default", 0, &m);
    const char *msg = peft_errmsg(ctx);
    ck_assert_msg(rc != 0 && strstr(msg, want), "rc %d, wanted '%s': %s", rc, want, msg);
    const char *first = strstr(msg, want);
    ck_assert_msg(!strstr(first + 1, want), "repeats itself: %s", msg);
    peft_base_model_free(b);
    peft_ctx_free(ctx);
}

START_TEST(misleading_config_messages)
{
    config_fails("{\"peft_type\": 7}", "field 'peft_type' must be a string (e.g. \"LORA\"), got a number");
    config_fails("{\"peft_type\": \"NOSUCH\"}", "peft_type 'NOSUCH'");
    config_fails("{\"peft_type\": \"LORA\", \"target_modules\": [\"c_attn\"], "
                 "\"layers_to_transform\": [0, 7]}",
                 "layers_to_transform: layer 7 is out of range: the gpt2 model has 2 layers (0..1)");
}
END_TEST

/* the child of run_crashing_plugin: a forward (and with backward, a backward) of a one-adapter
 * GPT-2 on the fixture plugin so/peft_type */
struct crash_run { const char *so, *peft_type; int backward; };
static void crashing_child(void *arg)
{
    const struct crash_run *r = arg;
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"peft_type\": \"%s\", \"target_modules\": [\"c_attn\"]}",
             r->peft_type);
    peft_ctx *ctx = peft_ctx_new(1);
    peft_base_model *b = NULL;
    const peft_tuner_vtable *vt = NULL;
    peft_model *m = NULL;
    if (peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &b) ||
        peft_plugin_load_file(ctx, r->so, &vt) || peft_get_peft_model(ctx, b, cfg, "mine", 0, &m)) {
        fprintf(stderr, "setup failed: %s\n", peft_errmsg(ctx));
        _exit(3);
    }
    int32_t ids[3] = {1, 2, 3};
    peft_model_inputs in = {.B = 1, .T = 3, .input_ids = ids, .labels = r->backward ? ids : NULL};
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_outputs out;
    if (r->backward) peft_graph_set_recording(g, 1);
    if (peft_model_forward(m, g, &in, &out)) {
        fprintf(stderr, "forward failed: %s\n", peft_errmsg(ctx));
        _exit(4);
    }
    if (r->backward) peft_graph_backward(g, out.loss);
}

/* runs crashing_child in a child whose stderr lands in text; returns the child's wait status */
static int run_crashing_plugin(const char *so, const char *peft_type, int backward, char *text,
                               size_t len)
{
    struct crash_run r = {so, peft_type, backward};
    return tu_child_stderr(crashing_child, &r, text, len);
}

/* a plugin that faults inside forward (tests/plugins/crash_forward.c): the process still dies of
 * SIGSEGV, after one line on stderr naming the plugin, the entry, the adapter and the module */
START_TEST(plugin_crash_named)
{
    char text[4096];
    int st = run_crashing_plugin(tu_build("tests/plugins/crash_forward.so"), "CRASHFWD", 0, text,
                                 sizeof text);
    ck_assert_msg(tu_died_of_segv(st), "status 0x%x: %s", st, text);
    ck_assert_msg(strstr(text, "libpeft: plugin 'crashfwd' crashed with SIGSEGV (segmentation fault) "
                               "in its forward entry (adapter 'mine', module "
                               "'transformer.h.0.attn.c_attn')"), "%s", text);
}
END_TEST

/* a plugin whose backward closure (recorded on the tape by its forward) faults
 * (tests/plugins/crash_backward.c): the forward runs clean, the backward dies of SIGSEGV after
 * a line naming the plugin, "the backward of its forward entry", the adapter and the module */
START_TEST(plugin_backward_crash_named)
{
    char text[4096];
    int st = run_crashing_plugin(tu_build("tests/plugins/crash_backward.so"), "CRASHBWD", 1, text,
                                 sizeof text);
    ck_assert_msg(tu_died_of_segv(st), "status 0x%x: %s", st, text);
    ck_assert_msg(strstr(text, "libpeft: plugin 'crashbwd' crashed with SIGSEGV (segmentation fault) "
                               "in the backward of its forward entry (adapter 'mine', module "
                               "'transformer.h."), "%s", text);
    ck_assert_msg(strstr(text, ".attn.c_attn')\n"), "%s", text);
}
END_TEST

/* a plugin whose forward calls a core op through the host table with NULL matrices
 * (tests/plugins/crash_core_op.c): the report blames the plugin, naming the core op and the
 * entry that called it, not the core */
START_TEST(plugin_core_op_crash_named)
{
    char text[4096];
    int st = run_crashing_plugin(tu_build("tests/plugins/crash_core_op.so"), "CRASHOP", 0, text,
                                 sizeof text);
    ck_assert_msg(tu_died_of_segv(st), "status 0x%x: %s", st, text);
    ck_assert_msg(strstr(text, "libpeft: plugin 'crashop' crashed with SIGSEGV (segmentation fault) "
                               "in core op 'sgemm' called from its forward entry (adapter 'mine', "
                               "module 'transformer.h.0.attn.c_attn')"), "%s", text);
}
END_TEST

/* the backward a core op recorded for a plugin (host->op_mul_lastdim, its input broken by the
 * plugin: tests/plugins/crash_op_backward.c) is attributed to the plugin and its entry too */
START_TEST(plugin_core_op_backward_crash_named)
{
    char text[4096];
    int st = run_crashing_plugin(tu_build("tests/plugins/crash_op_backward.so"), "CRASHOPBWD", 1,
                                 text, sizeof text);
    ck_assert_msg(tu_died_of_segv(st), "status 0x%x: %s", st, text);
    ck_assert_msg(strstr(text, "libpeft: plugin 'crashopbwd' crashed with SIGSEGV (segmentation "
                               "fault) in the backward of core op 'op_mul_lastdim' called from its "
                               "forward entry (adapter 'mine', module 'transformer.h."), "%s", text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("regressions");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, strip_decoder_empty_token);
    tcase_add_test(tc, many_layers_build_fast);
    tcase_add_test(tc, many_layers_info_config);
    tcase_add_test(tc, huge_layer_count_refused);
    tcase_add_test(tc, huge_rank_refused_before_allocating);
    tcase_add_test(tc, rank_mismatch_names_field);
    tcase_add_test(tc, int32_adapter_tensor_named);
    tcase_add_test(tc, lenient_inputs_refused);
    tcase_add_test(tc, yaml_tags_refused);
    tcase_add_test(tc, misleading_config_messages);
    tcase_add_test(tc, plugin_crash_named);
    tcase_add_test(tc, plugin_backward_crash_named);
    tcase_add_test(tc, plugin_core_op_crash_named);
    tcase_add_test(tc, plugin_core_op_backward_crash_named);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}

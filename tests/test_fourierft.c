/* test_fourierft.c — the FourierFT plugin (plugins/fourierft/): every FourierFT case of Python
 * PEFT 0.13.2's fixtures (hf-peft-v2: LLaMA, BERT SEQ_CLS, GPT-2's Conv1D non-square and
 * square) through the contract table; the spectrum positions against PEFT's
 * (fourierft_indices.safetensors: torch's randperm reproduced); finite-difference gradients;
 * merge == forward on nn.Linear and Conv1D.
 *
 * The departure: on GPT-2's Conv1D PEFT 0.13.2 merges delta W untransposed (it fails for
 * mlp.c_proj, 128 -> 32, and gives a wrong merged model for the square attn.c_proj). libpeft
 * merges it transposed: the merged model equals the unmerged one, and differs from PEFT's
 * merged_logits (CONTRACT_MERGE_DEPARTS checks both). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "fd.h"
#include "peft/warn.h"
#include "plugin_site.h"
#include "testutil.h"

/* the plugin's randperm, compiled in with a two-entry host table (alloc, free) */
#include "plugins/fourierft/fourierft_randperm.c"
const peft_host_api *fourierft_host;
static void *shim_alloc(size_t n) { return calloc(1, n); }
static peft_host_api shim = {.alloc = shim_alloc, .free = free};

static const struct {
    const char *name;
    unsigned flags;
} fixture_cases[] = {
    {"llama__fourierft", 0},
    {"bert_seqcls__fourierft", 0},
    {"gpt2__fourierft", CONTRACT_MERGE_DEPARTS},        /* PEFT cannot merge it */
    {"gpt2__fourierft_square", CONTRACT_MERGE_DEPARTS}, /* PEFT merges it transposed */
};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case_flags(fixture_cases[_i].name, fixture_cases[_i].flags);
}
END_TEST

/* every module's (2, n) int64 positions in PEFT's fourierft_indices.safetensors (read here:
 * libpeft's reader takes float and int32 tensors only) == randperm's */
START_TEST(positions_are_peft_s)
{
    static const struct {
        const char *file;
        int64_t out, in;
    } files[] = {
        {"hf-peft-v2/llama__fourierft/fourierft_indices.safetensors", 32, 32},
        {"hf-peft-v2/bert_seqcls__fourierft/fourierft_indices.safetensors", 32, 32},
        {"hf-peft-v2/gpt2__fourierft/fourierft_indices.safetensors", 32, 128},
        {"hf-peft-v2/gpt2__fourierft_square/fourierft_indices.safetensors", 32, 32},
    };
    fourierft_host = &shim;
    int checked = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t len;
        char *buf = tu_read_file(tu_fixture(files[f].file), &len);
        ck_assert_msg(buf && len > 8, "cannot read %s", files[f].file);
        uint64_t hlen;
        memcpy(&hlen, buf, 8);
        json_t *hdr = json_loadb(buf + 8, (size_t)hlen, 0, NULL);
        ck_assert_ptr_nonnull(hdr);
        const char *name;
        json_t *e;
        json_object_foreach(hdr, name, e) {
            if (!strcmp(name, "__metadata__")) continue;
            ck_assert_str_eq(json_string_value(json_object_get(e, "dtype")), "I64");
            const int64_t n = json_integer_value(json_array_get(json_object_get(e, "shape"), 1));
            const size_t off = (size_t)json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0));
            int64_t *idx = malloc((size_t)(2 * n) * sizeof *idx);
            memcpy(idx, buf + 8 + hlen + off, (size_t)(2 * n) * sizeof *idx);
            int64_t in = files[f].in, out = files[f].out;
            if (strstr(name, "v_proj")) out = 16; /* LLaMA's GQA v_proj: 2 kv heads of 8 */
            int64_t *perm = malloc((size_t)n * sizeof *perm);
            ck_assert_int_eq(fourierft_randperm(out * in, 777, n, perm), 0);
            for (int64_t k = 0; k < n; k++)
                ck_assert_msg(idx[k] == perm[k] / in && idx[n + k] == perm[k] % in,
                              "%s %s: position %lld is (%lld, %lld), PEFT (%lld, %lld)",
                              files[f].file, name, (long long)k, (long long)(perm[k] / in),
                              (long long)(perm[k] % in), (long long)idx[k], (long long)idx[n + k]);
            free(perm);
            free(idx);
            checked++;
        }
        json_decref(hdr);
        free(buf);
    }
    ck_assert_int_eq(checked, 12);
}
END_TEST

#define CFG(extra) "{\"peft_type\":\"FOURIERFT\",\"target_modules\":[\"q_proj\"]" extra "}"

START_TEST(grads_linear)
{
    ps_site h;
    ps_open(&h, "fourierft", CFG(",\"n_frequency\":7,\"scaling\":30"), PEFT_SITE_LINEAR, 3, 5, 4, 0.5f);
    ck_assert_int_eq(ps_param(&h, "fourierft_spectrum")->numel, 7);
    ck_assert_str_eq(h.refs[0].memory_name, "fourierft_spectrum.default");
    ps_check_grads(&h, "linear", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* Conv1D: the same forward; merge adds delta W transposed into the (in, out) weight, so the
 * merged linear equals the forward (PEFT 0.13.2's untransposed add would not) */
START_TEST(conv1d_merge_transposed)
{
    peft_set_warning_handler(tu_quiet, NULL);
    ps_site h;
    ps_open(&h, "fourierft", CFG(",\"n_frequency\":9,\"scaling\":30"), PEFT_SITE_CONV1D, 3, 6, 6, 0.5f);
    ps_check_grads(&h, "conv1d", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* init_weights false (PEFT's default) draws the spectrum N(0, 1); true gives zeros */
START_TEST(init)
{
    ps_site h;
    ps_open(&h, "fourierft", CFG(",\"n_frequency\":50"), PEFT_SITE_LINEAR, 2, 10, 10, 0);
    const peft_tensor *s = ps_param(&h, "fourierft_spectrum");
    double ss = 0;
    for (int64_t k = 0; k < s->numel; k++) ss += (double)peft_f32(s)[k] * peft_f32(s)[k];
    ck_assert_msg(ss / 50 > 0.4 && ss / 50 < 2.0, "variance %g", ss / 50);
    ps_close(&h);
    ps_open(&h, "fourierft", CFG(",\"n_frequency\":50,\"init_weights\":true"), PEFT_SITE_LINEAR, 2, 10, 10, 0);
    s = ps_param(&h, "fourierft_spectrum");
    for (int64_t k = 0; k < s->numel; k++) ck_assert(peft_f32(s)[k] == 0);
    ps_close(&h);
}
END_TEST

START_TEST(refusals)
{
    const char *e = ps_inject_error("fourierft", CFG(",\"n_frequency\":17"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "n_frequency") && strstr(e, "16"), "%s", e);
    e = ps_inject_error("fourierft", CFG(",\"bias\":\"all\""), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "bias"), "%s", e);
    e = ps_inject_error("fourierft", CFG(",\"random_loc_seed\":-1"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "random_loc_seed"), "%s", e);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2024);
    Suite *s = suite_create("fourierft");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    tcase_add_test(tc, positions_are_peft_s);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 60);
    tcase_add_test(tk, grads_linear);
    tcase_add_test(tk, conv1d_merge_transposed);
    tcase_add_test(tk, init);
    tcase_add_test(tk, refusals);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

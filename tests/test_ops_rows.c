/* test_ops_rows.c — op_take_rows / op_put_rows (the grouped path of mixed-batch inference):
 * forward against direct indexing, and finite-difference gradients for every input. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include "core/ops/ops.h"
#include "testutil.h"

static peft_rng rng;

static peft_tensor *param(int64_t r, int64_t c)
{
    int64_t shape[2] = {r, c};
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, 2, shape);
    for (int64_t i = 0; i < t->numel; i++) peft_f32(t)[i] = (float)peft_rng_normal(&rng);
    t->requires_grad = 1;
    t->flags |= PEFT_T_PARAM;
    return t;
}

/* loss = sum(out * w) with fixed random w */
static const int32_t IDX[3] = {4, 0, 2};
static double loss_of(peft_graph *g, peft_tensor *x, peft_tensor *src, const float *w, int put)
{
    peft_graph_reset(g);
    peft_tensor *o = put ? op_put_rows(g, x, src, IDX, 3) : op_take_rows(g, x, IDX, 3);
    ck_assert(o);
    double s = 0;
    for (int64_t i = 0; i < o->numel; i++) s += (double)peft_f32(o)[i] * w[i];
    return s;
}

static void fd_check(int put)
{
    peft_rng_seed(&rng, 11 + put);
    peft_graph *g = peft_graph_new(&rng);
    peft_tensor *x = param(5, 3), *src = param(3, 3);
    float w[15];
    for (int i = 0; i < 15; i++) w[i] = (float)peft_rng_normal(&rng);
    /* analytic */
    peft_graph_reset(g);
    peft_graph_set_recording(g, 1);
    peft_tensor *o = put ? op_put_rows(g, x, src, IDX, 3) : op_take_rows(g, x, IDX, 3);
    float *go = peft_grad_of(g, o);
    for (int64_t i = 0; i < o->numel; i++) go[i] = w[i];
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    peft_graph_set_recording(g, 0);
    peft_tensor *ins[2] = {x, src};
    for (int k = 0; k < (put ? 2 : 1); k++) {
        peft_tensor *t = ins[k];
        for (int64_t i = 0; i < t->numel; i++) {
            float keep = peft_f32(t)[i];
            peft_f32(t)[i] = keep + 1e-2f;
            double lp = loss_of(g, x, src, w, put);
            peft_f32(t)[i] = keep - 1e-2f;
            double lm = loss_of(g, x, src, w, put);
            peft_f32(t)[i] = keep;
            double num = (lp - lm) / 2e-2;
            ck_assert_msg(fabs(num - t->grad[i]) < 1e-3, "%s input %d elem %lld: fd %g analytic %g",
                          put ? "put" : "take", k, (long long)i, num, t->grad[i]);
        }
    }
    /* forward values */
    peft_graph_reset(g);
    o = put ? op_put_rows(g, x, src, IDX, 3) : op_take_rows(g, x, IDX, 3);
    for (int r = 0; r < (put ? 5 : 3); r++)
        for (int c = 0; c < 3; c++) {
            float want;
            if (!put) want = peft_f32(x)[IDX[r] * 3 + c];
            else {
                want = peft_f32(x)[r * 3 + c];
                for (int i = 0; i < 3; i++)
                    if (IDX[i] == r) want = peft_f32(src)[i * 3 + c];
            }
            ck_assert(peft_f32(o)[r * 3 + c] == want);
        }
    int32_t bad[1] = {5};
    ck_assert_ptr_null(op_take_rows(g, x, bad, 1));
    peft_tensor_free(x);
    peft_tensor_free(src);
    peft_graph_free(g);
}

START_TEST(take_rows) { fd_check(0); }
END_TEST
START_TEST(put_rows) { fd_check(1); }
END_TEST

int main(void)
{
    Suite *s = suite_create("ops_rows");
    TCase *tc = tcase_create("rows");
    tcase_add_test(tc, take_rows);
    tcase_add_test(tc, put_rows);
    suite_add_tcase(s, tc);
    int failed = tu_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

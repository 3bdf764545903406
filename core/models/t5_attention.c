/* t5_attention.c — T5's relative position bias: the bucket function and the gather of the
 * (num_buckets, H) bias table into an (H, T, S) additive score bias, with its backward. The
 * attention itself is op_attention_ex (scale 1, this bias, the key mask). */
#include <math.h>
#include <stddef.h>
#include "t5_attention.h"
#include "core/ops/ops.h"

int t5_relative_bucket(int64_t rel, int bidirectional, int num_buckets, int max_distance)
{
    int bucket = 0;
    int64_t rp;
    if (bidirectional) {
        num_buckets /= 2;
        if (rel > 0) bucket += num_buckets;
        rp = rel < 0 ? -rel : rel;
    } else {
        rp = rel < 0 ? -rel : 0;
    }
    const int max_exact = num_buckets / 2;
    if (rp < max_exact) return bucket + (int)rp;
    /* torch: max_exact + (log(rp.float() / max_exact) / math.log(max_distance / max_exact)
     * * (num_buckets - max_exact)).to(long), in float32, then capped at num_buckets - 1 */
    const float denom = (float)log((double)max_distance / (double)max_exact);
    float f = logf((float)rp / (float)max_exact) / denom * (float)(num_buckets - max_exact);
    if (!(f < (float)num_buckets)) f = (float)num_buckets; /* also NaN: capped below */
    int64_t large = max_exact + (int64_t)f;
    if (large > num_buckets - 1) large = num_buckets - 1;
    return bucket + (int)large;
}

typedef struct {
    peft_tensor *table, *out;
    const int32_t *bucket; /* (T, S) */
    int64_t H, TS;
} pbias_ctx;

// dbias (H, T, S), bucket (T, S) -> dtable (NB, H) += sum over (t, s) in each bucket
static void position_bias_backward(peft_graph *g, void *p)
{
    pbias_ctx *c = p;
    const float *dy = c->out->grad;
    float *dt = peft_grad_of(g, c->table);
    if (!dy || !dt) return;
    for (int64_t h = 0; h < c->H; h++) {
        const float *dyh = dy + h * c->TS;
        for (int64_t i = 0; i < c->TS; i++) dt[(int64_t)c->bucket[i] * c->H + h] += dyh[i];
    }
}

// table (NB, H) -> bias (H, T, S): bias[h][t][s] = table[bucket(s - (t + q_off))][h]
peft_tensor *t5_position_bias(peft_graph *g, peft_tensor *table, int64_t T, int64_t S,
                              int64_t q_off, int bidirectional, int num_buckets, int max_distance)
{
    if (!g || !table || table->ndim != 2 || T <= 0 || S <= 0 || q_off < 0 ||
        table->shape[0] != num_buckets || num_buckets < 4 || max_distance <= num_buckets / 2)
        return NULL;
    const int64_t NB = table->shape[0], H = table->shape[1], TS = T * S;
    peft_tensor *tf = NULL;
    const float *tab;
    if (table->dtype == PEFT_DTYPE_F32) {
        tab = peft_f32(table);
    } else {
        int64_t n = NB * H;
        if (!(tf = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, &n))) return NULL;
        peft_tensor_to_f32(table, peft_f32(tf));
        tab = peft_f32(tf);
    }
    peft_tensor *bk = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, (int64_t[]){T, S});
    peft_tensor *out = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, (int64_t[]){H, T, S});
    if (!bk || !out) return NULL;
    int32_t *bucket = bk->data;
    for (int64_t t = 0; t < T; t++)
        for (int64_t s = 0; s < S; s++)
            bucket[t * S + s] = t5_relative_bucket(s - (t + q_off), bidirectional, num_buckets,
                                                   max_distance);
    float *o = peft_f32(out);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < TS; i++) o[h * TS + i] = tab[(int64_t)bucket[i] * H + h];
    out->requires_grad = peft_needs_grad(g, table, NULL);
    if (out->requires_grad) {
        pbias_ctx *c = peft_tape_push(g, position_bias_backward, sizeof *c);
        if (!c) return NULL;
        c->table = table;
        c->out = out;
        peft_tape_output(g, out);
        c->bucket = bucket;
        c->H = H;
        c->TS = TS;
    }
    return out;
}

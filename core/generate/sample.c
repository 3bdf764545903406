/* generate_sample.c — the token choosers of generation (see generate.h): argmax, and HF
 * transformers 4.44's logits warpers for sampling (TemperatureLogitsWarper, TopKLogitsWarper,
 * TopPLogitsWarper with min_tokens_to_keep 1), then an inverse-CDF draw from the softmax. */
#include <math.h>
#include <stdlib.h>
#include "peft/generate.h"

int32_t peft_gen_argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

typedef struct {
    float v;
    int32_t i;
} scored;

/* ascending by score, ties by index (a total order, so the result never depends on qsort) */
static int cmp_scored(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    if (a->v < b->v) return -1;
    if (a->v > b->v) return 1;
    return (a->i > b->i) - (a->i < b->i);
}

// scores (V) -> scores (V), removed entries -inf
int peft_gen_warp(float *s, int64_t V, double temperature, int64_t top_k, double top_p)
{
    if (V <= 0) return 0;
    if (temperature != 1.0) {
        const float t = (float)temperature; /* HF: scores / temperature, in float32 */
        for (int64_t i = 0; i < V; i++) s[i] = s[i] / t;
    }
    const int do_k = top_k > 0 && top_k < V, do_p = top_p < 1.0;
    if (!do_k && !do_p) return 0;
    scored *o = malloc((size_t)V * sizeof *o);
    if (!o) return -1;
    for (int64_t i = 0; i < V; i++) o[i] = (scored){s[i], (int32_t)i};
    qsort(o, (size_t)V, sizeof *o, cmp_scored);
    if (do_k) {
        /* TopK: indices_to_remove = scores < topk(scores, k)[..., -1] (ties at the k-th kept) */
        const float thr = o[V - top_k].v;
        for (int64_t i = 0; i < V; i++)
            if (s[i] < thr) s[i] = -INFINITY;
        /* the removed ones were the smallest: the ascending order still holds */
        for (int64_t j = 0; j < V; j++) o[j].v = s[o[j].i];
    }
    if (do_p) {
        /* TopP: sort ascending, cumulative softmax; remove where cumsum <= 1 - top_p, always
         * keeping the last (largest) one: the smallest top set whose mass reaches top_p */
        const double mx = o[V - 1].v;
        double total = 0.0;
        for (int64_t j = 0; j < V; j++) total += exp((double)o[j].v - mx);
        double cum = 0.0;
        for (int64_t j = 0; j < V - 1; j++) {
            cum += exp((double)o[j].v - mx) / total;
            if (cum <= 1.0 - top_p) s[o[j].i] = -INFINITY;
        }
    }
    free(o);
    return 0;
}

// scores (V), u in [0, 1) -> token
int32_t peft_gen_sample(const float *s, int64_t V, double u)
{
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++)
        if (s[i] > mx) mx = s[i];
    if (mx == -INFINITY) return 0; /* nothing to pick from (cannot happen after the warpers) */
    double total = 0.0;
    for (int64_t i = 0; i < V; i++) total += exp((double)s[i] - (double)mx);
    const double target = u * total;
    double cum = 0.0;
    int64_t last = 0;
    for (int64_t i = 0; i < V; i++) {
        const double p = exp((double)s[i] - (double)mx);
        if (p <= 0.0) continue;
        cum += p;
        last = i;
        if (cum > target) return (int32_t)i;
    }
    return (int32_t)last; /* rounding: u * total at the very top */
}

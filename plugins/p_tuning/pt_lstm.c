/* pt_lstm.c — one direction of one LSTM layer (PyTorch's nn.LSTM cell, gate order i, f, g, o),
 * forward over the whole sequence and its backward through time. The prompt encoder runs them
 * per layer and direction (pt_encoder.c); batch 1, T = the virtual tokens.
 *
 *   a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh             (4H)
 *   i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g)
 *   c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)          (h_{-1} = c_{-1} = 0)
 * The reverse direction runs t = T-1 .. 0 ("previous" is t + 1). */
#include <math.h>
#include <string.h>

#include "p_tuning.h"

static float sigm(float a) { return 1.0f / (1.0f + expf(-a)); }

/* the step before t in the direction's order, or -1 at its first step */
static int64_t prev_of(int64_t t, int64_t T, int rev) { return rev ? (t + 1 < T ? t + 1 : -1) : t - 1; }

// x (T, in), w_ih (4H, in), w_hh (4H, H), b_ih, b_hh (4H) -> gates (T, 4H), c (T, H),
// y (T, ldy) columns [0, H)
void pt_lstm_forward(const float *x, int64_t T, int64_t in, int64_t H, const float *w_ih,
                     const float *w_hh, const float *b_ih, const float *b_hh, int rev,
                     float *gates, float *c, float *y, int64_t ldy)
{
    const int64_t G = 4 * H;
    /* every step's input part at once: gates = x w_ih^T, then the biases */
    peft_pu_gemm(pt_host, 0, 1, T, G, in, 1.0f, x, w_ih, 0.0f, gates);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < G; j++) gates[t * G + j] += b_ih[j] + b_hh[j];
    for (int64_t s = 0; s < T; s++) {
        const int64_t t = rev ? T - 1 - s : s, tp = prev_of(t, T, rev);
        float *a = gates + t * G, *ct = c + t * H, *ht = y + t * ldy;
        if (tp >= 0) /* a (1, 4H) += h_prev (1, H) w_hh^T (H, 4H) */
            pt_host->sgemm(0, 1, 1, (int)G, (int)H, 1.0f, y + tp * ldy, (int)H, w_hh, (int)H,
                           1.0f, a, (int)G);
        for (int64_t j = 0; j < H; j++) {
            const float ig = sigm(a[j]), fg = sigm(a[H + j]), gg = tanhf(a[2 * H + j]),
                        og = sigm(a[3 * H + j]);
            a[j] = ig;
            a[H + j] = fg;
            a[2 * H + j] = gg;
            a[3 * H + j] = og;
            const float cp = tp >= 0 ? c[tp * H + j] : 0.0f;
            ct[j] = fg * cp + ig * gg;
            ht[j] = og * tanhf(ct[j]);
        }
    }
}

/* Through time, last step first, with dh, dc carried to the previous step:
 *   dh = dy_t + dh_next;  do = dh tanh(c_t);  dc = dh o (1 - tanh^2 c_t) + dc_next
 *   di = dc g;  df = dc c_{t-1};  dg = dc i;  dc_next = dc f
 *   da = (di i(1-i), df f(1-f), dg (1-g^2), do o(1-o))       row t of DA (T, 4H)
 *   dh_next = da w_hh                                        (1, 4H) @ (4H, H)
 * then dw_ih += DA^T x, dx += DA w_ih, db_ih = db_hh += sum_t DA, dw_hh += DA^T Hprev with
 * Hprev (T, H) row t = h_{t-1} (0 at the first step). */
void pt_lstm_backward(const float *x, int64_t T, int64_t in, int64_t H, const float *w_ih,
                      const float *w_hh, int rev, const float *gates, const float *c,
                      const float *y, int64_t ldy, const float *dy, float *dx, float *dw_ih,
                      float *dw_hh, float *db_ih, float *db_hh, float *scratch)
{
    const int64_t G = 4 * H;
    float *da = scratch, *hprev = da + T * G, *dc = hprev + T * H, *dh_next = dc + H;
    memset(dh_next, 0, (size_t)H * sizeof *dh_next);
    memset(dc, 0, (size_t)H * sizeof *dc);
    for (int64_t s = T - 1; s >= 0; s--) {
        const int64_t t = rev ? T - 1 - s : s, tp = prev_of(t, T, rev);
        const float *a = gates + t * G, *ct = c + t * H;
        float *d = da + t * G;
        for (int64_t j = 0; j < H; j++) {
            const float ig = a[j], fg = a[H + j], gg = a[2 * H + j], og = a[3 * H + j];
            const float tc = tanhf(ct[j]), h = dy[t * ldy + j] + dh_next[j];
            const float dct = h * og * (1.0f - tc * tc) + dc[j];
            const float cp = tp >= 0 ? c[tp * H + j] : 0.0f;
            d[j] = dct * gg * ig * (1.0f - ig);
            d[H + j] = dct * cp * fg * (1.0f - fg);
            d[2 * H + j] = dct * ig * (1.0f - gg * gg);
            d[3 * H + j] = h * tc * og * (1.0f - og);
            dc[j] = dct * fg;
            hprev[t * H + j] = tp >= 0 ? y[tp * ldy + j] : 0.0f;
        }
        /* dh_next (1, H) = da (1, 4H) @ w_hh (4H, H) */
        peft_pu_gemm(pt_host, 0, 0, 1, H, G, 1.0f, d, w_hh, 0.0f, dh_next);
    }
    if (dw_ih) peft_pu_gemm(pt_host, 1, 0, G, in, T, 1.0f, da, x, 1.0f, dw_ih);
    if (dw_hh) peft_pu_gemm(pt_host, 1, 0, G, H, T, 1.0f, da, hprev, 1.0f, dw_hh);
    if (dx) peft_pu_gemm(pt_host, 0, 0, T, in, G, 1.0f, da, w_ih, 1.0f, dx);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < G; j++) {
            if (db_ih) db_ih[j] += da[t * G + j];
            if (db_hh) db_hh[j] += da[t * G + j];
        }
}

/* pt_encoder.c — P-tuning's prompt encoder as one op on the host's tape: the forward fills a
 * workspace (every activation the backward needs), the backward runs the MLP head and then the
 * LSTM layers (pt_lstm.c) in reverse. The graph-free pt_encoder_eval runs the very same
 * arithmetic, so that a saved prompt_embeddings reproduces the training forward bit for bit.
 *
 * Shapes: emb (R, C); LSTM layer l: input (R, in_l), in_0 = C, in_l = 2H, output y_l (R, 2H)
 * (forward direction in columns [0, H), reverse in [H, 2H)); dropout on y_l before layer l+1
 * (training only); head: act_0 (R, d_0) -> Linear -> ReLU -> ... -> Linear -> out (R, C). */
#include <string.h>

#include "p_tuning.h"

/* the workspace: pointers into one float buffer */
typedef struct pt_ws {
    float *xin[PT_MAX_LSTM_LAYERS];      /* layer l > 0's input (R, 2H): y_{l-1} after dropout */
    float *mask[PT_MAX_LSTM_LAYERS];     /* l > 0: the dropout mask on y_{l-1} (R, 2H) */
    float *gates[PT_MAX_LSTM_LAYERS][2]; /* (R, 4H) */
    float *cell[PT_MAX_LSTM_LAYERS][2];  /* (R, H) */
    float *y[PT_MAX_LSTM_LAYERS];        /* (R, 2H) */
    float *act[PT_MAX_HEAD];             /* act[i] (R, d_i): the head's inputs, act[0] borrowed */
} pt_ws;

/* lays the workspace out over base (NULL: only counts) and returns its size in floats */
static int64_t ws_layout(const pt_state *st, float *base, pt_ws *w)
{
    const int64_t R = st->rows, H = st->hidden;
    int64_t off = 0;
#define TAKE(ptr, n) ((ptr) = base ? base + off : NULL, off += (n))
    memset(w, 0, sizeof *w);
    for (int l = 0; l < st->n_lstm; l++) {
        if (l > 0) {
            TAKE(w->xin[l], R * 2 * H);
            TAKE(w->mask[l], R * 2 * H);
        }
        for (int d = 0; d < 2; d++) {
            TAKE(w->gates[l][d], R * 4 * H);
            TAKE(w->cell[l][d], R * H);
        }
        TAKE(w->y[l], R * 2 * H);
    }
    for (int i = 1; i < st->n_head; i++) TAKE(w->act[i], R * st->head_dims[i]);
#undef TAKE
    w->act[0] = st->n_lstm ? w->y[st->n_lstm - 1] : peft_f32(st->emb);
    return off;
}

/* the forward into w and out (R, C); rng non-NULL: dropout p between LSTM layers */
static void encoder_forward(const pt_state *st, pt_ws *w, float *out, peft_rng *rng)
{
    const int64_t R = st->rows, H = st->hidden;
    const float *x = peft_f32(st->emb);
    for (int l = 0; l < st->n_lstm; l++) {
        if (l > 0) {
            const float keep = (float)(1.0 - st->dropout), inv = rng ? 1.0f / keep : 1.0f;
            for (int64_t i = 0; i < R * 2 * H; i++) {
                w->mask[l][i] = !rng || pt_host->rng_uniform(rng) < keep ? inv : 0.0f;
                w->xin[l][i] = w->y[l - 1][i] * w->mask[l][i];
            }
            x = w->xin[l];
        }
        const int64_t in = l ? 2 * H : st->dim;
        for (int d = 0; d < 2; d++) {
            peft_tensor *const *p = st->lstm[l][d];
            pt_lstm_forward(x, R, in, H, peft_f32(p[0]), peft_f32(p[1]), peft_f32(p[2]),
                            peft_f32(p[3]), d, w->gates[l][d], w->cell[l][d], w->y[l] + d * H,
                            2 * H);
        }
    }
    for (int i = 0; i < st->n_head; i++) { /* z = act_i W_i^T + b_i, ReLU but after the last */
        const int64_t din = st->head_dims[i], dout = st->head_dims[i + 1];
        float *z = i == st->n_head - 1 ? out : w->act[i + 1];
        const float *b = peft_f32(st->head_b[i]);
        peft_pu_gemm(pt_host, 0, 1, R, dout, din, 1.0f, w->act[i], peft_f32(st->head_w[i]), 0.0f, z);
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < dout; j++) {
                float v = z[r * dout + j] + b[j];
                z[r * dout + j] = i == st->n_head - 1 || v > 0.0f ? v : 0.0f;
            }
    }
}

int pt_encoder_eval(const pt_state *st, float *out)
{
    pt_ws w;
    const int64_t n = ws_layout(st, NULL, &w);
    float *base = pt_host->alloc((size_t)(n ? n : 1) * sizeof(float));
    if (!base) return -1;
    ws_layout(st, base, &w);
    encoder_forward(st, &w, out, NULL);
    pt_host->free(base);
    return 0;
}

typedef struct pt_enc_ctx {
    const pt_state *st;
    peft_tensor *ws;  /* the workspace (arena) */
    peft_tensor *out; /* (R, C) */
} pt_enc_ctx;

/* grad buffer of t, or NULL when it needs none */
static float *grad(peft_graph *g, peft_tensor *t) { return t && t->requires_grad ? pt_host->grad_of(g, t) : NULL; }

/* head, last linear first: dz_i (R, d_{i+1}); dW_i += dz^T act_i; db_i += sum_r dz;
 * dact_i = dz W_i, then through the ReLU (act_i > 0) for i > 0 */
static void encoder_backward(peft_graph *g, void *vctx)
{
    const pt_enc_ctx *c = vctx;
    const pt_state *st = c->st;
    if (!c->out->grad) return;
    const int64_t R = st->rows, H = st->hidden, C = st->dim;
    pt_ws w;
    ws_layout(st, peft_f32(c->ws), &w);
    int64_t widest = C;
    for (int i = 0; i <= st->n_head; i++) widest = st->head_dims[i] > widest ? st->head_dims[i] : widest;
    const int64_t xw = C > 2 * H ? C : 2 * H; /* dx: layer 0's input is C wide, others 2H */
    const int64_t sshape[1] = {2 * R * widest + R * 4 * H + R * H + 2 * H + R * 2 * H + R * xw};
    peft_tensor *scr = pt_host->graph_tensor(g, 1, sshape);
    if (!scr) {
        if (PEFT_HOST_HAS(pt_host, graph_set_error))
            pt_host->graph_set_error(g, "p-tuning: out of memory in the encoder's backward");
        return;
    }
    float *dz = peft_f32(scr), *dnext = dz + R * widest, *lstm_scr = dnext + R * widest;
    float *dy = lstm_scr + R * 4 * H + R * H + 2 * H, *dx = dy + R * 2 * H;
    memcpy(dz, c->out->grad, (size_t)(R * C) * sizeof(float));
    for (int i = st->n_head - 1; i >= 0; i--) {
        const int64_t din = st->head_dims[i], dout = st->head_dims[i + 1];
        float *dw = grad(g, st->head_w[i]), *db = grad(g, st->head_b[i]);
        if (dw) peft_pu_gemm(pt_host, 1, 0, dout, din, R, 1.0f, dz, w.act[i], 1.0f, dw);
        if (db) peft_pu_sum_rows(db, dz, R, dout);
        /* dact_i (R, din) = dz (R, dout) @ W_i (dout, din) */
        peft_pu_gemm(pt_host, 0, 0, R, din, dout, 1.0f, dz, peft_f32(st->head_w[i]), 0.0f, dnext);
        if (i > 0)
            for (int64_t k = 0; k < R * din; k++)
                if (!(w.act[i][k] > 0.0f)) dnext[k] = 0.0f;
        float *t = dz;
        dz = dnext;
        dnext = t;
    }
    /* dz now holds d act_0: the last LSTM layer's output, or the table's gradient */
    const float *dcur = dz;
    for (int l = st->n_lstm - 1; l >= 0; l--) {
        const int64_t in = l ? 2 * H : C;
        memcpy(dy, dcur, (size_t)(R * 2 * H) * sizeof(float));
        memset(dx, 0, (size_t)(R * in) * sizeof(float));
        const float *x = l ? w.xin[l] : peft_f32(st->emb);
        for (int d = 0; d < 2; d++) {
            peft_tensor *const *p = st->lstm[l][d];
            pt_lstm_backward(x, R, in, H, peft_f32(p[0]), peft_f32(p[1]), d, w.gates[l][d],
                             w.cell[l][d], w.y[l] + d * H, 2 * H, dy + d * H, dx, grad(g, p[0]),
                             grad(g, p[1]), grad(g, p[2]), grad(g, p[3]), lstm_scr);
        }
        if (l > 0) /* through the dropout on y_{l-1} */
            for (int64_t k = 0; k < R * 2 * H; k++) dx[k] *= w.mask[l][k];
        dcur = dx;
    }
    float *de = grad(g, st->emb);
    if (de)
        for (int64_t k = 0; k < R * C; k++) de[k] += dcur[k];
}

peft_tensor *pt_encoder_op(pt_state *st, peft_graph *g)
{
    pt_ws w;
    const int64_t n = ws_layout(st, NULL, &w), wshape[1] = {n ? n : 1},
                  oshape[2] = {st->rows, st->dim};
    peft_tensor *ws = pt_host->graph_tensor(g, 1, wshape), *out = pt_host->graph_tensor(g, 2, oshape);
    if (!ws || !out) return NULL;
    ws_layout(st, peft_f32(ws), &w);
    const int drop = st->n_lstm > 1 && st->dropout > 0 && pt_host->graph_training(g);
    encoder_forward(st, &w, peft_f32(out), drop ? pt_host->graph_rng(g) : NULL);
    out->requires_grad = peft_pu_wants_grad(pt_host, g, (const peft_tensor *const *)st->params,
                                            st->n_params);
    if (out->requires_grad) {
        pt_enc_ctx *c = pt_host->tape_push(g, encoder_backward, sizeof *c);
        if (!c) return NULL;
        *c = (pt_enc_ctx){st, ws, out};
    }
    return out;
}

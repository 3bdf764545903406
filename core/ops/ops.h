/* core/ops/ops.h — the differentiable ops the architectures are built from. Internal to the core
 * (not installed, not exported: applications use peft_graph_mse / peft_graph_add and the
 * PeftModel API; plugins get their ops through the host table of peft/plugin.h).
 *
 * Each op computes its forward result into a new arena tensor of g and, when the graph records
 * and an input requires grad, pushes its backward on the tape. Inputs are f32 unless stated
 * (weights of op_linear / op_embedding may be bf16/f16, converted at the kernel). The output
 * requires grad iff some input does (and g->recording). Ops return NULL only on arena OOM.
 * Matrix products go through ops_sgemm (core/ops/gemm.h: OpenBLAS, or oneDNN by choice).
 */
#ifndef PEFT_CORE_OPS_H
#define PEFT_CORE_OPS_H

#include "peft/graph.h"
#include "core/tensor/graph_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x (..., in) -> (..., out). w (out, in), or (in, out) when w_in_out (GPT-2 Conv1D). b (out) or
 * NULL. dW only when w->requires_grad, db only when b->requires_grad. */
peft_tensor *op_linear(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b, int w_in_out);
/* a, b same numel -> a + b (shape of a) */
peft_tensor *op_add(peft_graph *g, peft_tensor *a, peft_tensor *b);
/* acc, x same numel -> acc += x in place, acc returned (it requires grad when either does): a
 * residual add that keeps no new tensor. Only for an acc whose data nobody reads later (an
 * op_linear or dropout output): its gradient is the sum's, passed on as it is; x's gets it
 * added. The same numbers as op_add(x, acc). */
peft_tensor *op_add_into(peft_graph *g, peft_tensor *acc, peft_tensor *x);
/* x * s */
peft_tensor *op_scale(peft_graph *g, peft_tensor *x, float s);
/* x (..., n) * v (n) broadcast over rows */
peft_tensor *op_mul_lastdim(peft_graph *g, peft_tensor *x, peft_tensor *v);
/* inverted dropout with probability p (scaled by 1/(1-p)); identity unless g->training && p>0 */
peft_tensor *op_dropout(peft_graph *g, peft_tensor *x, float p);
/* x (..., C), w (C), b (C) -> layer norm over the last dim with eps */
peft_tensor *op_layernorm(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b, float eps);
/* the same with the output's data in the graph's transient buffer `slot` (slot < 0: the arena),
 * for an output only the next op's forward reads; the same numbers */
peft_tensor *op_layernorm_to(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b,
                             float eps, int slot);
/* GELU, tanh approximation ("gelu_new" / "gelu_pytorch_tanh") */
peft_tensor *op_gelu_tanh(peft_graph *g, peft_tensor *x);
/* the same with the output's data in the graph's transient buffer `slot`
 * (peft_graph_tensor_transient; slot < 0: the arena): for an output only the next op's forward
 * reads. The backward recomputes from x, as op_gelu_tanh's always does: the same numbers. */
peft_tensor *op_gelu_tanh_to(peft_graph *g, peft_tensor *x, int slot);
/* ids i32 (B, T) into table (V, C) -> (B, T, C). Out-of-range ids: NULL and *bad_id set. */
peft_tensor *op_embedding(peft_graph *g, peft_tensor *table, const int32_t *ids, int64_t B,
                                   int64_t T, int32_t *bad_id);
/* columns [off, off+width) of the last dim: x (..., C) -> (..., width) */
peft_tensor *op_slice_lastdim(peft_graph *g, peft_tensor *x, int64_t off, int64_t width);
/* multi-head scaled dot-product attention.
 * q (B, T, H*D), k and v (B, S, H*D) -> (B, T, H*D), scale 1/sqrt(D).
 * causal: query t sees keys s <= t + (S - T). key_mask i32 (B, S) or NULL: 0 = masked key.
 * A query row whose keys are all masked outputs zeros. */
peft_tensor *op_attention(peft_graph *g, peft_tensor *q, peft_tensor *k, peft_tensor *v, int H,
                                   int causal, const int32_t *key_mask);
/* logits (N, V), targets i32 (N) with ignore_index -> scalar mean cross-entropy over the rows
 * whose target != ignore_index (0 if none). Targets outside [0, V) other than ignore: NULL. */
peft_tensor *op_cross_entropy(peft_graph *g, peft_tensor *logits, const int32_t *targets,
                                       int32_t ignore_index);
// h (N, C), w (V, C) frozen (any storage dtype), targets (N) -> loss (): the mean
// cross-entropy of the logits h W^T over targets != ignore_index, computed a chunk of rows at a
// time (the full (N, V) logits never exist; backward recomputes them chunk by chunk). Gradient
// to h only; NULL when w requires grad (use op_linear + op_cross_entropy then).
peft_tensor *op_linear_cross_entropy(peft_graph *g, peft_tensor *h, peft_tensor *w,
                                     const int32_t *targets, int32_t ignore_index);

/* ---- ops for BERT, LLaMA, T5 and the task heads ---- */

/* attention with grouped-query heads, any scale and an additive bias:
 * q (B, T, H*D), k and v (B, S, Hkv*D), H % Hkv == 0 (query head h reads kv head h / (H/Hkv));
 * scores = scale * q k^T (+ bias (H, T, S) if not NULL, e.g. T5's relative positions); causal
 * and key_mask as op_attention. -> (B, T, H*D). Gradients to q, k, v and bias as needed. */
peft_tensor *op_attention_ex(peft_graph *g, peft_tensor *q, peft_tensor *k, peft_tensor *v,
                                      int H, int Hkv, float scale, int causal, const int32_t *key_mask,
                                      peft_tensor *bias);
/* attention options for op_attention_opt (zero = none):
 *   causal, key_mask as op_attention; bias (H, T, S) added to the scores (after soft-capping);
 *   window > 0: a sliding window, query t (at key position t + S - T) sees keys s with
 *     t + S - T - window < s (Mistral, Gemma2's sliding layers, as transformers' eager masks);
 *   softcap > 0: scores become softcap * tanh(scores / softcap) before the bias and the mask
 *     (Gemma2's attn_logit_softcapping). */
typedef struct peft_attn_opts {
    int causal;
    const int32_t *key_mask;
    peft_tensor *bias;
    int64_t window;
    float softcap;
    /* 1: the output's data in the graph's transient buffer PEFT_TRANSIENT_ATTN, for a consumer
     * that reads it in its forward only (a frozen output projection): the backward needs only
     * its gradient */
    int transient_out;
} peft_attn_opts;
/* op_attention_ex with every option: q (B, T, H*D), k and v (B, S, Hkv*D) -> (B, T, H*D);
 * o NULL = no options. Gradients to q, k, v and bias as needed. */
peft_tensor *op_attention_opt(peft_graph *g, peft_tensor *q, peft_tensor *k, peft_tensor *v,
                                       int H, int Hkv, float scale, const peft_attn_opts *o);
/* op_attention_opt over one fused projection's output, read in place: qkv (B, T, (H + 2 Hkv) D)
 * holds q in its first H*D columns, k in the next Hkv*D and v in the last Hkv*D (S = T) ->
 * (B, T, H*D); the same numbers as slicing q, k, v out first, without the copies. Gradients go
 * into qkv's. */
peft_tensor *op_attention_packed(peft_graph *g, peft_tensor *qkv, int H, int Hkv, float scale,
                                 const peft_attn_opts *o);
/* The attention ops keep a recording call's softmax probabilities for the backward up to this
 * many bytes (default 8 MB) and recompute them in the backward above it (bit-identical). Sets
 * it, returns the previous limit; for tests (not thread-safe). */
int64_t op_attention_set_keep_limit(int64_t bytes);
/* x (..., C), w (C) -> w * x / sqrt(mean(x^2) + eps)  (LLaMA RMSNorm, T5 LayerNorm) */
peft_tensor *op_rmsnorm(peft_graph *g, peft_tensor *x, peft_tensor *w, float eps);
/* rotary position embedding, HF's rotate_half convention, on x (B, T, H*D) with D even:
 * for position p = pos[b*T + t] (i32 (B, T), or NULL = t) and i < D/2,
 * angle = p * theta^(-2i/D); (x_i, x_{i+D/2}) -> (x_i cos - x_{i+D/2} sin, x_{i+D/2} cos + x_i sin) */
peft_tensor *op_rope(peft_graph *g, peft_tensor *x, int H, const int32_t *pos, float theta);
/* RMS norm with the weight offset by `offset` (f32): (x / sqrt(mean(x^2) + eps)) * (offset + w);
 * offset 1 is Gemma's (1 + w) norm, offset 0 is op_rmsnorm */
peft_tensor *op_rmsnorm_offset(peft_graph *g, peft_tensor *x, peft_tensor *w, float eps,
                                        float offset);
/* op_rope with the D/2 inverse frequencies given (RoPE scaling: linear, dynamic, llama3):
 * angle = p * inv_freq[i] in f32. inv_freq is read during the call only. */
peft_tensor *op_rope_freqs(peft_graph *g, peft_tensor *x, int H, const int32_t *pos,
                                    const float *inv_freq);
/* soft-capping: x (any shape) -> cap * tanh(x / cap), in that order in f32 (Gemma2's
 * final_logit_softcapping); cap > 0 */
peft_tensor *op_softcap(peft_graph *g, peft_tensor *x, float cap);
/* elementwise */
peft_tensor *op_mul(peft_graph *g, peft_tensor *a, peft_tensor *b); /* same numel */
peft_tensor *op_silu(peft_graph *g, peft_tensor *x);                /* x * sigmoid(x) */
peft_tensor *op_relu(peft_graph *g, peft_tensor *x);
peft_tensor *op_tanh(peft_graph *g, peft_tensor *x);
peft_tensor *op_gelu_erf(peft_graph *g, peft_tensor *x); /* exact GELU, 0.5 x (1 + erf(x/sqrt2)) */
/* x (B, T, C), idx i32 (B) -> (B, C): row idx[b] of each batch item (sequence-classification
 * pooling: BERT's [CLS] at 0, GPT-2/LLaMA's last non-pad token) */
peft_tensor *op_gather_rows(peft_graph *g, peft_tensor *x, const int32_t *idx);
/* a (B, P, C), b (B, T, C) -> (B, P+T, C) (prompt / prefix prepending) */
peft_tensor *op_concat_seq(peft_graph *g, peft_tensor *a, peft_tensor *b);
/* x (B, T, C) -> x[:, off:off+len, :] (B, len, C) (dropping virtual-token positions) */
peft_tensor *op_slice_seq(peft_graph *g, peft_tensor *x, int64_t off, int64_t len);
/* x (..., C) as (N, C) rows, idx i32 (n) -> (n, C): the rows of a sub-batch (grouped adapters) */
peft_tensor *op_take_rows(peft_graph *g, peft_tensor *x, const int32_t *idx, int64_t n);
/* a copy of y (..., C) with row idx[i] replaced by src (n, C) row i; idx distinct */
peft_tensor *op_put_rows(peft_graph *g, peft_tensor *y, peft_tensor *src, const int32_t *idx, int64_t n);
/* mean squared error of x and target (same numel, f32) -> scalar (regression heads) */
peft_tensor *op_mse(peft_graph *g, peft_tensor *x, const float *target);

#ifdef __cplusplus
}
#endif
#endif

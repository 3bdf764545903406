#!/usr/bin/env python3
"""real_shape_torch.py — the PyTorch peer of bench/real_shape.c: a LoRA training step at a real
LLaMA shape (a config.json: bench/configs/llama-3.2-1b.json), random weights.

Plain PyTorch (1.13, Debian's python3-torch; transformers and PEFT are not needed): LlamaForCausalLM
as transformers 4.44 computes it in eval mode (RMSNorm, RoPE on q/k with rope_theta, grouped-query
causal attention, SwiGLU MLP, tied or untied lm_head, shifted cross-entropy), with LoRA r on
every linear layer but the head as PEFT's "all-linear" does: frozen base, lora_A kaiming-uniform,
lora_B zeros, scaling alpha/r, y = base(x) + (x A^T B^T) * scaling. AdamW (lr 1e-4) over the LoRA
parameters. Batch --batch x --seq random tokens, labels = inputs.

--dtype float32: every weight f32. --dtype bfloat16: the frozen base weights are stored in bf16 and
widened to f32 inside each linear layer's forward and again in its backward (a custom autograd
Function that saves only the bf16 weight): PyTorch's memory with a bf16 base at its f32 speed. (A
plain model.to(torch.bfloat16) computes in bf16, which this CPU build of torch 1.13 runs ~27x
slower than f32 on CPUs without AVX512-BF16: not a best setting.) Embedding and norms likewise bf16
storage. --threads sets torch.set_num_threads and OPENBLAS_NUM_THREADS (torch's GEMMs are
OpenBLAS's). Last line: RESULT ms_per_step=... tokens_per_s=... peak_rss_mb=... cpu_ms_per_step=...
"""
import argparse
import json
import os

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--config", required=True)
ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--seq", type=int, default=512)
ap.add_argument("--steps", type=int, default=2)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--r", type=int, default=16)
args = ap.parse_args()
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
os.environ["OMP_NUM_THREADS"] = str(args.threads)

import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench_util import rss_mb, timed_steps  # noqa: E402 (bench/, the script's folder)

cfg = json.load(open(args.config))
C, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
H, HKV, V = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"], cfg["vocab_size"]
D = cfg.get("head_dim") or C // H
EPS, THETA, STD = cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0), cfg.get("initializer_range", 0.02)
TIE = cfg.get("tie_word_embeddings", False)
WDT = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32


class FrozenLinearFn(torch.autograd.Function):
    """y = x W^T with W (out, in) stored in any dtype, computed in f32; saves W, not a copy."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(w)
        return x @ w.float().t()

    @staticmethod
    def backward(ctx, gy):
        (w,) = ctx.saved_tensors
        return gy @ w.float(), None


def frozen(shape, std):
    return torch.nn.Parameter(torch.empty(*shape).normal_(0, std).to(WDT), requires_grad=False)


class LoraLinear(torch.nn.Module):
    def __init__(self, nin, nout, r, alpha):
        super().__init__()
        self.weight = frozen((nout, nin), STD)
        self.lora_A = torch.nn.Parameter(torch.empty(r, nin))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = torch.nn.Parameter(torch.zeros(nout, r))
        self.scaling = alpha / r

    def forward(self, x):
        base = FrozenLinearFn.apply(x, self.weight) if WDT != torch.float32 else F.linear(x, self.weight)
        return base + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w.float()


def rope(x, cos, sin):  # x (B, h, T, D)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Layer(torch.nn.Module):
    def __init__(self, r):
        super().__init__()
        a = 2 * r
        self.q, self.k = LoraLinear(C, H * D, r, a), LoraLinear(C, HKV * D, r, a)
        self.v, self.o = LoraLinear(C, HKV * D, r, a), LoraLinear(H * D, C, r, a)
        self.gate, self.up, self.down = LoraLinear(C, I, r, a), LoraLinear(C, I, r, a), LoraLinear(I, C, r, a)
        self.n1 = torch.nn.Parameter(torch.ones(C, dtype=WDT), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(C, dtype=WDT), requires_grad=False)

    def forward(self, h, cos, sin, mask):
        B, T, _ = h.shape
        x = rms(h, self.n1)
        q = self.q(x).view(B, T, H, D).transpose(1, 2)
        k = self.k(x).view(B, T, HKV, D).transpose(1, 2)
        v = self.v(x).view(B, T, HKV, D).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(H // HKV, dim=1)
        v = v.repeat_interleave(H // HKV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D) + mask
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * D)
        h = h + self.o(a)
        x = rms(h, self.n2)
        return h + self.down(F.silu(self.gate(x)) * self.up(x))


class Llama(torch.nn.Module):
    def __init__(self, r):
        super().__init__()
        self.embed = frozen((V, C), STD)
        self.layers = torch.nn.ModuleList([Layer(r) for _ in range(L)])
        self.norm = torch.nn.Parameter(torch.ones(C, dtype=WDT), requires_grad=False)
        self.lm_head = self.embed if TIE else frozen((V, C), STD)

    def forward(self, ids, labels):
        B, T = ids.shape
        h = F.embedding(ids, self.embed).float()
        inv = 1.0 / (THETA ** (torch.arange(0, D, 2).float() / D))
        f = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((T, T), float("-inf")).triu(1)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        h = rms(h, self.norm)
        w = self.lm_head
        logits = FrozenLinearFn.apply(h, w) if WDT != torch.float32 else F.linear(h, w)
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    t0 = time.perf_counter()
    model = Llama(args.r)
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    n_all = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {args.dtype} base, set_num_threads({args.threads}); "
          f"build {(time.perf_counter() - t0):.1f} s, RSS {rss_mb(False):.0f} MB")
    print(f"trainable params: {n_train:,} || all params: {n_all:,} || trainable%: {100 * n_train / n_all:.4f}")
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, V, (args.batch, args.seq))
    times, cpus, _ = timed_steps(
        lambda: model(ids, ids), opt, args.warmup, args.steps,
        lambda s, tag, t, loss: f"step {s}{tag}: {t[0]:.2f} s (forward {t[1]:.2f}, backward {t[2]:.2f}, "
                                f"adamw {t[3]:.3f}), CPU {t[4]:.2f} s, loss {loss:.5f}, "
                                f"RSS {rss_mb(False):.0f} MB")
    med = statistics.median(times)
    cpu = statistics.median(cpus)
    tps = args.batch * args.seq / (med / 1e3)
    peak = rss_mb()
    print(f"pytorch real-shape ({args.dtype} base): {med / 1e3:.2f} s/step, {tps:.1f} tokens/s, peak RSS {peak:.0f} MB")
    print(f"RESULT ms_per_step={med:.1f} tokens_per_s={tps:.2f} peak_rss_mb={peak:.1f} "
          f"cpu_ms_per_step={cpu:.1f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""lora_step_torch.py — the PyTorch peer of bench/lora_step.c: one LoRA training step on GPT-2 124M.

Plain PyTorch (1.13, Debian's python3-torch; PEFT itself is not needed): a minimal GPT-2 with the
same shapes and computation as transformers' GPT2LMHeadModel in eval mode (no dropout) — learned
positions, pre-LayerNorm blocks, GELU (tanh), causal attention as HF's GPT2Attention._attn,
lm_head tied to wte, shifted cross-entropy loss — with LoRA on c_attn as PEFT does it: frozen base
weights (requires_grad=False), lora_A (r, C) kaiming-uniform, lora_B (3C, r) zeros, scaling
alpha/r = 2, y = base(x) + (x A^T B^T) * scaling. AdamW (lr 1e-4) over the LoRA parameters only.
Batch 4 x 128 random tokens, labels = inputs; 2 warm-up steps then --steps N timed steps.

--threads N sets torch.set_num_threads(N) and, before torch is imported, OPENBLAS_NUM_THREADS=N
and OMP_NUM_THREADS=N: Debian's torch does its GEMMs in OpenBLAS (pthreads), whose thread pool
ignores torch.set_num_threads, so N is then the number of threads the whole step uses.
Last line: RESULT ms_per_step=... peak_rss_mb=...
"""
import argparse
import os
import sys

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--blas-threads", type=int, default=None,
                help="OpenBLAS threads (default: same as --threads)")
args = ap.parse_args()
blas_threads = args.blas_threads if args.blas_threads is not None else args.threads
os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads)
os.environ["OMP_NUM_THREADS"] = str(args.threads)

import math  # noqa: E402
import statistics  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench_util import rss_mb, timed_steps  # noqa: E402 (bench/, the script's folder)

N_LAYER, C, N_HEAD, V, P = 12, 768, 12, 50257, 1024
B, T = 4, 128
R, ALPHA = 8, 16
WARMUP = 2


class LoraConv1D(torch.nn.Module):
    """GPT-2 Conv1D (weight (in, out), y = x W + b), frozen, with a PEFT-style LoRA adapter."""

    def __init__(self, nin, nout, std, r=0, alpha=1):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(nin, nout).normal_(0, std), requires_grad=False)
        self.bias = torch.nn.Parameter(torch.zeros(nout), requires_grad=False)
        self.r = r
        if r:
            self.lora_A = torch.nn.Parameter(torch.empty(r, nin))  # (r, in)
            torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = torch.nn.Parameter(torch.zeros(nout, r))  # (out, r)
            self.scaling = alpha / r

    def forward(self, x):  # x (B, T, in) -> (B, T, out)
        shape = x.shape[:-1] + (self.weight.shape[1],)
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)
        if self.r:
            y = y + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling
        return y


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        proj_std = 0.02 / math.sqrt(2 * N_LAYER)
        self.ln_1 = torch.nn.LayerNorm(C, eps=1e-5)
        self.c_attn = LoraConv1D(C, 3 * C, 0.02, R, ALPHA)
        self.c_proj = LoraConv1D(C, C, proj_std)
        self.ln_2 = torch.nn.LayerNorm(C, eps=1e-5)
        self.c_fc = LoraConv1D(C, 4 * C, 0.02)
        self.mlp_proj = LoraConv1D(4 * C, C, proj_std)
        for p in list(self.ln_1.parameters()) + list(self.ln_2.parameters()):
            p.requires_grad_(False)
        self.register_buffer("mask", torch.tril(torch.ones(P, P, dtype=torch.bool)).view(1, 1, P, P),
                             persistent=False)

    def attn(self, x):  # x (B, T, C)
        b, t, c = x.shape
        hd = c // N_HEAD
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, N_HEAD, hd).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hd)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)  # (B, H, T, T)
        w = torch.where(self.mask[:, :, :t, :t], w, torch.tensor(torch.finfo(w.dtype).min))
        w = F.softmax(w, dim=-1)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Parameter(torch.empty(V, C).normal_(0, 0.02), requires_grad=False)
        self.wpe = torch.nn.Parameter(torch.empty(P, C).normal_(0, 0.02), requires_grad=False)
        self.h = torch.nn.ModuleList(Block() for _ in range(N_LAYER))
        self.ln_f = torch.nn.LayerNorm(C, eps=1e-5)
        for p in self.ln_f.parameters():
            p.requires_grad_(False)

    def forward(self, ids, labels):  # ids, labels (B, T)
        t = ids.shape[1]
        x = F.embedding(ids, self.wte) + self.wpe[:t]
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.t()  # tied lm_head: (B, T, V)
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    rss_import = rss_mb()
    model = GPT2()
    model.train()  # no dropout modules: train() == eval() numerically
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    n_all = sum(p.numel() for p in model.parameters())
    print(f"trainable params: {n_train:,} || all params: {n_all:,} || "
          f"trainable%: {100 * n_train / n_all:.4f}")
    print(f"torch {torch.__version__}: set_num_threads({args.threads}), "
          f"get_num_threads() = {torch.get_num_threads()}, OPENBLAS_NUM_THREADS={blas_threads}")
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, V, (B, T))
    labels = ids.clone()

    times, cpus, losses = timed_steps(
        lambda: model(ids, labels), opt, WARMUP, args.steps,
        lambda s, tag, t, loss: f"step {s}{tag}: {t[0] * 1e3:.1f} ms (forward {t[1] * 1e3:.1f}, "
                                f"backward {t[2] * 1e3:.1f}, adamw {t[3] * 1e3:.1f}), loss {loss:.6f}")

    med, mean = statistics.median(times), statistics.mean(times)
    peak = rss_mb()
    cpu = statistics.median(cpus)
    print(f"timed: median {med:.1f} ms/step, mean {mean:.1f} ms/step, CPU {cpu:.1f} ms/step "
          f"(all threads)")
    print(f"loss: first step {losses[0]:.6f}, last step {losses[-1]:.6f}")
    print(f"rss after import torch {rss_import:.1f} MB")
    print(f"pytorch lora-step (threads {args.threads}): {med:.1f} ms/step, "
          f"{B * T / (med / 1e3):.0f} tokens/s, peak RSS {peak:.1f} MB")
    print(f"RESULT ms_per_step={med:.1f} peak_rss_mb={peak:.1f} threads={args.threads} "
          f"tokens_per_s={B * T / (med / 1e3):.0f} cpu_ms={cpu:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

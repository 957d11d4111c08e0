#!/usr/bin/env python3
"""bench/torch_peer.py — the PyTorch CPU peer of bench_train: the same tiny Llama-style model
(C=128, L=4, NH=NKV=4, F=352, V=4096, untied LM head), the same batch (B=16, T=128), the same
thread count, AdamW (lr 3e-3, betas 0.9/0.95, weight decay 0.1 on matrices, global gradient
clip 1.0), eager mode, synthetic tokens. Prints tokens/s per recipe, one line each:

    torch_peer <recipe> <tokens/s>

Recipes:
  fp32   plain FP32 eager training.
  nvfp4  an NVFP4 quantize-dequantize emulation around the three GEMMs of every linear layer
         of the blocks, as a PyTorch user would write it: operands quantized along each GEMM's
         reduction dimension, blocks of 16 with an E4M3 scale and a per-tensor FP32 scale
         (docs/FORMATS.md §5.3), round-to-nearest-even for X and W in fprop and W in dgrad,
         stochastic rounding (torch.rand) for dY in dgrad and wgrad and X in wgrad; the LM
         head with BF16 operands, as fqt's nvfp4 recipe has it.
This is a speed peer, not an oracle: its random bits are not fqt's.

Usage: torch_peer.py [--threads N] [--steps S] [recipes...]   (Debian: apt-get install python3-torch)
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F

V, C, L, NH, NKV, FF = 4096, 128, 4, 4, 4, 352
B, T = 16, 128
HS = C // NH


def e4m3_rne(v):
    """Round v >= 0 to E4M3 (3 mantissa bits, min normal 2^-6, max 448), ties to even."""
    _, e = torch.frexp(v)
    step = torch.pow(2.0, (torch.clamp(e, min=-5) - 4).to(v.dtype))
    return torch.clamp(torch.round(v / step) * step, max=448.0)


def nvfp4_qdq(x, sr):
    """Quantize-dequantize along the last dimension (a multiple of 16)."""
    shape = x.shape
    amax_t = x.abs().max()
    s_enc = 2688.0 / amax_t if amax_t > 0 else torch.tensor(1.0)
    s_dec = 1.0 / s_enc
    xb = x.reshape(-1, 16)
    sb = e4m3_rne(xb.abs().amax(dim=1, keepdim=True) / 6.0 * s_enc) * s_dec
    y = xb / torch.where(sb > 0, sb, torch.ones_like(sb))
    a = y.abs()
    if sr:
        step = torch.where(a < 2, 0.5, torch.where(a < 4, 1.0, 2.0))
        lo = torch.floor(a / step) * step
        q = lo + step * (torch.rand_like(a) < (a - lo) / step)
    else:
        q = torch.where(a < 2, torch.round(a * 2) / 2, torch.where(a < 4, torch.round(a), torch.round(a / 2) * 2))
    q = torch.clamp(q, max=6.0)
    return (torch.sign(y) * q * sb).reshape(shape)


def bf16_qdq(x):
    return x.to(torch.bfloat16).to(torch.float32)


class QLinearFn(torch.autograd.Function):
    """y = x w^T with every GEMM operand quantized along that GEMM's reduction dimension."""

    @staticmethod
    def forward(ctx, x, w, fmt):
        ctx.save_for_backward(x, w)
        ctx.fmt = fmt
        if fmt == "bf16":
            return bf16_qdq(x) @ bf16_qdq(w).t()
        return nvfp4_qdq(x, False) @ nvfp4_qdq(w, False).t()

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        if ctx.fmt == "bf16":
            dyq = bf16_qdq(dy)
            return dyq @ bf16_qdq(w), dyq.t() @ bf16_qdq(x), None
        dx = nvfp4_qdq(dy, True) @ nvfp4_qdq(w.t().contiguous(), False).t()  # K = out
        dw = nvfp4_qdq(dy.t().contiguous(), True) @ nvfp4_qdq(x.t().contiguous(), True).t()  # K = tokens
        return dx, dw, None


class Linear(torch.nn.Module):
    def __init__(self, cin, cout, fmt):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(cout, cin) * (1.0 / math.sqrt(cin)))
        self.fmt = fmt

    def forward(self, x):
        if self.fmt is None:
            return x @ self.weight.t()
        return QLinearFn.apply(x, self.weight, self.fmt)


class RMSNorm(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


def rope(x, cos, sin):  # x [B, NH, T, HS], rotate pairs (2i, 2i+1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, fmt):
        super().__init__()
        self.n1, self.n2 = RMSNorm(C), RMSNorm(C)
        self.q, self.k, self.v, self.o = (Linear(C, C, fmt), Linear(C, NKV * HS, fmt),
                                          Linear(C, NKV * HS, fmt), Linear(C, C, fmt))
        self.gate, self.up, self.down = Linear(C, FF, fmt), Linear(C, FF, fmt), Linear(FF, C, fmt)

    def forward(self, x, cos, sin, mask):
        h = self.n1(x).reshape(B * T, C)
        q = self.q(h).view(B, T, NH, HS).transpose(1, 2)
        k = self.k(h).view(B, T, NKV, HS).transpose(1, 2)
        v = self.v(h).view(B, T, NKV, HS).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(HS)) + mask
        y = torch.softmax(att, dim=-1) @ v
        x = x + self.o(y.transpose(1, 2).reshape(B * T, C)).view(B, T, C)
        h = self.n2(x).reshape(B * T, C)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)).view(B, T, C)


class Model(torch.nn.Module):
    def __init__(self, recipe):
        super().__init__()
        fmt = "nvfp4" if recipe == "nvfp4" else None
        self.emb = torch.nn.Embedding(V, C)
        self.blocks = torch.nn.ModuleList([Block(fmt) for _ in range(L)])
        self.norm = RMSNorm(C)
        self.head = Linear(C, V, "bf16" if recipe == "nvfp4" else None)
        inv = 1.0 / (10000.0 ** (torch.arange(0, HS, 2).float() / HS))
        ang = torch.arange(T).float()[:, None] * inv[None, :]
        self.cos, self.sin = torch.cos(ang), torch.sin(ang)
        self.mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)

    def forward(self, idx, tgt):
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        logits = self.head(self.norm(x).reshape(B * T, C))
        return F.cross_entropy(logits, tgt.reshape(-1))


def run(recipe, steps):
    torch.manual_seed(1)
    m = Model(recipe)
    decay = [p for p in m.parameters() if p.dim() == 2]
    other = [p for p in m.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(7)
    idx = torch.randint(0, V, (B, T), generator=g)
    tgt = torch.randint(0, V, (B, T), generator=g)
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = m(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    return B * T * steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("recipes", nargs="*", default=["fp32", "nvfp4"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for r in a.recipes:
        print(f"torch_peer {r} {run(r, a.steps):.0f}", flush=True)


if __name__ == "__main__":
    main()

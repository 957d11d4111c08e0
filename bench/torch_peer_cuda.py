#!/usr/bin/env python3
"""bench/torch_peer_cuda.py — the PyTorch GPU peer of `fqt train --device cuda` for the speed
table (issue 9); bench/torch_peer.py is the CPU peer.

The same Llama-style model as fqt (token embedding, pre-norm RMSNorm, rotary embeddings,
causal attention, SwiGLU MLP, final RMSNorm, untied LM head), written as a practitioner
would: torch.compile, BF16 autocast, fused AdamW, SDPA (flash) attention. Recipes:
  bf16   plain BF16 autocast training.
  nvfp4  NVFP4 fully quantized training emulated by quantize-dequantize around each of the
         three GEMMs of every linear layer (RTN for the forward operands, stochastic rounding
         for the gradient operands), as the FP4 papers' reference code does: 16-element blocks
         along K, UE4M3 block scales, an FP32 per-tensor scale.
Prints one JSON line per recipe: tokens/s, ms/step, peak memory. Random tokens (speed only).
Not for: loss comparisons (fqt's own tests do those). Written for this project; no code
copied from elsewhere.

  python3 bench/torch_peer_cuda.py --size llama-124m --batch 16 --steps 20 --recipes bf16,nvfp4
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {
    "tiny": dict(dim=128, layers=4, heads=4, ffn=384, vocab=4096, ctx=256),
    "llama-124m": dict(dim=768, layers=12, heads=12, ffn=2048, vocab=50304, ctx=1024),
    "llama-1b": dict(dim=2048, layers=16, heads=16, ffn=5632, vocab=50304, ctx=2048),
}

# ---- NVFP4 quantize-dequantize (emulation) ------------------------------------------------
E2M1_GRID = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
E2M1_MIDS = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])


def nvfp4_qdq(x, sr):
    """qdq of x along its last dimension (blocks of 16), float32 math, result in x.dtype."""
    shape, dt = x.shape, x.dtype
    k = shape[-1]
    pad = (-k) % 16
    xf = x.float()
    if pad:
        xf = F.pad(xf, (0, pad))
    xb = xf.reshape(-1, 16)
    amax_t = xb.abs().amax().clamp(min=1e-30)
    s_enc = 2688.0 / amax_t
    s_dec = 1.0 / s_enc
    bmax = xb.abs().amax(dim=1, keepdim=True)
    sb = (bmax / 6.0 * s_enc).clamp(max=448.0).to(torch.float8_e4m3fn).float()
    inv = torch.where(sb > 0, 1.0 / (sb * s_dec), torch.zeros_like(sb))
    a = (xb * inv).abs().clamp(max=6.0)
    grid = E2M1_GRID.to(x.device)
    if sr:
        lo_i = torch.bucketize(a, grid[1:], right=True)
        lo = grid[lo_i]
        hi = grid[(lo_i + 1).clamp(max=7)]
        p = torch.where(hi > lo, (a - lo) / (hi - lo), torch.zeros_like(a))
        q = torch.where(torch.rand_like(a) < p, hi, lo)
    else:
        q = grid[torch.bucketize(a, E2M1_MIDS.to(x.device))]
    y = (torch.sign(xb) * q * sb * s_dec).reshape(*shape[:-1], k + pad)
    if pad:
        y = y[..., :k]
    return y.to(dt)


class QLinearFn(torch.autograd.Function):
    """y = x W^T with all three GEMMs on NVFP4-qdq'd operands (blocks along each GEMM's K)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.bfloat16)
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return nvfp4_qdq(x, False) @ nvfp4_qdq(w, False).t()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g2 = g.reshape(-1, g.shape[-1]).to(x.dtype)
        x2 = x.reshape(-1, x.shape[-1])
        dx = nvfp4_qdq(g2, True) @ nvfp4_qdq(w.t().contiguous(), False).t()       # K = out
        dw = nvfp4_qdq(g2.t().contiguous(), True) @ nvfp4_qdq(x2.t().contiguous(), True).t()  # K = tokens
        return dx.reshape(x.shape), dw.to(w.dtype)


class Linear(nn.Module):
    def __init__(self, i, o, quant):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i) * (1.0 / math.sqrt(i)))
        self.quant = quant

    def forward(self, x):
        if self.quant:
            w = self.weight.to(x.dtype)
            return QLinearFn.apply(x, w)
        return F.linear(x, self.weight)


def rope_tables(T, hs, theta, device):
    inv = theta ** (-torch.arange(0, hs, 2, device=device, dtype=torch.float64) / hs)
    a = torch.arange(T, device=device, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(a).float(), torch.sin(a).float()


def rope(x, cos, sin):  # x [B, H, T, HS], rotate_half convention
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s], dim=-1)


class Block(nn.Module):
    def __init__(self, c, quant):
        super().__init__()
        d, self.nh = c["dim"], c["heads"]
        self.n1, self.n2 = nn.RMSNorm(d, eps=1e-5), nn.RMSNorm(d, eps=1e-5)
        self.qkv = Linear(d, 3 * d, quant)
        self.o = Linear(d, d, quant)
        self.gate_up = Linear(d, 2 * c["ffn"], quant)
        self.down = Linear(c["ffn"], d, quant)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(self.n1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, C))
        g, u = self.gate_up(self.n2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)


class Model(nn.Module):
    def __init__(self, c, quant):
        super().__init__()
        self.emb = nn.Embedding(c["vocab"], c["dim"])
        self.blocks = nn.ModuleList(Block(c, quant) for _ in range(c["layers"]))
        self.norm = nn.RMSNorm(c["dim"], eps=1e-5)
        self.head = Linear(c["dim"], c["vocab"], quant)
        self.c = c

    def forward(self, tok, tgt, cos, sin):
        x = self.emb(tok)
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1))


def run(size, recipe, batch, steps, warmup, compile_):
    c = SIZES[size]
    dev = "cuda"
    torch.manual_seed(0)
    m = Model(c, recipe == "nvfp4").to(dev)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=0.1, fused=True)
    cos, sin = rope_tables(c["ctx"], c["dim"] // c["heads"], 10000.0, dev)
    fwd = torch.compile(m) if compile_ else m
    T = c["ctx"]

    def step():
        tok = torch.randint(0, c["vocab"], (batch, T), device=dev)
        tgt = torch.randint(0, c["vocab"], (batch, T), device=dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(tok, tgt, cos, sin)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return dict(peer="torch", size=size, recipe=recipe, batch=batch, T=T, ms_per_step=dt * 1e3,
                tokens_per_s=batch * T / dt, peak_gib=torch.cuda.max_memory_allocated() / 2**30,
                loss=float(loss), torch=torch.__version__, device=torch.cuda.get_device_name(),
                compiled=compile_)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="llama-124m", choices=sorted(SIZES))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--recipes", default="bf16,nvfp4")
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    for r in a.recipes.split(","):
        print(json.dumps(run(a.size, r, a.batch, a.steps, a.warmup, not a.no_compile)), flush=True)


if __name__ == "__main__":
    main()

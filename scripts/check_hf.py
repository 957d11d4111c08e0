#!/usr/bin/env python3
"""Interoperability check: load a checkpoint written by fqt with Hugging Face transformers'
LlamaForCausalLM.from_pretrained and compare its logits with fqt's own forward pass.

Usage: check_hf.py CKPT_DIR PREFIX
  PREFIX.tokens.i32 / PREFIX.logits.f32 come from
  `fqt eval --ckpt CKPT_DIR --recipe fp32 --dump-logits PREFIX` (no quantization, so both
  sides compute the same function in float32). Exits non-zero if the logits disagree by more
  than a tolerance derived from float32 accumulation, or if the argmax tokens differ.
"""
import sys

import numpy as np
import torch
from transformers import LlamaForCausalLM


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    ckpt, prefix = sys.argv[1], sys.argv[2]
    tokens = np.fromfile(prefix + ".tokens.i32", dtype="<i4")
    ref = np.fromfile(prefix + ".logits.f32", dtype="<f4").reshape(len(tokens), -1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = LlamaForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32)
    model.eval()
    cfg = model.config
    print(f"loaded {ckpt}: vocab {cfg.vocab_size}, hidden {cfg.hidden_size}, layers "
          f"{cfg.num_hidden_layers}, heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(dev)
    with torch.no_grad():
        ids = torch.tensor(tokens.astype(np.int64))[None].to(dev)
        out = model(ids).logits[0].float().cpu().numpy()
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    scale = np.abs(ref).max()
    # Two float32 implementations of the same network differ by accumulation order only:
    # allow a relative error of 1e-4 of the largest logit (about 1000 float32 ulps).
    tol = 1e-4 * scale
    agree = float((out.argmax(-1) == ref.argmax(-1)).mean())
    print(f"device {dev}; {len(tokens)} positions x {ref.shape[1]} logits")
    print(f"max |logit| {scale:.4f}; max |hf - fqt| {diff.max():.3e}; mean {diff.mean():.3e}; "
          f"tolerance {tol:.3e}; argmax agreement {100 * agree:.2f}%")
    ok = diff.max() <= tol and agree == 1.0
    print("OK: transformers reproduces fqt's logits" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

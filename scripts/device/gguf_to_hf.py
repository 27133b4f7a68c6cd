"""Dequantise a GGUF reader once into a bf16 Hugging Face folder (weights + tokenizer).

Run on the device machine before several ``eval_job.py`` calls that share one reader: each then
loads the folder in seconds instead of dequantising the GGUF again (70-100 s for the 1.5B reader).
The folder holds the same bf16 weights that ``--reader FILE.gguf`` gives on the GPU.

    python3 scripts/device/gguf_to_hf.py /tmp/mooscomp-reader/qwen.gguf /root/qwen \
        [--tokenizer .whl/qwen_tok]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("gguf", help=".gguf file")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--tokenizer", default="", help="tokenizer folder (default: from the GGUF)")
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    src = Path(a.gguf)
    kw = {"gguf_file": src.name}
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), dtype=torch.bfloat16, **kw)
    print(f"[gguf_to_hf] dequantised in {time.perf_counter() - t0:.0f}s", flush=True)
    cfg = model.config
    if getattr(cfg, "quantization_config", None) is not None:
        del cfg.quantization_config
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.save_pretrained(a.out)
    tok = (
        AutoTokenizer.from_pretrained(a.tokenizer)
        if a.tokenizer
        else AutoTokenizer.from_pretrained(str(src.parent), **kw)
    )
    tok.save_pretrained(a.out)
    print(f"[gguf_to_hf] {a.out} written in {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

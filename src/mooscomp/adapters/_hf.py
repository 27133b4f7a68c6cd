"""Local Hugging Face token-classification checkpoints (e.g. a downloaded LLMLingua-2 model).

Lets the llmlingua facade run the very checkpoint a user had given to llmlingua, from a local
folder: the encoder and the 2-label head become a mooscomp model, selected with LLMLingua-2's rule
(``budget="llmlingua2"``, no outlier term, no unit rules), which keeps the same words as llmlingua
on the same weights wherever the word segmentation agrees (``reports/parity_llmlingua.json``).
Only safetensors weights are read (never a pickled ``pytorch_model.bin``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mooscomp.config import CompressionConfig

PARITY_CONFIG = CompressionConfig(budget="llmlingua2", outlier_alpha=0.0, units=())


def is_hf_checkpoint(path: Path) -> bool:
    """A folder whose config.json names a ``*ForTokenClassification`` architecture."""
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    archs = cfg.get("architectures") or [] if isinstance(cfg, dict) else []
    return any(str(a).endswith("ForTokenClassification") for a in archs)


def hf_compressor(path: Path, *, device: str, backend: str) -> Any:
    """A :class:`mooscomp.Compressor` on a local token-classification checkpoint with 2 labels."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from mooscomp.compressor import Compressor
    from mooscomp.exporters.onnx import select_scorer
    from mooscomp.modeling import TokenCompressorModel

    if not any(path.glob("*.safetensors")):
        raise ValueError(f"{path}: no *.safetensors weights (mooscomp never loads pickled weights)")
    hf = AutoModelForTokenClassification.from_pretrained(str(path), use_safetensors=True)
    if int(hf.config.num_labels) != 2 or not hasattr(hf, "classifier"):
        raise ValueError(f"{path}: needs a 2-label token classifier, got {hf.config.num_labels} labels")
    model = TokenCompressorModel(getattr(hf, hf.base_model_prefix))
    model.head.load_state_dict(hf.classifier.state_dict())
    comp = Compressor(model.to(device), AutoTokenizer.from_pretrained(str(path)), config=PARITY_CONFIG)
    comp.scorer = select_scorer(comp.model, backend=backend, device=device)
    return comp

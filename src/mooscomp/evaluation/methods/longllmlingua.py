"""``longllmlingua_pkg``: LongLLMLingua, the question-aware path of the ``llmlingua`` 0.2.2
package (``rank_method="longllmlingua"``) on a small causal LM, with its documented recipe
(:data:`RECIPE`).

llmlingua's LongLLMLingua path runs only under transformers 4.x (its iterative compression unpacks
``past_key_values`` as tuples; transformers 5 hands it a Cache object). The project's environment
has transformers 5, so this method is normally run by ``scripts/device/longllmlingua_job.py``,
which installs transformers 4.46.3 into a side folder, writes rows in the runner's
``compressions.jsonl`` format, and hands them to ``bench quality --prepared``. In-process, the
builder runs it when transformers 4.x and llmlingua are importable, and otherwise raises an error
that says so.

A causal LM saved by transformers 5 needs three edits to load in 4.46
(:func:`patch_lm_for_transformers4`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mooscomp.evaluation.methods.base import BuildContext
from mooscomp.evaluation.tasks import EvalItem

# The recipe of LongLLMLingua's documentation (besides question= and rate=).
RECIPE: dict[str, Any] = {
    "rank_method": "longllmlingua",
    "condition_in_question": "after_condition",
    "reorder_context": "sort",
    "dynamic_context_compression_ratio": 0.3,
    "condition_compare": True,
    "context_budget": "+100",
}
SIDE_ENV_HINT = (
    "longllmlingua_pkg needs transformers 4.x (llmlingua 0.2.2's LongLLMLingua path fails on "
    "transformers 5's Cache objects); run scripts/device/longllmlingua_job.py (it installs "
    "transformers 4.46.3 into a side folder) and pass its rows with `bench quality --prepared`"
)


def transformers_version() -> str:
    """The version of the transformers that ``import transformers`` would load (not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "not installed"


def patch_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` of a transformers-5 causal LM, readable by 4.46: no
    ``quantization_config``, ``rope_theta`` at the top level (4.46 reads only that and falls
    back to 10,000 silently; 5.x keeps it in ``rope_parameters``), and 5.x's ``dtype`` also as
    ``torch_dtype`` (what ``torch_dtype="auto"`` reads in 4.46)."""
    out = {k: v for k, v in cfg.items() if k != "quantization_config"}
    rope = out.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope and "rope_theta" not in out:
        out["rope_theta"] = rope["rope_theta"]
    if "dtype" in out and "torch_dtype" not in out:
        out["torch_dtype"] = out["dtype"]
    return out


def patch_tokenizer_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``tokenizer_config.json`` readable by 4.46: 5.x writes ``TokenizersBackend`` (or another
    class 4.46 lacks); the fast tokenizer from ``tokenizer.json`` is what it means."""
    return {**cfg, "tokenizer_class": "PreTrainedTokenizerFast"}


def patch_lm_for_transformers4(src: str | Path, dst: str | Path) -> Path:
    """A copy of the causal LM folder ``src`` at ``dst`` that transformers 4.46 loads the same:
    the two JSON files patched, every other file linked (or copied where links fail)."""
    src, dst = Path(src), Path(dst)
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src}: no config.json (a causal LM folder is needed)")
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        target = dst / f.name
        if f.name in ("config.json", "tokenizer_config.json") or not f.is_file():
            continue
        if target.exists() or target.is_symlink():
            target.unlink()
        try:
            target.symlink_to(f.resolve())
        except OSError:
            shutil.copy2(f, target)
    for name, fn in (("config.json", patch_config), ("tokenizer_config.json", patch_tokenizer_config)):
        if (src / name).is_file():
            data = json.loads((src / name).read_text(encoding="utf-8"))
            (dst / name).write_text(json.dumps(fn(data), indent=1), encoding="utf-8")
    return dst


def strip_question(text: str, question: str) -> str:
    """The compressed contexts alone: LongLLMLingua appends the (uncompressed) question after a
    blank line; the reader's prompt adds it again, so it is removed."""
    q = question.strip()
    t = text.rstrip()
    if q and t.endswith(q):
        t = t[: -len(q)]
    return t.strip()


class LongLLMLingua:
    """``PromptCompressor(lm_dir).compress_prompt(contexts, question=..., rate=..., **RECIPE)``;
    needs transformers 4.x (see the module docstring)."""

    names = ("longllmlingua_pkg",)

    def __init__(
        self,
        lm_dir: str | Path,
        *,
        device: str = "cpu",
        tiktoken_cache: str | Path | None = None,
        recipe: dict[str, Any] | None = None,
    ) -> None:
        if not transformers_version().startswith("4."):
            raise RuntimeError(f"{SIDE_ENV_HINT} (found transformers {transformers_version()})")
        from mooscomp.evaluation.methods.llmlingua import prepare_tiktoken_cache

        prepare_tiktoken_cache(tiktoken_cache or Path(lm_dir).parent / "tiktoken_cache")
        from llmlingua import PromptCompressor

        self.pc = PromptCompressor(model_name=str(lm_dir), device_map=device)
        self.recipe = dict(RECIPE if recipe is None else recipe)
        self.failures: list[dict[str, str]] = []

    def compress_one(self, item: EvalItem, rate: float) -> str:
        """The compressed contexts of one item (llmlingua's own errors propagate)."""
        res = self.pc.compress_prompt(
            list(item.contexts), question=item.question, rate=float(rate), **self.recipe
        )
        return strip_question(str(res["compressed_prompt"]), item.question)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        """Every item at every rate; an item llmlingua fails on gets an empty text (the reader
        then scores it as a miss) and an entry in :attr:`failures`."""
        out: list[list[str]] = [[] for _ in rates]
        for ri, r in enumerate(rates):
            for it in items:
                t0 = time.perf_counter()
                try:
                    out[ri].append(self.compress_one(it, r))
                except Exception as e:  # noqa: BLE001 - llmlingua's assertions (token round trips)
                    out[ri].append("")
                    self.failures.append({
                        "item_id": it.item_id, "rate": str(r),
                        "error": f"{type(e).__name__}: {e}"[:300],
                        "seconds": f"{time.perf_counter() - t0:.2f}",
                    })
        return {"longllmlingua_pkg": out}


def build(ctx: BuildContext) -> LongLLMLingua | None:
    """From ``MethodOptions.longllmlingua_lm`` (None when unset); a clear error under
    transformers 5 (use the side environment of ``scripts/device/longllmlingua_job.py``)."""
    lm = ctx.options.longllmlingua_lm
    if not lm:
        return None
    if not transformers_version().startswith("4."):
        raise RuntimeError(f"{SIDE_ENV_HINT} (found transformers {transformers_version()})")
    patched = patch_lm_for_transformers4(lm, Path(ctx.options.work_dir) / "longllmlingua_lm")
    ctx.notes["longllmlingua_pkg"] = {
        "model": str(lm), "recipe": RECIPE, "transformers": transformers_version(),
    }
    return LongLLMLingua(patched, device=ctx.options.compress_device)

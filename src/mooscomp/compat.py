"""Drop-in replacement for ``llmlingua.PromptCompressor`` (LLMLingua-2 path).

Switching from llmlingua is one import::

    from mooscomp.compat import PromptCompressor
    comp = PromptCompressor(model_name="path/to/model", use_llmlingua2=True)
    comp.compress_prompt(context, rate=0.33, force_tokens=["\\n", "?"])

The returned dict has llmlingua 0.2.2's keys and value types (``ratio`` like ``"3.0x"``, ``rate``
like ``"33.3%"``, ``saving`` a string).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mooscomp.compressor import Compressor
from mooscomp.config import CompressionConfig


class PromptCompressor:
    """LLMLingua-2-compatible facade over :class:`mooscomp.Compressor`.

    ``model_name`` is a mooscomp model directory (None = the shipped model); the model type is read
    from the directory, never from its name. ``use_llmlingua2`` is accepted for compatibility; only
    the LLMLingua-2 algorithm exists here.
    """

    def __init__(
        self,
        model_name: str | None = None,
        device_map: str = "cpu",
        model_config: dict[str, Any] | None = None,
        open_api_config: dict[str, Any] | None = None,
        use_llmlingua2: bool = True,
        llmlingua2_config: dict[str, Any] | None = None,
    ) -> None:
        if not use_llmlingua2:
            raise ValueError("use_llmlingua2=False (LLMLingua-1) is not supported by mooscomp")
        device = "cuda" if device_map in ("cuda", "auto", "balanced") else device_map
        cfg = dict(llmlingua2_config or {})
        batch = int(cfg.get("max_batch_size", 50))
        self.compressor = Compressor.from_pretrained(model_name, device=device)
        self.compressor.config = self.compressor.config.replace(batch_size=batch)

    def compress_prompt(
        self,
        context: str | Sequence[str],
        rate: float = 0.5,
        target_token: float = -1,
        use_context_level_filter: bool = False,
        use_token_level_filter: bool = True,
        target_context: int = -1,
        context_level_rate: float = 1.0,
        context_level_target_token: int = -1,
        force_context_ids: Sequence[int] | None = None,
        return_word_label: bool = False,
        word_sep: str = "\t\t|\t\t",
        label_sep: str = " ",
        token_to_word: str = "mean",
        force_tokens: Sequence[str] = (),
        force_reserve_digit: bool = False,
        drop_consecutive: bool = False,
        chunk_end_tokens: Sequence[str] = (".", "\n"),
        **_: Any,
    ) -> dict[str, Any]:
        """Compress like ``llmlingua.PromptCompressor.compress_prompt`` (LLMLingua-2 mode)."""
        if not use_token_level_filter and not use_context_level_filter:
            raise ValueError("at least one of use_token_level_filter / use_context_level_filter")
        if isinstance(context, str):
            context = [context]
        changes: dict[str, Any] = {
            "token_to_word": token_to_word,
            "force_reserve_digit": bool(force_reserve_digit),
            "drop_consecutive": bool(drop_consecutive),
            "use_context_level_filter": bool(use_context_level_filter),
            "chunk_end_chars": "".join(t for t in chunk_end_tokens if len(t) == 1),
        }
        if use_context_level_filter and context_level_rate < 1.0:
            changes["context_level_rate"] = float(context_level_rate)
        config: CompressionConfig = self.compressor.config.replace(**changes)
        kwargs: dict[str, Any] = (
            {"target_tokens": int(target_token)} if target_token > 0 else {"rate": float(rate)}
        )
        res = self.compressor.compress(
            list(context), force_tokens=list(force_tokens), config=config, **kwargs
        )
        out: dict[str, Any] = {
            "compressed_prompt": res.text,
            "compressed_prompt_list": [
                c for c, k in zip(res.contexts, res.context_kept, strict=True) if k
            ],
            "origin_tokens": res.origin_tokens,
            "compressed_tokens": res.compressed_tokens,
            "ratio": f"{res.ratio:.1f}x",
            "rate": f"{100 * res.rate:.1f}%",
            "saving": (
                f", Saving ${(res.origin_tokens - res.compressed_tokens) * 0.06 / 1000:.1f} "
                "in GPT-4."
            ),
        }
        if return_word_label:
            lines = []
            for d in res.details:
                lines.append(
                    word_sep.join(
                        f"{w}{label_sep}{int(k)}"
                        for w, k in zip(d.words.tolist(), d.kept.tolist(), strict=True)
                    )
                )
            out["fn_labeled_original_prompt"] = word_sep.join(lines)
        return out

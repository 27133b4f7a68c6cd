"""Drop-in replacement for ``llmlingua.PromptCompressor`` (its LLMLingua-2 path, llmlingua 0.2.2).

Switching from llmlingua is one import::

    from mooscomp.adapters.llmlingua import PromptCompressor   # or: from mooscomp.compat import ...
    comp = PromptCompressor()                      # the shipped model; or a local model directory
    comp.compress_prompt(context, rate=0.33, force_tokens=["\\n", "?"])

``compress_prompt`` takes llmlingua 0.2.2's arguments, in its order, with its defaults (so a list
of contexts is context-filtered unless ``use_context_level_filter=False``, as there), and returns
its keys and value types (``ratio`` like ``"3.0x"``, ``rate`` like ``"33.3%"``). Every argument
either does what it does in llmlingua's LLMLingua-2 path or is refused with an error naming it:
the LLMLingua-1 / LongLLMLingua options that llmlingua silently ignores there are refused when
given a non-default value, and an unknown keyword is a ``TypeError``. As in llmlingua's
LLMLingua-2 path, ``instruction`` and ``question`` are not part of the compressed prompt;
``rank_method="longllmlingua"`` (which needs a non-blank ``question``) maps to mooscomp's
question-aware path (``Compressor.compress(question=...)``: sentences ranked by relevance to the
question, kept whole or compressed lightly, the rest harder, under the exact global budget), and
``reorder_context="sort"`` with it to putting the most relevant context first (``context_order``).
``format=`` (keyword only, mooscomp's): ``raw`` (default)
or a structured format for one context (:mod:`mooscomp.adapters._formatted`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mooscomp._util import check_int
from mooscomp.adapters._hf import hf_compressor, is_hf_checkpoint
from mooscomp.adapters._llmlingua_rules import check_options, context_level, filter_contexts
from mooscomp.config import Request

# compress_prompt's LLMLingua-1 / LongLLMLingua options and their llmlingua 0.2.2 defaults:
# llmlingua's LLMLingua-2 path ignores them, so a different value is refused here, not ignored.
_LLMLINGUA1_ONLY: dict[str, Any] = {
    "iterative_size": 200, "force_context_number": None, "use_sentence_level_filter": False,
    "keep_split": False, "keep_first_sentence": 0, "keep_last_sentence": 0,
    "keep_sentence_number": 0, "high_priority_bonus": 100, "context_budget": "+100",
    "token_budget_ratio": 1.4, "condition_in_question": "none",
    "dynamic_context_compression_ratio": 0.0, "condition_compare": False, "add_instruction": False,
    "concate_question": True, "context_segs": None, "context_segs_rate": None,
    "context_segs_compress": None, "strict_preserve_uncompressed": True,
}
_SPREAD_DEVICES = ("auto", "balanced", "balanced_low_0", "sequential")
_HINT = (
    "mooscomp never downloads models: use PromptCompressor() (model_name=None, the model shipped "
    "with mooscomp), the path of a local mooscomp model directory (`mooscomp train ... --export "
    "DIR`), or the local folder of a downloaded LLMLingua-2 checkpoint (safetensors)"
)


class PromptCompressor:
    """LLMLingua-2-compatible facade over :class:`mooscomp.Compressor`.

    ``model_name`` is a local mooscomp model directory (None = the shipped model) or a local
    Hugging Face token-classification checkpoint such as a downloaded LLMLingua-2 model (run with
    LLMLingua-2's selection rule); hub names such as ``microsoft/llmlingua-2-...`` are refused
    with a hint (mooscomp never downloads).
    ``device_map`` is a torch device (``"auto"`` = cuda when available). ``model_config`` and
    ``open_api_config`` configure Hugging Face loading and LLMLingua-1's OpenAI ranking; neither
    exists here, so only empty dicts are accepted. ``llmlingua2_config`` takes ``max_batch_size``
    and ``max_force_token`` as in llmlingua. ``backend`` (mooscomp only) picks the forward runtime.
    """

    def __init__(
        self,
        model_name: str | Path | None = None,
        device_map: str = "cpu",
        model_config: dict[str, Any] | None = None,
        open_api_config: dict[str, Any] | None = None,
        use_llmlingua2: bool = True,
        llmlingua2_config: dict[str, Any] | None = None,
        *,
        backend: str = "auto",
    ) -> None:
        from mooscomp.compressor import Compressor

        if not use_llmlingua2:
            raise ValueError("use_llmlingua2=False (LLMLingua-1) is not supported by mooscomp")
        for name, value in (("model_config", model_config), ("open_api_config", open_api_config)):
            if value:
                raise ValueError(
                    f"{name}={value!r}: not supported by mooscomp (it loads local model "
                    "directories only, without Hugging Face loading options or OpenAI APIs)"
                )
        cfg = dict(llmlingua2_config or {})
        unknown = sorted(set(cfg) - {"max_batch_size", "max_force_token"})
        if unknown:
            raise TypeError(f"llmlingua2_config: unknown keys {unknown} "
                            "(llmlingua takes max_batch_size and max_force_token)")
        self.max_batch_size = cfg.get("max_batch_size", 50)
        self.max_force_token = cfg.get("max_force_token", 100)
        check_int("llmlingua2_config['max_batch_size']", self.max_batch_size, 1, 100_000)
        check_int("llmlingua2_config['max_force_token']", self.max_force_token, 1, 1000)
        self.model_name = None if model_name is None else str(model_name)
        self.device = _device(device_map)
        path = _model_dir(model_name)
        if path is not None and is_hf_checkpoint(path):  # e.g. a downloaded llmlingua-2 model
            self.compressor = hf_compressor(path, device=self.device, backend=backend)
        else:
            self.compressor = Compressor.from_pretrained(path, device=self.device, backend=backend)
        self.compressor.config = self.compressor.config.replace(batch_size=self.max_batch_size)

    @property
    def tokenizer(self) -> Any:
        """The encoder's tokenizer (llmlingua exposes its tokenizer under the same name)."""
        return self.compressor.tokenizer

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.compress_prompt(*args, **kwargs)

    def get_token_length(
        self, text: str, add_special_tokens: bool = True, use_oai_tokenizer: bool = False
    ) -> int:
        """Tokens of ``text``: GPT-3.5/4 (cl100k) tokens, or the encoder's tokens."""
        if use_oai_tokenizer:
            return int(self.compressor.count(text))
        return len(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def compress_prompt(  # llmlingua 0.2.2's signature: names, order and defaults
        self,
        context: str | Sequence[str],
        instruction: str = "",
        question: str = "",
        rate: float = 0.5,
        target_token: float = -1,
        iterative_size: int = 200,
        force_context_ids: Sequence[int] | None = None,
        force_context_number: int | None = None,
        use_sentence_level_filter: bool = False,
        use_context_level_filter: bool = True,
        use_token_level_filter: bool = True,
        keep_split: bool = False,
        keep_first_sentence: int = 0,
        keep_last_sentence: int = 0,
        keep_sentence_number: int = 0,
        high_priority_bonus: int = 100,
        context_budget: str = "+100",
        token_budget_ratio: float = 1.4,
        condition_in_question: str = "none",
        reorder_context: str = "original",
        dynamic_context_compression_ratio: float = 0.0,
        condition_compare: bool = False,
        add_instruction: bool = False,
        rank_method: str = "llmlingua",
        concate_question: bool = True,
        context_segs: Sequence[str] | None = None,
        context_segs_rate: Sequence[float] | None = None,
        context_segs_compress: Sequence[bool] | None = None,
        target_context: int = -1,
        context_level_rate: float = 1.0,
        context_level_target_token: int = -1,
        return_word_label: bool = False,
        word_sep: str = "\t\t|\t\t",
        label_sep: str = " ",
        token_to_word: str = "mean",
        force_tokens: Sequence[str] = (),
        force_reserve_digit: bool = False,
        drop_consecutive: bool = False,
        chunk_end_tokens: Sequence[str] = (".", "\n"),
        strict_preserve_uncompressed: bool = True,
        *,
        format: str = "raw",
    ) -> dict[str, Any]:
        """Compress like llmlingua's ``compress_prompt`` (LLMLingua-2); ``format``: see above."""
        args = dict(locals())  # every argument by name, exactly as given
        del args["self"]
        reorder = args.pop("reorder_context")
        refused = sorted(k for k, d in _LLMLINGUA1_ONLY.items() if args.pop(k) != d)
        if refused:
            raise ValueError(
                f"{', '.join(refused)}: LLMLingua-1/LongLLMLingua option(s) that llmlingua's "
                "LLMLingua-2 path ignores and mooscomp does not implement; remove them (for "
                "question-aware compression pass question=... and rank_method='longllmlingua')"
            )
        if rank_method not in ("llmlingua", "longllmlingua"):
            raise ValueError(f"rank_method={rank_method!r} is not supported: use 'llmlingua' "
                             "(default) or 'longllmlingua' (question-aware, needs question=)")
        for name in ("instruction", "question"):
            if not isinstance(args[name], str):
                raise TypeError(f"{name} must be a str, got {type(args[name]).__name__}")
        if rank_method == "longllmlingua" and not question.strip():
            raise ValueError("rank_method='longllmlingua' needs a question (as in llmlingua)")
        if reorder not in ("original", "sort") or (reorder == "sort" and rank_method != "longllmlingua"):
            raise ValueError(f"reorder_context={reorder!r}: 'original', or 'sort' (the most relevant context "
                             "first) with rank_method='longllmlingua' and a question")
        args.pop("instruction")  # not part of an LLMLingua-2 prompt, as in llmlingua
        args.pop("rank_method")
        args["question"] = question if rank_method == "longllmlingua" else None
        return self._compress(**args, context_order="relevance" if reorder == "sort" else None)

    def compress_prompt_llmlingua2(
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
        *,
        format: str = "raw",
    ) -> dict[str, Any]:
        """llmlingua's ``compress_prompt_llmlingua2`` (context filter off by default)."""
        args = dict(locals())
        del args["self"]
        return self._compress(question=None, **args)

    def structured_compress_prompt(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError(
            "structured_compress_prompt (<llmlingua> tags) is LLMLingua-1 tooling, not supported "
            "by mooscomp (llmlingua's LLMLingua-2 path ignores its per-segment rates too)"
        )

    def compress_json(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError("compress_json is LLMLingua-1 tooling, not supported by mooscomp")

    def recover(self, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError("recover is LLMLingua-1 tooling, not supported by mooscomp")

    # ------------------------------------------------------------------ implementation

    def _compress(
        self, *, context: Any, question: str | None, context_order: str | None = None, **a: Any
    ) -> dict[str, Any]:
        contexts = _contexts(context)
        comp = self.compressor
        fmt = a.pop("format")
        check_options(a, self.max_force_token)
        if not contexts:
            return _row([], 0, [])
        config = comp.config.replace(
            token_to_word=a["token_to_word"],
            force_reserve_digit=a["force_reserve_digit"],
            drop_consecutive=a["drop_consecutive"],
            use_context_level_filter=False,  # done here, with all of llmlingua's options
            chunk_end_chars="".join(dict.fromkeys(a["chunk_end_tokens"])),
            **({"context_order": context_order} if context_order else {}),  # reorder_context="sort"
        )
        force = tuple(a["force_tokens"])
        if fmt != "raw":
            from mooscomp.adapters._formatted import compress_formatted_prompt

            return compress_formatted_prompt(comp, contexts, fmt, question, config, force, a)
        origin_each = [int(comp.count(c)) for c in contexts]
        filtering = a["use_context_level_filter"] and len(contexts) > 1
        prepared = []
        if filtering or a["use_token_level_filter"]:  # one forward, whatever is selected after
            prepared = [comp.prepare(c, config) for c in contexts]
            comp.score(prepared, config, question=question)  # relevance states with a question
        kept = [True] * len(contexts)
        words: list[list[str]] = [[] for _ in contexts]
        if filtering:
            first = comp.select(prepared, config, Request(rate=1.0, force_tokens=force))
            words = [d.words.tolist() for d in first.details]
            probs = [float(d.keep_prob.mean()) if len(d.keep_prob) else 0.0 for d in first.details]
            level = context_level(a, len(contexts), sum(origin_each))
            kept = filter_contexts(probs, level, a["force_context_ids"])
        live = [c for c, k in zip(contexts, kept, strict=True) if k]
        live_tokens = sum(n for n, k in zip(origin_each, kept, strict=True) if k)
        labels: list[list[int]] = [[0] * len(w) for w in words]
        if a["use_token_level_filter"] and live:
            budget = _budget(a["rate"], a["target_token"], live_tokens)
            live_prep = [p for p, k in zip(prepared, kept, strict=True) if k]
            res = comp.select(live_prep, config, Request(force_tokens=force, question=question,
                                                         **budget))
            out_list = list(res.contexts)
            live_words = [d.words.tolist() for d in res.details]
            live_labels = [d.kept.astype(int).tolist() for d in res.details]
        else:
            out_list = live
            live_words = [_words(c) for c in live] if a["return_word_label"] else [[] for _ in live]
            live_labels = [[1] * len(w) for w in live_words]
        j = 0
        for i, k in enumerate(kept):
            if k:
                words[i], labels[i] = live_words[j], live_labels[j]
                j += 1
        out = _row(out_list, sum(origin_each), [int(comp.count(c)) for c in out_list])
        if a["return_word_label"]:
            out["fn_labeled_original_prompt"] = a["word_sep"].join(
                f"{w}{a['label_sep']}{lab}"
                for ws, ls in zip(words, labels, strict=True)
                for w, lab in zip(ws, ls, strict=True)
            )
        return out


def _model_dir(model_name: str | Path | None) -> Path | None:
    if model_name is None:
        return None
    if not isinstance(model_name, (str, Path)):
        raise TypeError(f"model_name must be a str path or None, got {type(model_name).__name__}")
    path = Path(model_name).expanduser()
    if path.is_dir():
        return path
    what = "a Hugging Face hub name" if "/" in str(model_name) and not path.is_absolute() else "not a directory"
    raise ValueError(f"model_name={str(model_name)!r} is {what}; {_HINT}")


def _device(device_map: str) -> str:
    if not isinstance(device_map, str):
        raise TypeError(f"device_map must be a str, got {type(device_map).__name__}")
    if device_map in _SPREAD_DEVICES:
        from mooscomp._util import resolve_device

        return str(resolve_device("auto"))
    return device_map


def _contexts(context: Any) -> list[str]:
    if isinstance(context, str):
        return [context]
    if not isinstance(context, (list, tuple)) or not all(isinstance(c, str) for c in context):
        raise TypeError("context must be a str or a list of str")
    return list(context)


def _budget(rate: float, target_token: float, live_tokens: int) -> dict[str, Any]:
    if target_token > 0:
        if target_token >= live_tokens:
            return {"rate": 1.0}
        return {"target_tokens": int(target_token)}
    return {"rate": float(rate)}


def _words(text: str) -> list[str]:
    from mooscomp.alignment import segment_words

    return segment_words(text).tolist()


def _row(out_list: list[str], origin: int, counts: list[int]) -> dict[str, Any]:
    """llmlingua 0.2.2's result dict (strings for ratio, rate and saving, as there)."""
    compressed = sum(counts)
    ratio = 1.0 if compressed == 0 else origin / compressed
    return {
        "compressed_prompt": "\n\n".join(out_list),
        "compressed_prompt_list": out_list,
        "origin_tokens": origin,
        "compressed_tokens": compressed,
        "ratio": f"{ratio:.1f}x",
        "rate": f"{1 / ratio * 100:.1f}%",
        "saving": f", Saving ${(origin - compressed) * 0.06 / 1000:.1f} in GPT-4.",
    }

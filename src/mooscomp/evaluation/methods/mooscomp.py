"""mooscomp itself: one compressor, several configurations, one scoring pass.

Names: ``mooscomp`` (the model's own config), ``mooscomp_no_outlier`` (alpha = 0, same global budget
and unit rules) and ``llmlingua2_style`` (a beta = 0 model, alpha = 0 and LLMLingua-2's own
selection: per-chunk percentile, no unit rules), i.e. what LLMLingua-2 does with such a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mooscomp.evaluation.methods.base import BuildContext
from mooscomp.evaluation.tasks import EvalItem


class MooscompMethod:
    """Compress with the public stages (``prepare`` -> ``score`` once -> ``select`` per rate and
    variant), so the encoder runs once per item for every rate and variant; an object without
    those stages is called through ``compress`` per rate and variant instead."""

    def __init__(
        self,
        compressor: Any,
        variants: Mapping[str, Any],
        *,
        use_question: bool = False,
        force_tokens: Sequence[str] = (),
    ) -> None:
        if not variants:
            raise ValueError("variants must name at least one configuration")
        self.compressor = compressor
        self.variants = dict(variants)
        self.names = tuple(self.variants)
        self.use_question = bool(use_question)
        self.force_tokens = tuple(force_tokens)

    def _staged(self) -> bool:
        return all(hasattr(self.compressor, a) for a in ("prepare", "score", "select"))

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        comp = self.compressor
        questions = [(it.question or None) if self.use_question else None for it in items]
        cfgs = {n: (v if v is not None else comp.config) for n, v in self.variants.items()}
        if self._staged():
            return self._staged_many(items, rates, questions, cfgs)
        out: dict[str, list[list[str]]] = {n: [[] for _ in rates] for n in self.names}
        for name, cfg in cfgs.items():
            for ri, r in enumerate(rates):
                out[name][ri] = [
                    comp.compress(list(it.contexts), rate=float(r), question=q, config=cfg,
                                  force_tokens=self.force_tokens).text
                    for it, q in zip(items, questions, strict=True)
                ]
        return out

    def _staged_many(
        self,
        items: Sequence[EvalItem],
        rates: Sequence[float],
        questions: list[str | None],
        cfgs: dict[str, Any],
    ) -> dict[str, list[list[str]]]:
        from mooscomp.config import Request

        comp = self.compressor
        base = next(iter(cfgs.values()))
        ctxs = [[comp.prepare(c, base) for c in it.contexts] for it in items]
        comp.score([c for cl in ctxs for c in cl], base)
        out: dict[str, list[list[str]]] = {n: [[] for _ in rates] for n in self.names}
        for name, cfg in cfgs.items():
            for ri, r in enumerate(rates):
                out[name][ri] = [
                    comp.select(cl, cfg, Request(rate=float(r), force_tokens=self.force_tokens,
                                                 question=q)).text
                    for cl, q in zip(ctxs, questions, strict=True)
                ]
        return out


def alpha_off(compressor: Any) -> Any:
    """The compressor's config with the outlier term off (alpha = 0)."""
    return compressor.config.replace(outlier_alpha=0.0)


def llmlingua2_style_config(compressor: Any) -> Any:
    return alpha_off(compressor).replace(budget="llmlingua2", units=())


def _load(ctx: BuildContext, path: str) -> Any:
    """One compressor per model folder, shared by the builders of one run."""
    key = f"compressor:{path}"
    if key not in ctx.cache:
        from mooscomp import Compressor

        ctx.cache[key] = Compressor.from_pretrained(
            None if path == "default" else path, device=ctx.options.compress_device
        )
    return ctx.cache[key]


def build_mooscomp(ctx: BuildContext) -> MooscompMethod | None:
    """``mooscomp`` and ``mooscomp_no_outlier`` from ``MethodOptions.mooscomp_model``."""
    path = ctx.options.mooscomp_model
    if not path:
        return None
    comp = _load(ctx, path)
    ctx.notes["mooscomp"] = {"model": path, "config": comp.config.to_dict()}
    return MooscompMethod(comp, {"mooscomp": comp.config, "mooscomp_no_outlier": alpha_off(comp)})


def build_llmlingua2_style(ctx: BuildContext) -> MooscompMethod | None:
    path = ctx.options.llmlingua2_style_model
    if not path:
        return None
    comp = _load(ctx, path)
    ctx.notes["llmlingua2_style"] = {
        "model": path, "outlier_alpha": 0.0, "budget": "llmlingua2", "units": [],
    }
    return MooscompMethod(comp, {"llmlingua2_style": llmlingua2_style_config(comp)})

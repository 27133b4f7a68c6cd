"""Behaviour freeze: ``CompressionResult.to_dict(include_scores=True)`` for 20 texts x 4 rates x
2 budgets x 2 backends on the seeded tiny model, compared byte for byte with golden files.
They pin ``format="raw"``: the word-by-word algorithm over the whole input (``auto``, the default,
keeps paragraph breaks and structure; tests/test_format_wiring.py covers it).

Refactors must keep these files unchanged. Regenerate them only for an intended behaviour change:
``MOOSCOMP_UPDATE_SNAPSHOTS=1 pytest tests/test_snapshots.py`` (then say why in the commit).

A golden file stores, per case, the sha256 of the canonical JSON of the whole ``to_dict`` and its
readable parts (text, counts, kept masks); the word scores, which do not depend on the budget or
the rate, are stored once per text. A failure prints a diff of the parts that changed.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from mooscomp.config import CompressionConfig

SNAP_DIR = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("MOOSCOMP_UPDATE_SNAPSHOTS") == "1"
RATES = (0.2, 0.33, 0.5, 0.8)
BUDGETS = ("global", "llmlingua2")

PROSE = (
    "The committee met on Tuesday to review the budget. After a long discussion, the members "
    "agreed that the new library would open in the spring, provided that the contractors "
    "finished the roof before the first heavy rains of the season."
)
NAMES = (
    "Dr. Amelia Hart-Wong (b. 1962) joined MIT in 1991; by 2004 she led 37 researchers and held "
    "U.S. patent 6,245,117. Her co-author, J. R. R. Okafor, measured 3.5 km of cable at $12.40/m."
)
LIST_A = "Paris is the capital of France. It has 2.1 million inhabitants."
LIST_B = "Berlin is the capital of Germany, with about 3.7 million people."
LIST_C = "Bananas are rich in potassium and are often eaten at breakfast."
LINES = "Agenda:\n- open the meeting\n- approve the minutes of 12 May\n- budget: 4,500 EUR\n\nNotes\nNone."
CODE_LIKE = "Call compress(text, rate=0.33) and read result.text; the e-mail is ops@example.org."
UNICODE = "Der Bürgermeister von München sagte: „Wir bauen 3 neue Brücken.“ — naïve café 日本語 😀."
QUESTION_CTX = (
    "Rollo was a Viking leader. He agreed to swear fealty to King Charles III of West Francia in "
    "911, and in exchange he received lands around the lower Seine, which later became Normandy."
)
REPEATS = "yes yes yes . . . no no no ! ! ! the the the end."

# (id, input, request kwargs, config overrides): the grid adds rate, budget and backend.
TEXTS: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = [
    ("prose", PROSE, {}, {}),
    ("names_numbers", NAMES, {}, {}),
    ("multi_context", [LIST_A, LIST_B, LIST_C], {}, {}),
    ("multi_context_filter", [LIST_A, LIST_B, LIST_C], {}, {"use_context_level_filter": True}),
    ("multi_filter_level", [LIST_C, LIST_A, PROSE, LIST_B], {},
     {"use_context_level_filter": True, "context_level_rate": 0.5}),
    ("newlines", LINES, {}, {}),
    ("newlines_forced", LINES, {"force_tokens": ["\n", ":"]}, {}),
    ("forced", PROSE, {"force_tokens": ["library", "roof", "rains"]}, {}),
    ("question", QUESTION_CTX, {"question": "Who did Rollo swear fealty to?"}, {}),
    ("question_heavy", [QUESTION_CTX, PROSE], {"question": "When did Rollo get the lands?"},
     {"question_weight": 2.0}),
    ("digits", NAMES, {}, {"force_reserve_digit": True}),
    ("code_like", CODE_LIKE, {}, {}),
    ("unicode", UNICODE, {}, {}),
    ("repeats_drop_consecutive", REPEATS, {"force_tokens": ["!", "."]}, {"drop_consecutive": True}),
    ("rarity", PROSE + " " + NAMES, {}, {"outlier_variant": "rarity"}),
    ("first_sigmoid", NAMES, {}, {"token_to_word": "first", "outlier_transform": "sigmoid",
                                  "outlier_alpha": 0.5}),
    ("no_units_max_pool", NAMES, {}, {"units": (), "unit_pool": "max"}),
    ("long_chunked", (PROSE + " ") * 3 + NAMES, {}, {"max_seq_len": 48}),
    ("target_tokens", PROSE + "\n\n" + NAMES, {"target": True}, {}),
    ("tiny", "Hi.", {}, {}),
    ("empty", ["", "   \n  "], {}, {}),
]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Thread count can change float summation order; pin it for reproducible digits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _cases(comp: Any) -> dict[str, Any]:
    """{"scores": {text_id: details' word scores}, "cases": {case_id: readable parts + sha}}."""
    scores: dict[str, Any] = {}
    cases: dict[str, Any] = {}
    for tid, inp, req, overrides in TEXTS:
        req = dict(req)
        as_target = req.pop("target", False)
        for budget in BUDGETS:
            cfg = CompressionConfig(budget=budget, **overrides)
            for rate in RATES:
                if as_target:
                    origin = comp.compress(inp, rate=1.0, config=cfg, format="raw").origin_tokens
                    kw = {"target_tokens": max(1, round(rate * origin))}
                else:
                    kw = {"rate": rate}
                d = comp.compress(inp, config=cfg, format="raw", **kw, **req).to_dict(include_scores=True)
                full = _canonical(d)
                details = d.pop("details")
                word_scores = [{k: c[k] for k in ("words", "keep_prob", "outlier_z", "score")}
                               for c in details]
                key = tid
                if key in scores and scores[key] != word_scores:
                    key = f"{tid}/{budget}/{rate}"  # scores differ (not expected): store them apart
                scores.setdefault(key, word_scores)
                cases[f"{tid}/{budget}/{rate}"] = {
                    **d,
                    "kept": ["".join("1" if k else "0" for k in c["kept"]) for c in details],
                    "scores": key,
                    "sha256": hashlib.sha256(full.encode()).hexdigest(),
                }
    return {"scores": scores, "cases": cases}


def _dump(snap: dict[str, Any]) -> str:
    """One line per entry, so that a changed case is a one-line diff."""
    lines = ["{"]
    for section in ("scores", "cases"):
        lines.append(f' "{section}": {{')
        items = list(snap[section].items())
        for i, (k, v) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            lines.append(f"  {json.dumps(k)}: {_canonical(v)}{comma}")
        lines.append(" }," if section == "scores" else " }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _check(name: str, comp: Any) -> None:
    path = SNAP_DIR / f"{name}.json"
    with _one_thread():
        got = _dump(_cases(comp))
    if UPDATE or not path.is_file():
        if not UPDATE:
            pytest.fail(f"{path} is missing; create it with MOOSCOMP_UPDATE_SNAPSHOTS=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
        return
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "golden", "now", lineterm="", n=0)
        shown = "\n".join(line[:400] for line in list(diff)[:60])
        pytest.fail(
            f"{name}: compression output changed against {path.name} (behaviour freeze). If the "
            f"change is intended, regenerate with MOOSCOMP_UPDATE_SNAPSHOTS=1.\n{shown}"
        )


def test_snapshot_torch(_tiny_compressor) -> None:
    assert _tiny_compressor.scorer is None
    _check("compress_torch", _tiny_compressor)


def test_snapshot_onnx(_tiny_compressor, tmp_path_factory) -> None:
    from mooscomp.onnx_runtime import OnnxOptions, onnx_compressor

    fast = onnx_compressor(_tiny_compressor, options=OnnxOptions(threads=1),
                           cache_dir=tmp_path_factory.mktemp("snap-onnx"))
    assert fast.backend == "onnx"
    _check("compress_onnx", fast)

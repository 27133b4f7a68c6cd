"""Hostile structured inputs for ``mooscomp.formats.compress_formatted`` (issue 18's bad inputs).

Seeded generators, one per category, like ``harness.py``; :func:`check_formatted` checks the
invariants, not only "did not crash":

* only malformed JSON with ``format="json"`` raises, and it raises ValueError naming JSON;
* ``compressed_tokens`` equals a recount of the output; ``target_missed`` is set exactly when the
  output is more than 2% (at least 1 token) off the target, and then a warning says why;
* JSON output parses with the same keys and nesting; markdown keeps its headings, its table row
  labels and its code blocks byte for byte.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from typing import Any

from fuzz.harness import BIDI, CJK, EMOJI, RTL_WORDS, WORDS, ZERO_WIDTH, Outcome

PROSE = ["the board approved the new budget after a long debate", "revenue grew in every region",
         "北京大学创建于1898年，是中国第一所国立大学。", "Der Vorstand beschloss 4,2 Millionen Dollar.",
         "שלום עולם זהו טקסט", "مرحبا بالعالم هذا نص", "東京タワーは1958年に完成した。"]
_FENCE_RE = re.compile(r"^```.*?^```\n?", re.M | re.S)


def _phrase(rng: random.Random, n: int) -> str:
    pool = WORDS + RTL_WORDS + CJK + PROSE
    return " ".join(rng.choice(pool) for _ in range(n))


def gen_unterminated_fence(rng):
    head = f"# {_phrase(rng, 2)}\n\n{_phrase(rng, rng.randint(3, 20))}\n\n"
    fence = rng.choice(["```", "~~~", "````python", "```\n```"[:3]])
    body = "\n".join(_phrase(rng, rng.randint(0, 8)) for _ in range(rng.randint(0, 5)))
    return {"text": head + fence + "\n" + body, "format": rng.choice(["auto", "markdown"])}


def gen_ragged_table(rng):
    cols = rng.randint(1, 5)
    lines = ["| " + " | ".join(_phrase(rng, 1) for _ in range(cols)) + " |",
             "|" + "|".join(rng.choice(["---", ":--", "--:", ":-:"]) for _ in range(cols)) + "|"]
    for _ in range(rng.randint(0, 8)):
        n = rng.randint(0, cols + 3)  # ragged: fewer or more cells than the header
        cells = [_phrase(rng, rng.randint(0, 6)) for _ in range(n)]
        lead, tail = rng.choice(["| ", "", "|"]), rng.choice([" |", "", "|", " \\|"])
        lines.append(lead + " | ".join(cells) + tail)
    return {"text": "\n".join(lines) + rng.choice(["", "\n", "\n\ntrailing prose here"]),
            "format": rng.choice(["auto", "markdown"])}


def gen_mixed_scripts(rng):
    parts = [rng.choice(PROSE + CJK + EMOJI + WORDS + RTL_WORDS) for _ in range(rng.randint(1, 40))]
    sep = rng.choice(["", " ", "\n", "\n\n"])
    return {"text": sep.join(parts), "format": rng.choice(["auto", "text", "markdown"])}


def gen_rtl_markdown(rng):
    lines = []
    for _ in range(rng.randint(1, 10)):
        marker = rng.choice(["# ", "- ", "1. ", "> ", "", "| "])
        body = " ".join(rng.choice(RTL_WORDS + BIDI + ZERO_WIDTH + ["123", "٣٤٥"])
                        for _ in range(rng.randint(0, 12)))
        lines.append(marker + body)
    return {"text": "\n".join(lines), "format": rng.choice(["auto", "markdown", "text"])}


def gen_malformed_json(rng):
    good = json.dumps({"a": [1, {"b": _phrase(rng, 5)}], "c": _phrase(rng, 8)})
    cut = rng.randint(1, len(good) - 1)
    bad = rng.choice([good[:cut], good[:-1] + ",}", good.replace(":", "", 1), "{'a': 1}",
                      good + "garbage", "[" * 5000])
    fmt = rng.choice(["json", "auto"])
    return {"text": bad, "format": fmt, "expect": "JSON" if fmt == "json" else None}


def gen_json_values(rng):
    def value(depth: int) -> Any:
        r = rng.random()
        if depth > 3 or r < 0.4:
            return rng.choice([rng.randint(-9, 10**9), rng.random(), True, None, _phrase(rng, rng.randint(0, 12)),
                               "\\n\"quoted\"\t", "\u202e" + _phrase(rng, 3)])
        if r < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {_phrase(rng, 1): value(depth + 1) for _ in range(rng.randint(0, 4))}

    doc = value(0)
    doc = doc if isinstance(doc, (list, dict)) else [doc]
    text = json.dumps(doc, indent=rng.choice([None, 1, 4]), ensure_ascii=rng.random() < 0.5)
    return {"text": text, "format": rng.choice(["auto", "json"])}


FORMAT_CATEGORIES: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "fmt_unterminated_fence": gen_unterminated_fence,
    "fmt_ragged_table": gen_ragged_table,
    "fmt_mixed_scripts": gen_mixed_scripts,
    "fmt_rtl_markdown": gen_rtl_markdown,
    "fmt_malformed_json": gen_malformed_json,
    "fmt_json_values": gen_json_values,
}


def make_format_case(category: str, seed: int) -> dict[str, Any]:
    rng = random.Random(f"{category}:{seed}")
    case = FORMAT_CATEGORIES[category](rng)
    case["rate"] = rng.choice([0.2, 0.33, 0.5, 0.8, 1.0])
    return case


def big_json(mb: float, *, seed: int = 0) -> str:
    """About ``mb`` megabytes of single-line JSON: a search tool's result list."""
    rng = random.Random(seed)
    items, size, i = [], 0, 0
    while size < mb * 1e6:
        it = {"id": i, "title": _phrase(rng, 2), "score": round(rng.random(), 4), "ok": i % 3 == 0,
              "snippet": _phrase(rng, rng.randint(5, 40))}
        s = json.dumps(it, ensure_ascii=False)
        items.append(s)
        size += len(s.encode("utf-8")) + 1
        i += 1
    return "[" + ",".join(items) + "]"


def _shape(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    return "" if isinstance(v, str) else v


def check_formatted(comp: Any, case: dict[str, Any]) -> Outcome:
    """Compress one case with ``compress_formatted`` and check every invariant."""
    from mooscomp.formats import compress_formatted

    text, fmt = case["text"], case["format"]
    t0 = time.perf_counter()
    try:
        res = compress_formatted(comp, text, format=fmt, rate=case["rate"])
    except ValueError as e:
        dt = time.perf_counter() - t0
        ok = bool(case.get("expect")) and case["expect"] in str(e)
        return Outcome(ok, dt, "" if ok else f"unexpected ValueError: {e}", produced=f"ValueError: {str(e)[:60]}")
    except Exception as e:  # noqa: BLE001 - the fuzzer records every crash
        return Outcome(False, time.perf_counter() - t0, f"crash {type(e).__name__}: {e}")
    dt = time.perf_counter() - t0
    problems = []
    if case.get("expect"):
        problems.append(f"expected an error about {case['expect']}, got a result")
    recount = comp.count(res.text) if res.text.strip() else 0
    if res.compressed_tokens != recount:
        problems.append(f"compressed_tokens {res.compressed_tokens} != recount {recount}")
    target = min(res.target_tokens, res.origin_tokens)
    off = abs(res.compressed_tokens - target) > max(0.02 * target, 1)
    if res.origin_tokens and off != res.target_missed:
        problems.append(f"target_missed={res.target_missed} but {res.compressed_tokens} vs {target:.1f}")
    if res.target_missed and not res.warnings:
        problems.append("target missed without a warning")
    if res.format == "json":
        try:
            if _shape(json.loads(res.text)) != _shape(json.loads(text)):
                problems.append("JSON keys/nesting changed")
        except ValueError:
            problems.append("JSON output does not parse")
    fenced = res.format == "markdown" and "unterminated" not in " ".join(res.warnings)
    if fenced and _FENCE_RE.findall(res.text) != _FENCE_RE.findall(text):
        problems.append("a code block changed")
    if case["rate"] == 1.0 and res.text != text:
        problems.append("rate 1 changed the text")
    desc = f"{res.format} {res.origin_tokens}->{res.compressed_tokens} tok" + (" missed" if res.target_missed else "")
    return Outcome(not problems, dt, "; ".join(problems), produced=desc)

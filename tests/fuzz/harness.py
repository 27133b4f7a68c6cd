"""Fuzz harness over ``Compressor.compress`` and ``mooscomp compress`` (shared by the short test
run and ``benchmarks/fuzz.py``).

Inputs come from seeded generators, one per hostile category; every input is checked against the
invariants of the public API instead of only "did not crash":

* valid input never raises; the output is the input's words, in order, separated by whitespace;
* forced tokens are kept; rate 1 returns the (surrogate-cleaned) input unchanged;
* ``origin_tokens`` / ``compressed_tokens`` equal a cl100k recount of the input / output;
* invalid arguments raise ValueError/TypeError naming the argument;
* the CLI exits 0 with the API's text on stdout, or 2 with one stderr line (invalid UTF-8), never
  1 and never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mooscomp.alignment import segment_words
from mooscomp.counting import cl100k_count

_SURROGATE = re.compile("[\ud800-\udfff]")
WORDS = ["the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "it", "by", "at", "from", "this", "be", "or", "an", "Paris", "Normandy", "1066", "3.5", "km", "e-mail", "U.S.", "don't", "$5", "50%", "New", "York", "café", "naïve", "Straße", "İstanbul"]
CONTROL = [chr(c) for c in range(0, 32)] + ["\x7f", "\x85", "\u2028", "\u2029"]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
        "\u200e", "\u200f", "\u061c"]
RTL_WORDS = ["שלום", "עולם", "مرحبا", "بالعالم", "سلام", "ܫܠܡܐ"]
CJK = ["我爱北京天安门。", "日本語のテキスト", "한국어 문장", "漢字かなカナ", "中文，标点！", "ｆｕｌｌｗｉｄｔｈ"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "❤️", "🤖", "\U0001f9d1\u200d\U0001f4bb"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["…", "—", "«", "»", "“", "”", "、", "。"]
REGEX_META = [".", "*", "+", "?", "(", ")", "[", "]", "{", "}", "|", "^", "$", "\\", ".*", "(?i)",
              "[a-z]+", "\\d", "a{1000000}", "(a+)+$", "\\"]
MARKUP = ['<div class="x">', "</div>", "```python", "def f(x): return x**2", "{\"k\": [1, 2]}",
          "| a | b |", "# Title", "- [ ] item", "<script>alert(1)</script>", "&amp;", "\\n"]


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def _sprinkle(rng: random.Random, base: list[str], extra: list[str], p: float) -> str:
    out = []
    for w in base:
        out.append(w)
        if rng.random() < p:
            out.append(rng.choice(extra))
        out.append(rng.choice([" ", " ", " ", "\n", ""]))
    return "".join(out)


def _random_unicode(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append(chr(rng.randint(32, 0x7E)))
        elif r < 0.8:
            out.append(chr(rng.randint(0xA0, 0xD7FF)))
        elif r < 0.95:
            out.append(chr(rng.randint(0xE000, 0x10FFFF)))
        else:
            out.append(rng.choice([" ", "\n", "\t"]))
    return "".join(out)


# ---------------------------------------------------------------------- categories
# Each generator returns a case: text (str or list of str), rate/target, force tokens, question,
# and for the CLI an optional raw ``stdin`` bytes payload.


def gen_control(rng):
    return {"text": _sprinkle(rng, _words(rng, rng.randint(1, 60)), CONTROL, 0.3)}


def gen_surrogates(rng):
    lone = [chr(rng.randint(0xD800, 0xDFFF)) for _ in range(4)]
    return {"text": _sprinkle(rng, _words(rng, rng.randint(1, 40)), lone, 0.3)}


def gen_zero_width_rtl(rng):
    base = [rng.choice(WORDS + RTL_WORDS) for _ in range(rng.randint(1, 50))]
    return {"text": _sprinkle(rng, base, ZERO_WIDTH + BIDI, 0.4)}


def gen_cjk_emoji(rng):
    base = [rng.choice(CJK + EMOJI + WORDS) for _ in range(rng.randint(1, 40))]
    return {"text": _sprinkle(rng, base, EMOJI, 0.2)}


def gen_punctuation_only(rng):
    n = rng.randint(1, 200)
    return {"text": "".join(rng.choice(PUNCT + [" ", "\n"]) for _ in range(n))}


def gen_whitespace_only(rng):
    return {"text": "".join(rng.choice([" ", "\n", "\t", "\r", "\u3000", "\xa0", "\u2003", "\x0b"])
                            for _ in range(rng.randint(0, 50)))}


def gen_long_word(rng):
    n = rng.choice([1000, 5000, 20000, 60000])
    unit = rng.choice(["a", "ab1", "x" * 7, "é", "\u0301", "語", "😀", "-", "_"])
    word = (unit * (n // len(unit) + 1))[:n]
    around = " ".join(_words(rng, rng.randint(0, 10)))
    return {"text": rng.choice([word, f"{around} {word} {around}", word + "." + word])}


def gen_random_unicode(rng):
    return {"text": _random_unicode(rng, rng.randint(0, 300))}


def gen_markup(rng):
    base = [rng.choice(MARKUP + WORDS) for _ in range(rng.randint(1, 60))]
    return {"text": " ".join(base)}


def gen_hostile_force(rng):
    text = _sprinkle(rng, _words(rng, rng.randint(5, 60)), REGEX_META + PUNCT, 0.3)
    kind = rng.choice(["meta", "dup", "newline", "ws", "huge", "long", "from_text", "too_many",
                       "empty", "not_str"])
    if kind == "meta":
        force = rng.sample(REGEX_META, rng.randint(1, 8))
    elif kind == "dup":
        force = [rng.choice(WORDS)] * rng.randint(2, 50)
    elif kind == "newline":
        force = ["\n"] + rng.sample(WORDS, 2)
    elif kind == "ws":
        force = [rng.choice([" ", "\t", "  ", "\n\n", " \n "])]
    elif kind == "huge":
        force = [f"tok{i}" for i in range(999)] + [rng.choice(WORDS)]
    elif kind == "long":
        force = ["x" * rng.choice([100, 10_000]), "(" * 500, rng.choice(WORDS)]
    elif kind == "from_text":
        ws = segment_words(text).tolist()
        force = rng.sample(ws, min(len(ws), rng.randint(1, 6))) if ws else ["a"]
    elif kind == "too_many":
        return {"text": text, "force": [f"t{i}" for i in range(1001)], "expect": "force_tokens"}
    elif kind == "empty":
        return {"text": text, "force": ["ok", ""], "expect": "force_tokens"}
    else:
        return {"text": text, "force": ["ok", 3], "expect": "force_tokens"}
    return {"text": text, "force": force}


def gen_contexts(rng):
    ctxs = [rng.choice(["", " ", "\n"]) if rng.random() < 0.2 else
            _sprinkle(rng, _words(rng, rng.randint(1, 30)), PUNCT + EMOJI, 0.2)
            for _ in range(rng.randint(1, 6))]
    return {"text": ctxs}


def gen_question(rng):
    q = rng.choice([_random_unicode(rng, 30), " ".join(_words(rng, 5)), "", "?" * 100,
                    "(.*)" * 20, "the the the"])
    return {"text": " ".join(_words(rng, rng.randint(5, 60))), "question": q}


def gen_cli_bytes(rng):
    """Raw stdin: valid UTF-8 of hostile text, or invalid UTF-8 (lone continuation bytes,
    overlong forms, encoded surrogates, truncated sequences, Latin-1, UTF-16 with BOM)."""
    text = gen_random_unicode(rng)["text"] or "x"
    good = text.encode("utf-8")
    bad = rng.choice([b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82",
                      b"\xf4\x90\x80\x80", "café".encode("latin-1"), "hi".encode("utf-16")])
    kind = rng.random()
    if kind < 0.5:
        data = good
    elif kind < 0.9:
        cut = rng.randint(0, len(good))
        data = good[:cut] + bad + good[cut:]
    else:
        data = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 200)))
    force = rng.choice([[], ["\n"], ["("], [" "], ["x", "x"]])
    return {"stdin": data, "force": force}


CATEGORIES: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "control_chars": gen_control,
    "lone_surrogates": gen_surrogates,
    "zero_width_rtl": gen_zero_width_rtl,
    "cjk_emoji": gen_cjk_emoji,
    "punctuation_only": gen_punctuation_only,
    "whitespace_only": gen_whitespace_only,
    "long_single_word": gen_long_word,
    "random_unicode": gen_random_unicode,
    "markup_code": gen_markup,
    "hostile_force_tokens": gen_hostile_force,
    "multi_context": gen_contexts,
    "question": gen_question,
    "cli_stdin_bytes": gen_cli_bytes,
}


def make_case(category: str, seed: int) -> dict[str, Any]:
    rng = random.Random(f"{category}:{seed}")
    case = CATEGORIES[category](rng)
    case.setdefault("force", [])
    case.setdefault("question", None)
    if rng.random() < 0.15:
        case["rate"] = 1.0
    elif rng.random() < 0.2:
        case["target"] = rng.randint(1, 300)
    else:
        case["rate"] = rng.choice([0.01, 0.1, 0.33, 0.5, 0.9])
    case["budget"] = rng.choice(["global", "global", "llmlingua2"])
    return case


# ---------------------------------------------------------------------- checks


@dataclass
class Outcome:
    ok: bool
    seconds: float
    message: str = ""
    produced: str = ""  # short description of what the input produced
    extra: dict[str, Any] = field(default_factory=dict)


def _clean(s: str) -> str:
    return _SURROGATE.sub("\ufffd", s)


def check_api(comp: Any, case: dict[str, Any]) -> Outcome:
    """Compress one case with the library and check every invariant."""
    from mooscomp.config import CompressionConfig

    text = case["text"]
    kwargs: dict[str, Any] = {"force_tokens": case["force"], "question": case["question"]}
    if "target" in case:
        kwargs["target_tokens"] = case["target"]
    else:
        kwargs["rate"] = case["rate"]
    cfg = CompressionConfig(budget=case.get("budget", "global"))
    t0 = time.perf_counter()
    try:
        res = comp.compress(text, config=cfg, **kwargs)
    except (ValueError, TypeError) as e:
        dt = time.perf_counter() - t0
        want = case.get("expect")
        if want and want in str(e):
            return Outcome(True, dt, produced=f"{type(e).__name__}: {str(e)[:80]}")
        return Outcome(False, dt, f"unexpected {type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 - the fuzzer records every crash
        return Outcome(False, time.perf_counter() - t0, f"crash {type(e).__name__}: {e}")
    dt = time.perf_counter() - t0
    if case.get("expect"):
        return Outcome(False, dt, f"expected an error about {case['expect']}, got a result")
    problems = []
    ctxs = [text] if isinstance(text, str) else list(text)
    clean = [_clean(c) for c in ctxs]
    origin = sum(cl100k_count(c) for c in clean if segment_words(c).tolist())
    if res.origin_tokens != origin:
        problems.append(f"origin_tokens {res.origin_tokens} != recount {origin}")
    kept_txt = [c for c, k in zip(res.contexts, res.context_kept, strict=True) if k]
    recount = sum(cl100k_count(c) for c in kept_txt)
    if res.compressed_tokens != recount:
        problems.append(f"compressed_tokens {res.compressed_tokens} != recount {recount}")
    for c, out, d in zip(clean, res.contexts, res.details, strict=True):
        words = d.words.tolist()
        if words != segment_words(c).tolist():
            problems.append("details words differ from the input's words")
        kept = [w for w, k in zip(words, d.kept.tolist(), strict=True) if k]
        if segment_words(out).tolist() != kept and out:
            problems.append("output is not the kept input words in order")
        if "".join(out.split()) != "".join(kept) and out:
            problems.append("output contains characters that are not kept words")
        if (d.forced & ~d.kept).any():
            problems.append("a forced word was dropped")
        if case.get("rate") == 1.0 and words and out != c:
            problems.append("rate 1 changed the text")
    single = isinstance(text, str)
    desc = (f"{res.origin_tokens}->{res.compressed_tokens} tok"
            + (f", kept {sum(int(d.kept.sum()) for d in res.details)}/"
               f"{sum(len(d.words) for d in res.details)} words" if single else ""))
    return Outcome(not problems, dt, "; ".join(problems), produced=desc)


@contextlib.contextmanager
def _cached_model(comp: Any):
    """Make the CLI's ``Compressor.from_pretrained`` return ``comp`` (no model load per input)."""
    from mooscomp.compressor import Compressor

    orig = Compressor.__dict__["from_pretrained"]
    Compressor.from_pretrained = classmethod(lambda cls, *a, **k: comp)  # type: ignore[method-assign]
    try:
        yield
    finally:
        Compressor.from_pretrained = orig  # type: ignore[method-assign]


def run_cli(argv: list[str], stdin: bytes) -> tuple[int, str, str]:
    """``mooscomp.cli.main(argv)`` with raw stdin bytes; returns (exit code, stdout, stderr)."""
    from mooscomp.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    sys.stdout, sys.stderr = out, err
    try:
        code = main(argv)
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def check_cli(comp: Any, case: dict[str, Any]) -> Outcome:
    data: bytes = case["stdin"]
    argv = ["compress", "-", "--model", "cached"]
    argv += ["--rate", str(case["rate"])] if "rate" in case else ["--target-tokens", str(case["target"])]
    argv += ["--budget", case.get("budget", "global")]
    for t in case["force"]:
        argv += ["--force-token", t]
    t0 = time.perf_counter()
    try:
        with _cached_model(comp):
            code, out, err = run_cli(argv, data)
    except BaseException as e:  # noqa: BLE001 - main must never raise
        return Outcome(False, time.perf_counter() - t0, f"main raised {type(e).__name__}: {e}")
    dt = time.perf_counter() - t0
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    problems = []
    if "Traceback" in err:
        problems.append("traceback on stderr")
    if text is None:
        if code != 2 or out or len(err.strip().splitlines()) != 1 or "UTF-8" not in err:
            problems.append(f"invalid UTF-8: exit {code}, stdout {out[:40]!r}, stderr {err[:120]!r}")
        produced = "exit 2: " + err.strip()[:70]
    else:
        kwargs = {"rate": case["rate"]} if "rate" in case else {"target_tokens": case["target"]}
        from mooscomp.config import CompressionConfig

        res = comp.compress(text, force_tokens=case["force"],
                            config=CompressionConfig(budget=case.get("budget", "global")), **kwargs)
        want = res.text + ("\n" if res.text else "")
        if code != 0 or out != want:
            problems.append(f"exit {code}, stdout differs from the API: {err.strip()[:200]}")
        produced = f"exit 0, {len(out)} chars"
    return Outcome(not problems, dt, "; ".join(problems), produced=produced)


def check_case(comp: Any, case: dict[str, Any]) -> Outcome:
    return check_cli(comp, case) if "stdin" in case else check_api(comp, case)


def big_text(n_tokens: int, *, seed: int = 0) -> str:
    """About ``n_tokens`` cl100k tokens of varied prose (sentences, numbers, newlines)."""
    rng = random.Random(seed)
    vocab = WORDS + ["alpha", "beta", "gamma", "delta", "Normans", "Charles", "treaty", "fief",
                     "1911", "42", "pennies", "duchy", "assimilation", "orthodoxy"]
    sents = []
    for _ in range(400):
        ws = [rng.choice(vocab) for _ in range(rng.randint(5, 30))]
        sents.append(" ".join(ws).capitalize() + rng.choice([". ", ".\n", "? ", "! "]))
    unit = "".join(sents)
    per = cl100k_count(unit)
    return unit * max(1, round(n_tokens / per))

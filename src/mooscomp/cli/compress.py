"""``mooscomp compress``: compress a file or stdin."""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from mooscomp.config import CALL_OPTIONS, UNIT_RULE_NAMES

_DIM, _RESET = "\x1b[2;9m", "\x1b[0m"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[ntr\\])")
logger = logging.getLogger("mooscomp.cli")
_FORMATS = ("auto", "raw", "text", "markdown", "json", "code")  # mooscomp.format_route.FORMATS


def _float_arg(low: float, high: float, *, low_open: bool) -> Any:
    """An argparse type: a finite float in (low, high] or [low, high], checked before anything loads."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(value: str) -> float:
        try:
            v = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not (math.isfinite(v) and (low < v if low_open else low <= v) and v <= high):
            raise argparse.ArgumentTypeError(f"must be in {shown}, got {value}")
        return v

    return parse


rate_arg = _float_arg(0.0, 1.0, low_open=True)  # --rate
alpha_arg = _float_arg(0.0, 100.0, low_open=False)  # --outlier-alpha, --focus
positive_float_arg = _float_arg(0.0, 1000.0, low_open=True)  # --focus-spread


def positive_int_arg(value: str) -> int:
    """``--target-tokens``: an int > 0, checked before anything loads."""
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return v


def count_arg(value: str) -> int:
    """An int in [0, 1000] (``--focus-per-paragraph``)."""
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if not 0 <= v <= 1000:
        raise argparse.ArgumentTypeError(f"must be in [0, 1000], got {value}")
    return v


def units_arg(value: str) -> tuple[str, ...]:
    rules = tuple(r.strip() for r in value.split(",") if r.strip())
    bad = [r for r in rules if r not in UNIT_RULE_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown unit rules {bad}; known: {','.join(UNIT_RULE_NAMES)}")
    return rules


def unescape(value: str) -> str:
    """``--force-token '\\n'`` means a line break: \\n \\t \\r \\\\ \\xNN \\uNNNN are decoded.

    An empty token is refused here, before anything loads.
    """
    if not value:
        raise argparse.ArgumentTypeError("must not be empty")

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] in "xu":
            return chr(int(code[1:], 16))
        return _ESCAPES[code]

    return _ESCAPE_RE.sub(one, value)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compress", help="compress a text file or stdin")
    p.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rate", type=rate_arg, help="compressed/original token ratio in (0, 1]")
    g.add_argument("--target-tokens", type=positive_int_arg, help="wanted compressed token count (> 0)")
    p.add_argument("--force-token", action="append", default=[], metavar="T", type=unescape,
                   help="always keep T (repeatable; escapes such as \\n and \\t are decoded)")
    p.add_argument("--question", help="question the prompt will answer: question-aware selection "
                   "(relevant sentences kept whole or lightly compressed); blank = none")
    p.add_argument("--order", choices=("original", "relevance"), dest="context_order",
                   help="with --question: contexts in their original order (default) or the most "
                   "relevant first (reader F1 +0.02 at 4x, reports/readable_question.json)")
    p.add_argument("--min-contexts", type=count_arg, metavar="N",
                   help="with --question: keep the best sentence of each of the N most relevant contexts first")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        default="auto",
        help="forward runtime: auto (onnxruntime int8 on a CPU when installed, else torch); "
        "onnx: the fp32 reference (torch's kept words)",
    )
    p.add_argument("--budget", choices=("global", "llmlingua2"), help="selection rule")
    p.add_argument("--outlier-alpha", type=alpha_arg, help="weight of the outlier score (0 = off)")
    p.add_argument("--outlier-variant", choices=("hidden", "rarity"))
    p.add_argument("--keep-digits", action="store_true", help="always keep words with digits")
    p.add_argument("--focus", type=alpha_arg, metavar="W",
                   help="without --question: move the budget into the best sentences (fewer, less "
                   "compressed: easier for a reader; 0 = off; the shipped model's default is 1, best "
                   "by reader F1, see reports/readable_focus.json)")
    p.add_argument("--focus-spread", type=positive_float_arg, metavar="S",
                   help="the focus bonus reaches 0 after the best sentences fill S budgets (shipped model: 1.5)")
    p.add_argument("--focus-per-paragraph", type=count_arg, metavar="N",
                   help="with --focus: the N best sentences of every paragraph go first (a lone fact "
                   "in its own paragraph keeps its place; shipped model: 0)")
    p.add_argument("--focus-first", type=count_arg, metavar="N",
                   help="with --focus: the first N sentences of every paragraph go first (an "
                   "encyclopedic paragraph's opening sentence names its subject; shipped model: 1)")
    p.add_argument("--units", type=units_arg, metavar="R,R",
                   help=f"unit rules, comma-separated, from {','.join(UNIT_RULE_NAMES)}")
    p.add_argument(
        "--format", choices=_FORMATS, default=None,
        help="input format: auto (default: detect; plain prose compresses as raw), raw (word by "
        "word over the whole input, no structure kept), text (paragraph breaks kept), markdown, "
        "json (output parses, same keys), code (kept verbatim)",
    )
    p.add_argument("--code-blocks", choices=("keep", "drop"),
                   help="markdown code blocks: kept verbatim (default) or dropped whole")
    p.add_argument("--code", choices=("verbatim", "comments"),
                   help="code: kept verbatim (default), or only its comments/docstrings compressed")
    p.add_argument("--over-budget", choices=("warn", "error"),
                   help="when the kept structure alone exceeds the target: warn (default) or fail")
    p.add_argument("--json-item-rate", type=float, metavar="R",
                   help="JSON lists of objects keep this share (0, 1] of their items, the "
                   "lowest-value ones dropped whole (default: every item kept)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the result as JSON")
    out.add_argument("--show", action="store_true", help="print the original, dropped words dimmed")
    p.add_argument("--scores", action="store_true", help="with --json: per-word scores too")
    p.add_argument("--stats", action="store_true", help="print token counts and rate on stderr")
    p.set_defaults(run=run, _check=check_args)


def check_args(args: argparse.Namespace) -> str | None:
    """A usage error found after parsing (None = fine); checked before anything loads."""
    if args.scores and not args.json:
        return "--scores only works with --json (per-word scores are part of the JSON output)"
    given = [o for o, v in (("--code-blocks", args.code_blocks), ("--code", args.code),
                            ("--over-budget", args.over_budget),
                            ("--json-item-rate", args.json_item_rate)) if v is not None]
    if given and args.format == "raw":
        return f"{given[0]} applies to structured formats, not to --format raw"
    if args.json_item_rate is not None and not 0.0 < args.json_item_rate <= 1.0:
        return f"--json-item-rate must be in (0, 1], got {args.json_item_rate}"
    return None


def format_of(args: argparse.Namespace) -> str:
    """--format, or its default, auto (every format has per-word details: --show, --scores)."""
    return args.format or "auto"


def format_options(args: argparse.Namespace) -> Any:
    """FormatOptions from --code-blocks/--code/--over-budget (None: the defaults)."""
    given = {k: getattr(args, k) for k in ("code_blocks", "code", "over_budget", "json_item_rate")
             if getattr(args, k) is not None}
    if not given:
        return None
    from mooscomp.formats import FormatOptions

    return FormatOptions(**given)


def read_input(file: str) -> str:
    """Read UTF-8 text from a path or stdin; invalid UTF-8 is a user error."""
    from mooscomp.cli import UserError

    if file == "-":
        if sys.stdin.isatty():
            sys.stderr.write("mooscomp compress: reading the text from the terminal; end it with "
                             "Ctrl-D (or give a file: mooscomp compress FILE --rate 0.33)\n")
        data = sys.stdin.buffer.read()
        where = "stdin"
    else:
        path = Path(file)
        if not path.exists():
            raise UserError(f"no such file: {file}")
        if path.is_dir():
            raise UserError(f"{file} is a directory, not a text file")
        data = path.read_bytes()
        where = file
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{where} is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None


def run(args: argparse.Namespace) -> int:
    from mooscomp.compressor import Compressor
    from mooscomp.result import TargetMissedWarning

    text = read_input(args.file)
    if not text.strip():
        sys.stderr.write(f"mooscomp compress: warning: {_name(args.file)} is empty: nothing to "
                         "compress\n")
    t0 = time.perf_counter()
    logger.info("loading %s (backend %s, device %s)", args.model or "the shipped model",
                args.backend, args.device)
    try:
        comp = Compressor.from_pretrained(args.model, device=args.device, backend=args.backend)
    except ValueError as e:  # a bad model directory (ModelFormatError), a backend this machine lacks
        from mooscomp.cli import UserError

        raise UserError(str(e)) from None
    logger.info("loaded in %.1f s (runtime: %s)", time.perf_counter() - t0, comp.backend)
    changes: dict[str, Any] = {}
    if args.budget:
        changes["budget"] = args.budget
    if args.outlier_alpha is not None:
        changes["outlier_alpha"] = args.outlier_alpha
    if args.outlier_variant:
        changes["outlier_variant"] = args.outlier_variant
    if args.keep_digits:
        changes["force_reserve_digit"] = True
    for name in (*CALL_OPTIONS, "units"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    config = comp.config.replace(**changes) if changes else None
    t0 = time.perf_counter()
    logger.info("compressing %d characters", len(text))
    with warnings.catch_warnings():  # a missed target is reported below, in one line
        warnings.simplefilter("ignore", TargetMissedWarning)
        res = comp.compress(
            text,
            rate=args.rate,
            target_tokens=args.target_tokens,
            force_tokens=args.force_token,
            question=args.question,
            config=config,
            format=format_of(args),
            format_options=format_options(args),
        )
    logger.info("compressed %d -> %d tokens in %.2f s (format %s)", res.origin_tokens,
                res.compressed_tokens, time.perf_counter() - t0, res.format)
    for w in res.warnings:  # target missed, unterminated code fence, ...
        sys.stderr.write(f"mooscomp compress: warning: {' '.join(w.split())}\n")
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict(include_scores=args.scores), ensure_ascii=False))
        sys.stdout.write("\n")
    elif args.show:
        sys.stdout.write(render_show(res, color=sys.stdout.isatty()) + "\n")
    else:
        sys.stdout.write(res.text + ("\n" if res.text else ""))
    if args.stats:
        sys.stderr.write(
            f"{res.origin_tokens} -> {res.compressed_tokens} tokens "
            f"(rate {res.rate:.3f}, {res.ratio:.2f}x)\n"
        )
    return 0


def _name(file: str) -> str:
    return "stdin" if file == "-" else file


def render_show(res: Any, *, color: bool) -> str:
    """The original text with dropped words dimmed (TTY) or wrapped in ~~ ~~ (plain)."""
    parts: list[str] = []
    for ctx in res.details:
        text, st, ed = ctx.words.text, ctx.words.starts.tolist(), ctx.words.ends.tolist()
        out, pos = [], 0
        for s, e, k in zip(st, ed, ctx.kept.tolist(), strict=True):
            out.append(text[pos:s])
            w = text[s:e]
            out.append(w if k else (f"{_DIM}{w}{_RESET}" if color else f"~~{w}~~"))
            pos = e
        out.append(text[pos:])
        parts.append("".join(out))
    return "\n\n".join(parts)

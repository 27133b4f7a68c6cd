"""Command line: ``mooscomp compress | label | train | bench | serve | compress-dataset``.

The CLI is the only place that prints or configures logging. User errors print one line on stderr
and exit with 2; unexpected errors print a short message and a hint and exit with 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

# Subcommands implemented in their own modules: each has add_parser(subparsers) and run(args).
_SUBCOMMAND_MODULES = (
    "mooscomp.cli.compress",
    "mooscomp.cli.label",
    "mooscomp.cli.train",
    "mooscomp.cli.bench",
    "mooscomp.cli.serve",
    "mooscomp.cli.dataset",
)

EXIT_USER = 2
EXIT_INTERNAL = 1


class UserError(Exception):
    """A problem with the user's input or arguments (exit code 2, one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USER)


def build_parser() -> argparse.ArgumentParser:
    from mooscomp import __version__

    parser = _Parser(prog="mooscomp", description="MOOSComp prompt compression")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"mooscomp {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in _SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            # A subcommand whose module or optional dependency is absent is simply not offered.
            logging.getLogger(__name__).debug("subcommand %s unavailable: %s", name, e)
            continue
        mod.add_parser(sub)
    for p in sub.choices.values():  # -v also after the subcommand ("mooscomp compress -v ...")
        if not {"-v", "--verbose"} & set(p._option_string_actions):
            p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                           help="log progress to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USER
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USER
    check = getattr(args, "_check", None)  # a subcommand's checks of option combinations
    problem = check(args) if check is not None else None
    if problem:
        sys.stderr.write(f"mooscomp {args.command}: error: {problem}\n")
        return EXIT_USER
    configure_logging(verbose=args.verbose)
    try:
        return int(args.run(args) or 0)
    except (UserError, ValueError, TypeError, FileNotFoundError, IsADirectoryError) as e:
        sys.stderr.write(f"mooscomp {args.command}: error: {_one_line(e)}\n")
        return EXIT_USER
    except KeyboardInterrupt:
        sys.stderr.write("mooscomp: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - last-resort handler of the CLI
        sys.stderr.write(
            f"mooscomp {args.command}: internal error: {type(e).__name__}: {_one_line(e)}\n"
            "hint: rerun with -v for details, and report it with the input that caused it\n"
        )
        if args.verbose:
            raise
        return EXIT_INTERNAL


def _one_line(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    return " ".join(msg.split())[:500]


def configure_logging(*, verbose: bool) -> None:
    """Only the CLI configures logging: warnings always; mooscomp's own progress with ``-v``.

    Other libraries stay at WARNING even with ``-v`` (onnxruntime's graph optimiser alone logs
    ~15 ``INFO fusion_base`` lines per export). The one-time ONNX export is announced without
    ``-v`` too: it takes seconds and would otherwise look like a hang.
    """
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s" if verbose else "mooscomp: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler._mooscomp_cli = True  # type: ignore[attr-defined]  # replaced by the next main()
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_mooscomp_cli", False)]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("mooscomp").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("mooscomp.exporters.onnx").setLevel(logging.INFO)
    _quiet_transformers()


def _quiet_transformers() -> None:
    # also for worker processes (dataset engines, pipeline), which start with a fresh interpreter
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    transformers = sys.modules.get("transformers")
    if transformers is None:  # not imported (the warm ONNX path never does): the env suffices
        return
    try:
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetics only
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

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
    parser = _Parser(prog="mooscomp", description="MOOSComp prompt compression")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in _SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            # A subcommand whose module or optional dependency is absent is simply not offered.
            logging.getLogger(__name__).debug("subcommand %s unavailable: %s", name, e)
            continue
        mod.add_parser(sub)
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
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        _quiet_transformers()
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


def _quiet_transformers() -> None:
    # also for worker processes (dataset engines, pipeline), which start with a fresh interpreter
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetics only
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

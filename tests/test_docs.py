"""The README's and docs/'s code blocks run as written, and what they point to exists.

Every fenced ``python`` and ``bash`` block of ``README.md`` and ``docs/*.md`` is a test. Python
blocks run in one namespace per block with the placeholder names the prose leaves to the reader
(``text``, ``prompt``, ...) bound to sample texts; ``Compressor.from_pretrained`` is memoised so
the shipped model loads once per set of arguments. Bash blocks run from the repository root.
A block that cannot run here (a server, a cluster, a GPU, a framework object the reader brings) is
listed in :data:`SKIP` with the reason; a new block runs unless it is listed there.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"python", "bash", "sh"}

# (file, a string that occurs in the block) -> why it is not run here
SKIP: dict[tuple[str, str], str] = {
    ("README.md", "bash scripts/run-example.sh"): "sets up .venv itself (CI runs scripts/test.sh)",
    ("README.md", "bash scripts/test.sh"): "runs this test suite",
    ("service.md", "mooscomp serve --host"): "starts a long-running server (tests/test_server.py)",
    ("service.md", "curl -s localhost"): "needs a running server; test_curl_example_output "
    "checks its output against the app",
    ("service.md", "ContextualCompressionRetriever"): "needs the reader's retriever; "
    "tests/test_adapters.py runs this block",
    ("service.md", "MoosCompNodePostprocessor"): "needs the reader's LlamaIndex index and LLM",
    ("scale-out.md", "compress-dataset docs.jsonl"): "needs the reader's dataset, Ray or a GPU "
    "(tests/test_batch.py runs the engines)",
}
# blocks that run, but too long for the default suite (pytest -m slow)
SLOW: dict[tuple[str, str], str] = {
    ("service.md", "OnnxOptions(quantize=True)"): "exports and quantises an ONNX graph",
}

SAMPLE = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
    "a region in France. They were descended from Norse raiders and pirates from Denmark, Iceland "
    "and Norway who, under their leader Rollo, agreed to swear fealty to King Charles III of West "
    "Francia. In 1066, William the Conqueror paid 3.5 million pennies."
)
MARKDOWN = (
    "# Normans\n\nThe Normans gave their name to Normandy, a region in northern France.\n\n"
    "| leader | year |\n|---|---|\n| Rollo | 911 |\n| William | 1066 |\n\n"
    "```python\nprint('kept whole')\n```\n"
)
SOURCE = (
    "def total(xs):\n    # add every number of the list, one after the other, and return it\n"
    "    return sum(xs)\n\n\nclass Box:\n    '''A box that holds one value for later use.'''\n"
    "    def __init__(self, v):\n        self.v = v\n"
)
# names the docs use for "your text"
PLACEHOLDERS = {
    "text": SAMPLE,
    "long_text": SAMPLE,
    "prompt": SAMPLE,
    "context": SAMPLE,
    "md": MARKDOWN,
    "source": SOURCE,
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # line of the opening fence
    lang: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Fenced blocks of a Markdown file (``` or ~~~ fences, language from the info string)."""
    blocks, lang, start, buf, fence = [], "", 0, [], ""
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not fence and stripped.startswith(("```", "~~~")):
            fence, lang, start, buf = stripped[:3], stripped[3:].strip().lower(), i, []
        elif fence and stripped.startswith(fence):
            blocks.append(Block(path, start, lang, "\n".join(buf) + "\n"))
            fence = ""
        elif fence:
            buf.append(line)
    return blocks


def _marker(table: dict[tuple[str, str], str], block: Block) -> str | None:
    for (name, needle), reason in table.items():
        if block.path.name == name and needle in block.code:
            return reason
    return None


def _params() -> list[object]:
    out = []
    for path in DOC_FILES:
        for b in code_blocks(path):
            if b.lang not in RUN_LANGS:
                continue
            marks = []
            if (reason := _marker(SKIP, b)) is not None:
                marks.append(pytest.mark.skip(reason=reason))
            elif _marker(SLOW, b) is not None:
                marks.append(pytest.mark.slow)
            out.append(pytest.param(b, id=b.id, marks=marks))
    return out


@pytest.fixture(scope="module")
def memo_from_pretrained():
    """``Compressor.from_pretrained`` loading each model once for the whole module."""
    from mooscomp.compressor import Compressor

    original = Compressor.__dict__["from_pretrained"]
    cached = functools.lru_cache(maxsize=None)(original.__func__)
    Compressor.from_pretrained = classmethod(lambda cls, *a, **k: cached(cls, *a, **k))
    yield
    Compressor.from_pretrained = original


@pytest.mark.parametrize("block", _params())
def test_code_block_runs(block: Block, memo_from_pretrained, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(ROOT)
    if block.lang == "python":
        namespace = {"__name__": "__docs__", **PLACEHOLDERS}
        exec(compile(block.code, block.id, "exec"), namespace)  # noqa: S102 - our own docs
        return
    if ".venv/bin/" in block.code and not (ROOT / ".venv" / "bin" / "mooscomp").exists():
        pytest.skip("the block uses .venv/bin/mooscomp; run scripts/setup.sh first")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip(), f"{block.id} printed nothing"


def test_skip_lists_match_blocks() -> None:
    """Every SKIP/SLOW entry still names exactly one block (no stale entries)."""
    blocks = [b for p in DOC_FILES for b in code_blocks(p)]
    for table in (SKIP, SLOW):
        for name, needle in table:
            hits = [b.id for b in blocks if b.path.name == name and needle in b.code]
            assert len(hits) == 1, f"{(name, needle)} matches {hits}"


LINK = re.compile(r"\]\(([^)\s]+)\)")
REPO_PATH = re.compile(
    r"`((?:reports|benchmarks|scripts|docs|tests|examples|models|src)/[A-Za-z0-9_./-]+)`"
)
MD_NAME = re.compile(r"\b([A-Za-z0-9_-]+\.md)\b")
FENCED = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_references_exist(path: Path) -> None:
    """Links, backticked repository paths and named .md files point to files in the repository."""
    text = path.read_text(encoding="utf-8")
    prose = INLINE_CODE.sub("", FENCED.sub("", text))
    missing = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            missing.append(target)
    for ref in REPO_PATH.findall(text):
        ref = ref.rstrip(".")
        if "*" not in ref and not (ROOT / ref).exists():
            missing.append(ref)
    md_files = {p.name for p in ROOT.glob("*.md")} | {p.name for p in ROOT.glob("*/*.md")}
    missing += [n for n in MD_NAME.findall(text) if n not in md_files]
    assert not missing, f"{path.name} points to files not in the repository: {missing}"


DOTTED = re.compile(r"`[^`\n]*?\b(mooscomp(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _resolve(dotted: str) -> bool:
    """True when ``dotted`` is an importable module or an attribute of one; third-party imports
    a module needs (an adapter's framework) that are missing count as resolved."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as e:
            if e.name and not e.name.startswith("mooscomp"):
                return True
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_named_python_objects_exist(path: Path) -> None:
    """Every ``mooscomp.x.y`` the docs name in code spans is importable (no stale module paths)."""
    names = sorted(set(DOTTED.findall(path.read_text(encoding="utf-8"))))
    missing = [n.rstrip(".") for n in names if not _resolve(n.rstrip("."))]
    assert not missing, f"{path.name} names objects that do not exist: {missing}"
def _curl_block() -> Block:
    (block,) = [b for b in code_blocks(ROOT / "docs" / "service.md") if "curl -s" in b.code]
    return block


def test_curl_example_output(memo_from_pretrained) -> None:
    """docs/service.md's curl example shows what the service answers with the shipped model."""
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from mooscomp import Compressor
    from mooscomp.server import create_app

    code = _curl_block().code
    body = json.loads(re.search(r"-d '(\{.*?\})'", code, re.S).group(1))
    shown = "\n".join(ln.lstrip("# ") for ln in code.splitlines() if ln.startswith("#"))
    pairs = re.findall(r'"(\w+)": ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)', shown)
    assert pairs, "the curl example shows no output"
    with TestClient(create_app(Compressor.from_pretrained())) as client:
        got = client.post("/v1/compress", json=body).json()
    for key, value in pairs:
        want = json.loads(value)
        if isinstance(want, float):
            assert got[key] == pytest.approx(want, abs=5e-3), key
        else:
            assert got[key] == want, key

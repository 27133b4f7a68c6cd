"""Plain text out of documentation formats (HTML, POD, man pages, dictd) and length-bounded pieces.

Only the standard library is used (no lxml): the HTML extractor keeps the main text of Sphinx /
javadoc-free documentation pages, drops navigation, sidebars, scripts and header links, reflows
hard-wrapped paragraphs and keeps ``<pre>`` blocks verbatim (code is realistic compressor input).
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

_BLOCK = {
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
    "table", "tr", "section", "article", "blockquote", "br", "hr", "main", "figure", "caption",
}  # fmt: skip
_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}
_SKIP_TAGS = {"script", "style", "nav", "header", "footer", "head", "noscript", "svg", "form", "button"}
_SKIP_CLASS = {
    "sphinxsidebar", "related", "headerlink", "footer", "navigation", "sidebar", "toctree-wrapper",
    "breadcrumbs", "wy-breadcrumbs", "wy-nav-side", "wy-nav-top", "wy-side-scroll",
    "rst-footer-buttons", "rst-versions", "navheader", "navfooter", "menu", "toc", "search",
}  # fmt: skip


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, starts a skipped subtree)
        self.skip = 0
        self.pre = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in ("br", "hr") and not self.skip:
                self.parts.append("\n" if self.pre else "\n\n")
            return
        cls = {c for k, v in attrs if k in ("class", "role", "id") for c in (v or "").split()}
        skipping = tag in _SKIP_TAGS or bool(cls & _SKIP_CLASS)
        self.stack.append((tag, skipping))
        if skipping:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in _BLOCK and not self.skip:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not any(t == tag for t, _ in self.stack):
            return
        while self.stack:
            t, skipping = self.stack.pop()
            if skipping:
                self.skip -= 1
            if t == "pre":
                self.pre -= 1
            if t == tag:
                break
        if tag in _BLOCK and not self.skip:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            self.parts.append(data.replace("\n", "\x00"))  # protected newline
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_text(html: str) -> str:
    """Main text of an HTML page, paragraphs separated by blank lines, <pre> lines kept."""
    p = _Extractor()
    try:
        p.feed(html)
        p.close()
    except Exception:  # noqa: BLE001 - malformed HTML: keep what was parsed
        pass
    raw = "".join(p.parts)
    paras = []
    for block in re.split(r"\n\s*\n", raw):
        block = block.strip(" \t\n")
        if not block:
            continue
        if "\x00" in block:
            block = "\n".join(ln.rstrip() for ln in block.split("\x00")).strip("\n")
        else:
            block = re.sub(r"\s+", " ", block).strip()
        if block and block not in ("¶", "#"):
            paras.append(block)
    return "\n\n".join(paras)


_POD_CODE = re.compile(r"[BICFLSEXZ]<(?:<+\s)?([^<>]*?)(?:\s>+)?>")
_POD_ESC = {"gt": ">", "lt": "<", "verbar": "|", "sol": "/", "quot": '"', "amp": "&"}


def pod_text(pod: str) -> str:
    """Readable text of a Perl POD file: directives dropped (headings kept), formatting codes removed."""
    out: list[str] = []
    in_pod_block = False
    for block in re.split(r"\n\s*\n", pod):
        b = block.strip("\n")
        if not b.strip():
            continue
        if b.startswith("="):
            cmd, _, rest = b.partition(" ")
            if cmd in ("=begin", "=for"):
                in_pod_block = cmd == "=begin"
                continue
            if cmd == "=end":
                in_pod_block = False
                continue
            if cmd.startswith("=head") or cmd == "=item":
                b = rest.strip()
            else:
                continue
        if in_pod_block or not b:
            continue
        b = re.sub(r"X<[^<>]*>", "", b)
        b = re.sub(r"E<(\w+)>", lambda m: _POD_ESC.get(m.group(1), ""), b)
        for _ in range(4):  # nested codes
            b = _POD_CODE.sub(lambda m: m.group(1).split("|")[0], b)
        if b[:1] in (" ", "\t"):
            out.append(b.rstrip())  # verbatim (code) paragraph
        else:
            out.append(re.sub(r"\s+", " ", b).strip())
    return "\n\n".join(x for x in out if x.strip())


def man_text(path: Path) -> str | None:
    """A man page rendered by groff as plain UTF-8 text, or None for ``.so`` stubs / failures."""
    import gzip

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if raw.lstrip().startswith(b".so "):
        return None
    try:
        r = subprocess.run(
            ["groff", "-man", "-Tutf8", "-rHY=0", "-P-cbou"], input=raw, capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    text = r.stdout.decode("utf-8", "replace")
    # reflow indented paragraphs; drop the page header/footer lines
    paras = reflow_paragraphs(text.splitlines()[1:-1])
    return "\n\n".join(re.sub(r" {2,}", " ", p) for p in paras)


def reflow_paragraphs(lines: list[str]) -> list[str]:
    """Hard-wrapped lines -> paragraphs (blank lines separate them; each line is stripped)."""
    paras: list[str] = []
    cur: list[str] = []
    for ln in lines:
        if ln.strip():
            cur.append(ln.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return paras


def dictd_entries(text: str) -> list[tuple[str, str]]:
    """(headword, body) of a dictd source: headword at column 0, indented body lines."""
    entries: list[tuple[str, str]] = []
    head: str | None = None
    body: list[str] = []
    for ln in text.splitlines():
        if ln and not ln[0].isspace():
            if head is not None and not head.startswith("00-"):
                entries.append((head, "\n".join(body)))
            head, body = ln.strip(), []
        else:
            body.append(ln)
    if head is not None and not head.startswith("00-"):
        entries.append((head, "\n".join(body)))
    out = []
    for h, b in entries:
        paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", b)]
        paras = [re.sub(r"[{}]", "", p) for p in paras if p]
        if paras:
            out.append((h, "\n\n".join(paras)))
    return out


def split_pieces(text: str, *, max_words: int = 1500, sep: str = "\n\n") -> list[str]:
    """Pieces of at most ~``max_words`` whitespace words, cut at paragraph (``sep``) boundaries.

    A single paragraph longer than ``max_words`` is cut at line, then sentence, then word boundaries.
    """
    paras = [p for p in text.split(sep) if p.strip()]
    units: list[str] = []
    for p in paras:
        if len(p.split()) <= max_words:
            units.append(p)
            continue
        for sub in (p.split("\n") if "\n" in p else re.split(r"(?<=[.!?])\s+", p)):
            w = sub.split()
            for k in range(0, len(w), max_words):
                units.append(" ".join(w[k : k + max_words]) if len(w) > max_words else sub)
                if len(w) <= max_words:
                    break
    pieces: list[str] = []
    cur: list[str] = []
    n = 0
    for u in units:
        k = len(u.split())
        if cur and n + k > max_words:
            pieces.append(sep.join(cur))
            cur, n = [], 0
        cur.append(u)
        n += k
    if cur:
        pieces.append(sep.join(cur))
    return pieces

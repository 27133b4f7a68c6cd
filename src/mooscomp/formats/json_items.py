"""JSON lists of objects may lose whole low-value items, when ``FormatOptions.json_item_rate``
says so (``None``, the default, keeps every item).

A list of objects (an array of two or more elements, all objects: search results, records) keeps
``ceil(json_item_rate x n)`` of its items: those whose prose words score highest (mean fused keep
score from one forward over all prose of the document; an item with no prose, only keys, numbers
and labels, has nothing to judge by and is kept). Dropped items go whole, with their commas, so
the output still parses and every kept item has its keys; the prose of the kept items is then
compressed under the one global budget, as always. Nothing is dropped when the budget covers
the whole input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from mooscomp.formats._core import _ALL, Doc, FormatOptions, Piece

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


def object_lists(text: str) -> list[list[tuple[int, int]]]:
    """(start, end) of the items of every array of two or more elements that are all objects."""
    out: list[list[tuple[int, int]]] = []
    # per open bracket: [kind, items, element start, all objects so far, expecting an element]
    stack: list[list[Any]] = []
    last = 0  # end of the previous token
    for m in _TOKEN.finditer(text):
        tok, p = m.group(), m.start()
        top = stack[-1] if stack else None
        if top is not None and top[0] == "[":
            scalar = text[last:p].strip() != ""  # an element no token marks: a number, true, ...
            if scalar or (top[4] and tok[0] in '"['):
                top[3] = False
            if top[4] and tok == "{":
                top[2] = p
            top[4] = tok == ","
        if tok in "[{":
            stack.append([tok, [], -1, True, tok == "["])
        elif tok in "]}":
            frame = stack.pop()
            if tok == "]" and frame[3] and len(frame[1]) >= 2:
                out.append(frame[1])
            parent = stack[-1] if stack else None
            if tok == "}" and parent is not None and parent[0] == "[" and parent[2] >= 0:
                parent[1].append((parent[2], m.end()))
                parent[2] = -1
        last = m.end()
    return out


def drop_spans(items: list[tuple[int, int]], keep: list[bool]) -> list[tuple[int, int]]:
    """Input spans to leave out for the dropped items of one list: an item with its comma (the
    one after it, or before it for items after the last kept one)."""
    kept = [i for i, k in enumerate(keep) if k]
    spans = []
    for i, k in enumerate(keep):
        if k:
            continue
        if i < kept[-1]:
            spans.append((items[i][0], items[i + 1][0]))
        elif i == kept[-1] + 1:
            spans.append((items[kept[-1]][1], items[-1][1]))  # every dropped item at the end
    return spans


def cut_points(lists: list[list[tuple[int, int]]]) -> list[int]:
    """Offsets where the parser must start a new piece: every item's start and end."""
    return sorted({x for items in lists for it in items for x in it})


def drop_items(
    doc: Doc,
    lists: list[list[tuple[int, int]]],
    share: float,
    run_all: Callable[[], Any],
    ctx_spans: list[tuple[int, int]],
) -> int:
    """Turn the pieces of each list's lowest-value items into dropped pieces; returns how many
    items were dropped. ``run_all()``: the prose context scored, every word kept."""
    prose = [p for p in doc.pieces if p.prose]
    if not prose or not lists:
        return 0
    d = run_all().details[0]
    ca = np.asarray([a for a, _ in ctx_spans], dtype=np.int64)  # (n_prose,)
    piece = np.searchsorted(ca, d.words.starts, side="right") - 1  # (n_words,) prose piece
    pstart = np.asarray([p.span[0] for p in prose if p.span], dtype=np.int64)  # (n_prose,)
    spans: list[tuple[int, int]] = []
    dropped = 0
    for items in lists:
        starts = np.asarray([s for s, _ in items], dtype=np.int64)
        ends = np.asarray([e for _, e in items], dtype=np.int64)
        item = np.searchsorted(starts, pstart[piece], side="right") - 1  # (n_words,)
        inside = (item >= 0) & (pstart[piece] < ends[np.maximum(item, 0)])
        total = np.bincount(item[inside], weights=d.score[inside], minlength=len(items))
        n = np.bincount(item[inside], minlength=len(items))
        value = np.where(n > 0, total / np.maximum(n, 1), np.inf)  # no prose: kept
        order = np.lexsort((np.arange(len(items)), -value))  # best first, earlier on ties
        keep = np.zeros(len(items), dtype=bool)
        keep[order[: max(1, math.ceil(share * len(items)))]] = True
        keep |= n == 0  # nothing to judge an item without prose by: kept
        spans += drop_spans(items, keep.tolist())
        dropped += int((~keep).sum())
    if not spans:
        return 0
    spans.sort()
    lo = np.asarray([a for a, _ in spans], dtype=np.int64)
    hi = np.asarray([b for _, b in spans], dtype=np.int64)
    for i, p in enumerate(doc.pieces):
        if p.span is None:
            continue
        j = int(np.searchsorted(lo, p.span[0], side="right")) - 1
        if j >= 0 and p.span[1] <= hi[j]:
            doc.pieces[i] = Piece(p.text, sep="drop", span=p.span)
    return dropped


def drop_low_value_items(
    comp: Any,
    doc: Doc,
    text: str,
    lists: list[list[tuple[int, int]]],
    options: FormatOptions,
    rate: float | None,
    target_tokens: int | None,
    compress_kwargs: dict[str, Any],
) -> None:
    """:func:`drop_items` for ``compress_formatted`` (one extra forward over the prose), with a
    note in the document's warnings."""
    from mooscomp.formats._prose import prose_context, selector

    origin = int(comp.count(text)) if text.strip() else 0
    target = float(target_tokens) if target_tokens is not None else float(rate or 1.0) * origin
    if target >= origin or options.json_item_rate is None:
        return
    kwargs = dict(compress_kwargs)
    cfg = kwargs.pop("config", None) or comp.config
    if getattr(cfg, "use_context_level_filter", False):
        cfg = cfg.replace(use_context_level_filter=False)
    context, spans = prose_context(doc.pieces)
    run = selector(comp, context, cfg, kwargs)
    n = drop_items(doc, lists, options.json_item_rate, lambda: run(_ALL), spans)
    if n:
        total = sum(len(items) for items in lists)
        doc.warnings.append(
            f"dropped {n} of the {total} items of {len(lists)} JSON list(s) of objects "
            f"(json_item_rate={options.json_item_rate}); the output falls short of the target "
            "if the kept items are all shorter than it"
        )

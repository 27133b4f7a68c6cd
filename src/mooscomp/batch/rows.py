"""Row checks and the per-worker row compressor: one input row in, one output row out.

Output rows carry the input's columns plus :data:`RESULT_COLUMNS` (the keys of
:meth:`mooscomp.result.CompressionResult.to_row`); a row that cannot be compressed keeps its
columns and gets an ``error`` of the form ``"<kind>: <detail>"`` (kinds: the ``ERR_*`` names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mooscomp.result import ROW_KEYS, error_row

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.batch import DatasetJobConfig
    from mooscomp.compressor import Compressor

# Columns added to every output row.
RESULT_COLUMNS: tuple[str, ...] = ROW_KEYS
# Error kinds (the prefix of the ``error`` column, and the keys of DatasetReport.errors).
ERR_MISSING = "missing_text"
ERR_NOT_STRING = "non_string_text"
ERR_EMPTY = "empty_text"
ERR_OVERSIZED = "oversized_text"
ERR_BAD_ROW = "invalid_row"
ERR_FAILED = "compression_failed"
INVALID_COLUMN = "_invalid_row"  # raw text of a JSONL line that is not a JSON object


class RowCompressor:
    """Turns input rows into output rows with one loaded compressor (one per worker)."""

    def __init__(self, config: DatasetJobConfig, compressor: Compressor) -> None:
        self.config = config
        self.compressor = compressor

    @classmethod
    def load(cls, config: DatasetJobConfig, *, device: str | None = None) -> RowCompressor:
        from mooscomp.compressor import Compressor

        dev = resolve_device(device or config.device)
        comp = Compressor.from_pretrained(config.model, device=dev)
        return cls(config, comp)

    def process_group(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One ``compress_batch`` over the valid rows; invalid rows get an error."""
        cfg = self.config
        out, todo = validate_rows(rows, cfg)
        if not todo:
            return out
        texts = [out[i][cfg.text_column] for i in todo]
        results: list[dict[str, Any]]
        try:
            results = self._compress(texts)
        except Exception:  # noqa: BLE001 - isolate the failing row below
            results = []
            for t in texts:
                try:
                    results.append(self._compress([t])[0])
                except Exception as e:  # noqa: BLE001 - a bad row never aborts the job
                    results.append(error_row(f"{ERR_FAILED}: {type(e).__name__}: {short(str(e))}"))
        for i, r in zip(todo, results, strict=True):
            out[i].update(r)
        return out

    def _compress(self, texts: list[str]) -> list[dict[str, Any]]:
        req = self.config.request
        res = self.compressor.compress_batch(
            texts,
            rate=req.rate,
            target_tokens=req.target_tokens,
            force_tokens=self.config.force_tokens,
            config=self.config.compression,
            format="raw",  # as the pipeline engine (the stages): every engine writes the same rows
        )
        return [r.to_row() for r in res]


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; other names pass through."""
    if device != "auto":
        return device
    from mooscomp._util import resolve_device as _resolve

    return str(_resolve("auto"))


def validate_rows(
    rows: Sequence[dict[str, Any]], cfg: DatasetJobConfig
) -> tuple[list[dict[str, Any]], list[int]]:
    """Output rows (input columns + empty result, with the error of an invalid row) and the
    indices of the rows to compress."""
    out: list[dict[str, Any]] = []
    todo: list[int] = []
    for row in rows:
        o = dict(row)
        err = row_error(row, cfg.text_column, cfg.max_chars)
        o.update(error_row(err))
        if err is None:
            todo.append(len(out))
        out.append(o)
    return out, todo


def row_error(row: dict[str, Any], column: str, max_chars: int) -> str | None:
    """Why ``row`` cannot be compressed, or None."""
    if INVALID_COLUMN in row and len(row) == 1:
        return f"{ERR_BAD_ROW}: not a JSON object"
    if column not in row or row[column] is None:
        return f"{ERR_MISSING}: no {column!r} value"
    text = row[column]
    if not isinstance(text, str):
        return f"{ERR_NOT_STRING}: {column!r} is {type(text).__name__}"
    if not text.strip():
        return f"{ERR_EMPTY}: {column!r} is empty"
    if len(text) > max_chars:
        return f"{ERR_OVERSIZED}: {len(text)} chars > max_chars {max_chars}"
    return None


def groups(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Consecutive slices of ``size`` rows: one ``compress_batch`` call each, in every engine."""
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def short(s: str, n: int = 300) -> str:
    return s if len(s) <= n else s[:n] + "..."

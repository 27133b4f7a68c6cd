"""Parquet shards and their merge (pyarrow is imported here only).

Column types: the result columns have fixed types; the text column is always a string column;
any other column keeps the type pyarrow infers. A column whose values do not share one type keeps
its strings as strings and stores the other values as their JSON text (the row's ``error`` says
when that value was the text to compress); the same rule resolves a column whose type differs
between shards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_RESULT_TYPES = {
    "compressed_prompt": "string",
    "origin_tokens": "int64",
    "compressed_tokens": "int64",
    "rate": "float64",
    "ratio": "float64",
    "error": "string",
}


def _as_text(values: Sequence[Any]) -> list[str | None]:
    from mooscomp.batch.io import json_default

    return [
        v if v is None or isinstance(v, str) else json.dumps(v, default=json_default)
        for v in values
    ]


def parquet_bytes(rows: list[dict[str, Any]], *, text_column: str) -> bytes:
    """One shard as Parquet bytes (columns in order of first appearance)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    arrays = []
    for c in cols:
        values = [r.get(c) for r in rows]
        if c in _RESULT_TYPES:
            arr = pa.array(values, type=pa.type_for_alias(_RESULT_TYPES[c]))
        elif c == text_column:
            arr = pa.array(_as_text(values), type=pa.string())
        else:
            try:
                arr = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types
                arr = pa.array(_as_text(values), type=pa.string())
        arrays.append(arr)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(cols)), sink)
    return bytes(sink.getvalue().to_pybytes())


def _unify(schemas: list[Any]) -> tuple[Any, set[str]]:
    """One schema for all shards, and the columns that had to become text to get it."""
    import pyarrow as pa

    try:
        return pa.unify_schemas(schemas, promote_options="permissive"), set()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    by_name: dict[str, list[Any]] = {}
    for s in schemas:
        for f in s:
            by_name.setdefault(f.name, []).append(f)
    fields, text = [], set()
    for name, fs in by_name.items():
        try:
            one = pa.unify_schemas([pa.schema([f]) for f in fs], promote_options="permissive")
            fields.append(one.field(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            fields.append(pa.field(name, pa.string()))
            text.add(name)
    return pa.schema(fields), text


def merge_parquet(files: list[Path], dest: Path, empty_columns: Sequence[str]) -> None:
    """Write the shards, in order, into one Parquet file at ``dest``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not files:
        pq.write_table(pa.table({c: pa.array([], type=pa.string()) for c in empty_columns}),
                       str(dest))
        return
    schema, text = _unify([pq.read_schema(str(f)) for f in files])
    with pq.ParquetWriter(str(dest), schema) as w:
        for f in files:
            t = pq.read_table(str(f))
            for name in text & set(t.column_names):
                i = t.column_names.index(name)
                col = pa.array(_as_text(t.column(name).to_pylist()), type=pa.string())
                t = t.set_column(i, name, col)
            for name in schema.names:
                if name not in t.column_names:
                    t = t.append_column(name, pa.nulls(len(t), schema.field(name).type))
            w.write_table(t.select(schema.names).cast(schema))

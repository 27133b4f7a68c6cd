"""The shipped model's own 3-layer sentence encoder (config.json ``relevance``) for the question path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mooscomp.compressor import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "config.json").is_file()
    or "relevance" not in json.loads((DEFAULT_MODEL_DIR / "config.json").read_text()),
    reason="no shipped model with a relevance encoder in this build",
)


@pytest.fixture(scope="module")
def comp():
    from mooscomp import Compressor

    return Compressor.from_pretrained(backend="torch")


def test_question_path_uses_the_distilled_encoder_and_it_ranks_sensibly(comp) -> None:
    from mooscomp.question import for_compressor

    qc = for_compressor(comp)
    assert qc is not None
    assert qc.encoder.encoder.config.num_hidden_layers == 3
    assert len(qc.encoder.encoder.encoder.layer) == 3
    e = qc.encoder.embed([
        "When was the bridge over the river opened?",
        "The bridge over the Arno was opened to traffic in 1962 after four years of work.",
        "Her second novel was praised by critics for its portrait of village life.",
    ])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[1] @ e[0] > e[2] @ e[0] + 0.1


def test_a_relevance_file_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    from mooscomp import Compressor
    from mooscomp.question import distilled_sentence_encoder

    d = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["relevance"]["sha256"] = "0" * 64
    (d / "config.json").write_text(json.dumps(cfg))
    c = Compressor.from_pretrained(d, backend="torch")
    with pytest.raises(ValueError, match="sha256"):
        distilled_sentence_encoder(c)


def test_a_model_without_a_relevance_entry_keeps_the_base_encoder(tmp_path: Path) -> None:
    from mooscomp import Compressor
    from mooscomp.question import distilled_sentence_encoder

    d = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    cfg = json.loads((d / "config.json").read_text())
    del cfg["relevance"]
    (d / "config.json").write_text(json.dumps(cfg))
    assert distilled_sentence_encoder(Compressor.from_pretrained(d, backend="torch")) is None


def test_question_batch_equals_single_calls_on_the_int8_default(tmp_path: Path) -> None:
    """On the CPU default (dynamic int8 graphs) a prompt compressed with a question inside
    compress_batch keeps the same words as alone: its chunks and its sentences are not batched
    with other prompts' (int8 scales activations by the batch)."""
    import warnings

    from mooscomp import Compressor

    comp = Compressor.from_pretrained(backend="onnx-int8", cache_dir=tmp_path)
    topics = ["the bridge over the Arno", "the harbour of Genoa", "the cathedral of Siena",
              "the university of Bologna", "the port of Naples", "the walls of Lucca"]
    docs = [" ".join(f"Sentence {k} about {t} names the year {1900 + 7 * k + i} and the engineer "
                     f"Marco Rossi{k}, who worked there for {k + 2} years." for k in range(6 + 3 * i))
            for i, t in enumerate(topics)]
    q = "When did the engineer Marco Rossi4 work on the harbour of Genoa?"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = comp.compress_batch(docs, rate=0.3, question=q, format="raw")
        one = [comp.compress(d, rate=0.3, question=q, format="raw") for d in docs]
    assert [r.text for r in batch] == [r.text for r in one]

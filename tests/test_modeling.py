"""Model format additions: word-shape features and their logit term, int8 row storage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mooscomp.alignment import align, segment_words
from mooscomp.modeling import (
    DEFAULT_BASE,
    ModelFormatError,
    TokenCompressorModel,
    dequantize_rows,
    load_model,
    resolve_base_dir,
    save_model,
    store_tensors,
)
from mooscomp.word_shape import (
    FEATURES,
    ShapeTerm,
    apply_shape_delta,
    check_features,
    token_shape_ids,
    word_shape_ids,
)

_TINY = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64, "max_position_embeddings": 128}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_base_dir(DEFAULT_BASE)))


def _shaped_model(tokenizer, feats=FEATURES) -> TokenCompressorModel:
    torch.manual_seed(0)
    m = TokenCompressorModel.from_config_dict({**_TINY, "vocab_size": tokenizer.vocab_size}, word_shape=feats)
    with torch.no_grad():
        assert m.shape_bias is not None
        m.shape_bias.weight.copy_(torch.randn(m.shape_bias.weight.shape) * 2)
    return m.eval()


def test_word_shape_ids_from_original_words() -> None:
    w = segment_words("The NASA probe left in 1962. it flew\nOn Route 9, said Mr. Smith.")
    ids = word_shape_ids(w, FEATURES)
    bit = {f: 1 << k for k, f in enumerate(FEATURES)}
    got = {t: int(i) for t, i in zip(w.tolist(), ids.tolist(), strict=True)}
    assert got["The"] == bit["capitalised"] | bit["sentence_start"]
    assert got["NASA"] == bit["capitalised"] | bit["all_caps"]
    assert got["1962"] == bit["has_digit"]
    assert got["it"] == bit["sentence_start"]  # after ". " even when lower-case
    assert got["On"] == bit["capitalised"] | bit["sentence_start"]  # after a newline
    assert got["9"] == bit["has_digit"] and got[","] == bit["punct"]
    assert got["probe"] == 0
    only = word_shape_ids(w, ("has_digit",))  # bits follow the model's own feature list
    assert only.tolist() == [int(any(c.isdigit() for c in t)) for t in w.tolist()]
    assert check_features(("punct", "capitalised")) == ("capitalised", "punct")
    with pytest.raises(ValueError, match="distinct names"):
        check_features(("capitalised", "capitalised"))
    assert token_shape_ids(np.array([3, 5]), np.array([-1, 0, 0, 1, -1])).tolist() == [0, 3, 3, 5, 0]


def test_shape_term_equals_the_training_forward(tokenizer) -> None:
    """Adding the term to the scored probabilities = the forward that sees shape ids."""
    model = _shaped_model(tokenizer)
    text = "Alice met Bob in PARIS on 4 July 1962. then they left"
    words = segment_words(text)
    al = align(words, tokenizer)
    ids = torch.tensor([[tokenizer.cls_token_id, *al.input_ids.tolist(), tokenizer.sep_token_id]])
    shp = token_shape_ids(word_shape_ids(words, FEATURES), al.token_word)
    shape_ids = torch.tensor([[0, *shp.tolist(), 0]])
    with torch.no_grad():
        plain = torch.softmax(model(ids, torch.ones_like(ids)).logits, -1)[0, 1:-1, 1].numpy()
        want = torch.softmax(model(ids, torch.ones_like(ids), shape_ids=shape_ids).logits, -1)[0, 1:-1, 1].numpy()
    term = ShapeTerm.of_model(model)
    assert term is not None
    np.testing.assert_allclose(term.apply(words, al.token_word, plain), want, atol=1e-5)
    np.testing.assert_allclose(apply_shape_delta(plain, np.zeros_like(shp), np.zeros(32)), plain, atol=1e-6)
    no_shape = TokenCompressorModel.from_config_dict({**_TINY, "vocab_size": tokenizer.vocab_size})
    assert ShapeTerm.of_model(no_shape) is None


def test_compressor_uses_the_shape_term(tokenizer, tmp_path: Path) -> None:
    """A model whose only signal is a large bonus for digits keeps the digits."""
    from mooscomp import Compressor

    model = _shaped_model(tokenizer, ("has_digit",))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.shape_bias.weight.copy_(torch.tensor([[0.0, -3.0], [0.0, 3.0]]))  # type: ignore[union-attr]
    save_model(model, tokenizer, tmp_path / "m", dtype=torch.float32)
    comp = Compressor.from_pretrained(tmp_path / "m", backend="torch")
    assert comp.shape_term is not None
    res = comp.compress("the meeting moved from 1962 to room 48 because of the rain", rate=0.3,
                        config=comp.config.replace(outlier_alpha=0.0, units=()))
    assert "1962" in res.text and "48" in res.text and "meeting" not in res.text


def test_int8_row_storage_round_trip_and_size(tokenizer, tmp_path: Path) -> None:
    model = _shaped_model(tokenizer)
    sd = {k: v for k, v in model.state_dict().items()}
    stored = store_tensors(sd, torch.int8)
    back = dequantize_rows(stored)
    assert set(back) == set(sd)
    assert stored["head.weight"].dtype == torch.float32 and "head.weight.__row_scale" not in stored  # small
    for k, v in sd.items():
        if v.is_floating_point():
            tol = float(v.abs().max()) / 127 * 0.51 + 1e-3 * float(v.abs().max())
            assert float((back[k] - v).abs().max()) <= tol, k
    save_model(model, tokenizer, tmp_path / "i8", dtype=torch.int8)
    save_model(model, tokenizer, tmp_path / "f32", dtype=torch.float32)
    s8 = (tmp_path / "i8/model.safetensors").stat().st_size
    s32 = (tmp_path / "f32/model.safetensors").stat().st_size
    assert s8 < 0.35 * s32
    m8, _, cfg, _ = load_model(tmp_path / "i8")
    assert cfg["storage"]["dtype"] == "int8" and cfg["word_shape"] == list(FEATURES)
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    with torch.no_grad():
        a = model(ids, torch.ones_like(ids)).logits
        b = m8(ids, torch.ones_like(ids)).logits
    assert float((a - b).abs().max()) < 0.05
    bad = dict(stored)
    first = next(k for k in stored if k.endswith(".__row_scale"))
    bad[first] = bad[first][:-1]
    with pytest.raises(ModelFormatError, match="mismatched scale"):
        dequantize_rows(bad)


def test_bad_word_shape_record_is_a_format_error(tokenizer, tmp_path: Path) -> None:
    model = _shaped_model(tokenizer, ("capitalised",))
    save_model(model, tokenizer, tmp_path / "m", dtype=torch.float32)
    cfg_path = tmp_path / "m/config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["word_shape"] = ["colour"]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="word-shape features"):
        load_model(tmp_path / "m")


def test_shipped_model_still_loads_without_shapes() -> None:
    from mooscomp.compressor import DEFAULT_MODEL_DIR
    from mooscomp.modeling import read_config

    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("no shipped model in this build")
    cfg = read_config(DEFAULT_MODEL_DIR)
    model, _, _, _ = load_model(DEFAULT_MODEL_DIR)
    assert tuple(cfg.get("word_shape") or ()) == model.word_shape


def _naive_shapes(words) -> list[int]:
    toks, out = words.tolist(), []
    space, newline = words.space_before(), words.newline_before()
    for i, w in enumerate(toks):
        letters = [c for c in w if c.isalnum() and not c.isdigit()]
        bits = [w[:1].isupper(), len(letters) >= 2 and all(c.isupper() for c in letters),
                any(c.isdigit() for c in w),
                i == 0 or bool(newline[i]) or (bool(space[i]) and toks[i - 1] in (".", "!", "?", "…")),
                not any(c.isalnum() for c in w)]
        out.append(sum(int(b) << k for k, b in enumerate(bits)))
    return out


def test_vectorised_shapes_match_a_per_word_reference() -> None:
    import random

    rng = random.Random(3)
    pieces = ["Paris", "NASA", "x", "3rd", "١٢", "Élan", "ÉTÉ", "über", ".", "!", "?", ",", "U.S.", "e-mail",
              "\n", "Straße", "4.2", "$", "東京", "M1", "iPhone", "…", "ok"]
    for _ in range(30):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        w = segment_words(text)
        assert word_shape_ids(w, FEATURES).tolist() == _naive_shapes(w), text


def test_downstream_survival_grid_forked_equals_serial(tokenizer) -> None:
    """Dev survival: digits-only model keeps the numeric answer, not the name; workers agree."""
    from mooscomp import Compressor
    from mooscomp.evaluation.items import EvalItem
    from mooscomp.training.downstream import survival_at, survival_grid

    model = _shaped_model(tokenizer, ("has_digit",))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.shape_bias.weight.copy_(torch.tensor([[0.0, -3.0], [0.0, 3.0]]))  # type: ignore[union-attr]
    comp = Compressor(model, tokenizer, config=Compressor(model, tokenizer).config.replace(outlier_alpha=0.0))
    text = ("the committee met again on a rainy evening and after a long debate about the budget "
            "it agreed that the bridge would open in 1987 while the mayor named Harriet Quill spoke")
    items = [EvalItem("squad", "squad/a", (text,), "when?", ("1987",), "qa"),
             EvalItem("squad", "squad/b", (text,), "who?", ("Harriet Quill",), "qa"),
             EvalItem("hotpotqa", "hotpotqa/c", (text, "a second context with 42 in it"), "n?", ("42",), "qa")]
    configs = {"a0": comp.config, "units_off": comp.config.replace(units=())}
    serial = survival_grid(comp, items, configs, (0.25, 0.5), workers=1)
    forked = survival_grid(comp, items, configs, (0.25, 0.5), workers=2)
    assert serial == forked
    assert serial["a0"]["0.25"] == {"hotpotqa": 1.0, "squad": 0.5, "mean": 0.75}
    assert survival_at(comp, items) == serial["a0"]["0.25"]

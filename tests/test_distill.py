"""Distillation of a smaller student (mooscomp.training.distill, scripts/device/distill_job.py)
with tiny random encoders: layer copying, the loss, the round trip through the model format."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import TINY_BERT

from mooscomp.modeling import ModelFormatError, TokenCompressorModel, load_model, save_model
from mooscomp.training.distill import (
    DistillConfig,
    boost_targets,
    build_student,
    distill,
    evaluate_student,
    save_student,
    teacher_targets,
)
from mooscomp.word_shape import FEATURES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts" / "device"))


@pytest.fixture(scope="module")
def teacher() -> TokenCompressorModel:
    """4 layers, word shapes; head and upper layers scaled up so the probabilities are far from 0.5
    and a student without the upper layers starts far from the teacher."""
    torch.manual_seed(0)
    t = TokenCompressorModel.from_config_dict({**TINY_BERT, "num_hidden_layers": 4}, word_shape=FEATURES)
    with torch.no_grad():
        t.head.weight.mul_(30.0)
        t.shape_bias.weight.normal_()
        for name, p in t.named_parameters():
            if p.dim() == 2 and any(f"layer.{i}." in name for i in (1, 2, 3)):
                p.mul_(10.0)
    return t.eval()


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    from train_ablation import synthetic_docs

    return synthetic_docs(16)


def _cfg(**kw) -> DistillConfig:
    base = {"layers": (0, 2), "epochs": 1, "batch_size": 8, "max_length": 128, "device": "cpu"}
    return DistillConfig(**{**base, **kw})


def _logits(model: TokenCompressorModel) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (2, 12), generator=g)  # (2, 12)
    shapes = torch.randint(0, 4, (2, 12), generator=g)
    with torch.no_grad():
        return model(ids, torch.ones_like(ids), shape_ids=shapes).logits  # (2, 12, 2)


@pytest.mark.parametrize("bad", [{"layers": ()}, {"layers": (2, 1)}, {"layers": (0, 0)}, {"layers": [0, 1]},
                                 {"temperature": 0.0}, {"hard_weight": -1.0}, {"epochs": 0}, {"label_boost": -1.0},
                                 {"device": "tpu"}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="DistillConfig"):
        DistillConfig(**bad)


def test_build_student_copies_the_chosen_layers(teacher):
    s = build_student(teacher, (1, 3))
    assert s.encoder.config.num_hidden_layers == 2 and teacher.encoder.config.num_hidden_layers == 4
    ts, ss = teacher.state_dict(), s.state_dict()
    for i, j in ((0, 1), (1, 3)):
        for k, v in ss.items():
            if k.startswith(f"encoder.encoder.layer.{i}."):
                assert torch.equal(v, ts[k.replace(f"layer.{i}.", f"layer.{j}.")])
    for k in ("head.weight", "shape_bias.weight", "encoder.embeddings.word_embeddings.weight"):
        assert torch.equal(ss[k], ts[k])
    assert torch.allclose(_logits(build_student(teacher, (0, 1, 2, 3)).eval()), _logits(teacher))
    with pytest.raises(ValueError, match="among the teacher's 4 layers"):
        build_student(teacher, (0, 4))


def test_distill_lowers_the_kl_to_the_teacher(teacher, docs, wordpiece_tokenizer):
    from mooscomp.training.distill import encode_for_distill

    cfg = _cfg(layers=(0,), epochs=3, lr=3e-3, val_fraction=0.25)
    enc = encode_for_distill(docs, wordpiece_tokenizer, cfg, word_shape=teacher.word_shape)
    val = [c for d in enc[:4] for c in d.chunks]
    kw = {"batch_size": 8, "pad_id": 0, "specials": [101, 102, 0], "device": torch.device("cpu")}
    targets = teacher_targets(teacher, val, **kw)
    before = evaluate_student(build_student(teacher, (0,)), targets, **kw)
    rng = torch.get_rng_state()
    res = distill(teacher, wordpiece_tokenizer, enc, cfg)
    assert torch.equal(torch.get_rng_state(), rng)  # seeding happens in a fork
    assert [h["epoch"] for h in res.history] == [1, 2, 3] and 1 <= res.best_epoch <= 3
    assert res.n_val_docs == 4 and res.best_metrics is not None
    after = evaluate_student(res.student, targets, **kw)
    assert after["kl"] < 0.5 * before["kl"]
    assert after["agreement"] >= before["agreement"]
    assert not res.student.training and res.student.encoder.config.num_hidden_layers == 1


def test_labels_are_needed_only_for_the_hard_term(teacher, docs, wordpiece_tokenizer):
    bare = [{"doc_id": d["doc_id"], "text": d["text"]} for d in docs[:6]]
    res = distill(teacher, wordpiece_tokenizer, bare, _cfg(val_fraction=0.0))
    assert res.history[0]["train_ce"] == 0.0 and res.history[0]["train_kl"] > 0
    with pytest.raises(ValueError, match="no labels"):
        distill(teacher, wordpiece_tokenizer, bare, _cfg(hard_weight=0.5))


def test_label_boost_raises_the_targets_of_labelled_tokens(teacher, docs, wordpiece_tokenizer, monkeypatch):
    import numpy as np

    ex = [(np.array([1, 2, 3]), np.array([-100, 1, 0]), np.zeros(3, np.int64),
           np.array([0.5, -1.0, 2.0], np.float32), np.zeros(3, np.float32))]
    got = boost_targets(ex, 3.0)
    np.testing.assert_allclose(got[0][3], [0.5, 2.0, 2.0])
    assert got[0][1] is ex[0][1] and got[0][4] is ex[0][4]
    bare = [{"doc_id": d["doc_id"], "text": d["text"]} for d in docs[:6]]
    with pytest.raises(ValueError, match="no labels"):
        distill(teacher, wordpiece_tokenizer, bare, _cfg(label_boost=2.0))
    # distill trains on the boosted targets (train and validation chunks), and only when asked
    dmod = sys.modules["mooscomp.training.distill"]  # the package re-exports a function of that name

    calls = []

    def spy(examples, boost):
        calls.append((len(examples), boost))
        return boost_targets(examples, boost)

    monkeypatch.setattr(dmod, "boost_targets", spy)
    distill(teacher, wordpiece_tokenizer, docs[:8], _cfg(val_fraction=0.25))
    assert calls == []
    res = distill(teacher, wordpiece_tokenizer, docs[:8], _cfg(val_fraction=0.25, label_boost=4.0))
    assert [b for _, b in calls] == [4.0, 4.0] and all(n > 0 for n, _ in calls)
    assert res.history[0]["train_kl"] > 0


def _base_dir(model: TokenCompressorModel, tokenizer, path: Path) -> Path:
    """A base encoder folder (HF layout) holding ``model``'s encoder."""
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.encoder.state_dict().items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(model.encoder.config.to_dict()))
    tokenizer.save_pretrained(str(path))
    return path


def test_student_round_trips_full_and_as_delta(teacher, docs, wordpiece_tokenizer, tmp_path):
    from mooscomp import Compressor
    from mooscomp.exporters.fast_load import dir_key
    from mooscomp.exporters.onnx import OnnxOptions

    res = distill(teacher, wordpiece_tokenizer, docs[:8], _cfg(hard_weight=0.3, z_weight=0.1))
    full = save_student(res, wordpiece_tokenizer, tmp_path / "full", base=None)
    base = _base_dir(teacher, wordpiece_tokenizer, tmp_path / "base")
    delta = save_student(res, wordpiece_tokenizer, tmp_path / "delta", base={"path": str(base)})
    teacher_dir = save_model(teacher, wordpiece_tokenizer, tmp_path / "teacher")
    want = _logits(res.student)
    for d, kind in ((full, "full"), (delta, "delta")):
        m, _, cfg, _ = load_model(d)
        assert cfg["storage"]["kind"] == kind and m.encoder.config.num_hidden_layers == 2
        assert (m(torch.tensor([[101, 2000, 102]]), torch.ones(1, 3, dtype=torch.long)).logits.shape == (1, 3, 2))
        assert torch.allclose(_logits(m), want, atol=0.1 * float(want.abs().max()))
        assert cfg["metadata"]["distillation"]["config"]["layers"] == [0, 2]
    assert sum(p.stat().st_size for p in delta.iterdir()) < sum(p.stat().st_size for p in full.iterdir())
    opts = OnnxOptions(quantize=True)
    assert len({dir_key(full, opts), dir_key(delta, opts), dir_key(teacher_dir, opts)}) == 3
    text = " ".join(docs[0]["text"].split()[:60])
    out = Compressor.from_pretrained(delta, backend="torch").compress(text, rate=0.5)
    assert 0 < len(out.text) < len(text)
    # a delta that leaves one of its layers to the base is refused
    save_model(res.student, wordpiece_tokenizer, tmp_path / "bad", base={"path": str(base)},
               delta_prefixes=["encoder.encoder.layer.0."])
    with pytest.raises(ModelFormatError, match="must store all its layers"):
        load_model(tmp_path / "bad")


def test_distill_job_runs_on_cpu_over_a_packed_teacher(teacher, wordpiece_tokenizer, tmp_path):
    """The device path: a delta teacher, its base embeddings packed, the job on synthetic data."""
    import distill_job

    from mooscomp.evaluation.items import EvalItem, save_items

    base = _base_dir(teacher, wordpiece_tokenizer, tmp_path / "base")
    tdir = save_model(teacher, wordpiece_tokenizer, tmp_path / "teacher", base={"path": str(base)},
                      delta_prefixes=[f"encoder.encoder.layer.{i}." for i in range(4)])
    assert distill_job.main(["pack-teacher", "--model", str(tdir), "--dest", str(tmp_path / "emb")]) == 0
    items = [EvalItem(task="squad", item_id=f"squad/{i}", question="Where?", answers=("Paris",), kind="qa",
                      contexts=("Alice went to Paris in 1999 and met Bob there at the station.",))
             for i in range(2)]
    save_items(items, tmp_path / "dev.jsonl")
    out = tmp_path / "out"
    rc = distill_job.main(["run", "--teacher", str(tdir), "--embeddings", str(tmp_path / "emb"),
                           "--synthetic", "10", "--dev-items", str(tmp_path / "dev.jsonl"),
                           "--layers", "0,2", "3", "--hard-weights", "0", "--z-weights", "0",
                           "--epochs", "1", "--batch-size", "8", "--max-length", "128", "--workers", "1",
                           "--out", str(out), "--work", str(tmp_path / "work")])
    assert rc == 0
    rep = json.loads((out / "distill.json").read_text())
    assert [r["layers"] for r in rep["rows"]] == [[0, 2], [3]]
    assert rep["best"] in {r["name"] for r in rep["rows"]}
    for r in rep["rows"]:
        assert set(r["survival"]) >= {"0.5", "0.25", "mean_2x_5x"} and 0 <= r["keep_f1_vs_teacher_selection_4x"] <= 1
        assert "mean_2x_5x" in r["survival_delta_vs_teacher"]
    assert {p.name for p in out.iterdir()} >= {"distill.json", "distill_job.log", "student_best.tar"}
    with tarfile.open(out / "student_best.tar") as tf:
        tf.extractall(tmp_path / "x", filter="data")
    (student,) = (tmp_path / "x").iterdir()
    cfg = json.loads((student / "config.json").read_text())
    assert cfg["base"]["path"] == str(base) and cfg["storage"]["kind"] == "delta"  # the teacher's base
    m, _, _, _ = load_model(student)
    assert m.encoder.config.num_hidden_layers in (1, 2)


def test_answer_head_job_runs_on_cpu_and_folds_its_head(teacher, wordpiece_tokenizer, tmp_path):
    """scripts/device/answer_head_job.py on a tiny delta teacher: a frozen-encoder run keeps the
    teacher's keep logits, every run x gamma is judged, the best folds ship over the teacher's base."""
    import gzip

    import answer_head_job
    import distill_job

    from mooscomp.alignment import segment_words
    from mooscomp.evaluation.items import EvalItem, save_items

    base = _base_dir(teacher, wordpiece_tokenizer, tmp_path / "base")
    tdir = save_model(teacher, wordpiece_tokenizer, tmp_path / "teacher", base={"path": str(base)},
                      delta_prefixes=[f"encoder.encoder.layer.{i}." for i in range(4)])
    data = tmp_path / "data"
    assert distill_job.main(["pack-teacher", "--model", str(tdir), "--dest", str(data / "emb")]) == 0  # as prepare
    text = "Alice went to Paris in 1999 and met Bob there at the station near the river."
    words = segment_words(text).tolist()
    docs = [{"doc_id": f"gen/{i}", "text": text, "labels": [int(w in ("Paris", "1999")) for w in words]}
            for i in range(12)] + [{"doc_id": f"web/{i}", "text": text, "labels": [0] * len(words)} for i in range(4)]
    with gzip.open(data / "docs.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    save_items([EvalItem(task=t, item_id=f"{t}/{i}", question="Where?", answers=("Paris",), kind="qa",
                         contexts=(text,)) for t in ("squad", "hotpotqa") for i in range(2)],
               data / "dev_items.jsonl.gz")
    out = tmp_path / "out"
    rc = answer_head_job.main(["run", "--data", str(data), "--teacher", str(tdir), "--out", str(out),
                               "--work", str(tmp_path / "work"), "--runs", "freeze:1:0:1", "lam1:1:1e-4:1",
                               "--gammas", "0", "4", "--workers", "1", "--batch-size", "4", "--device", "cpu",
                               "--tar-runs"])
    assert rc == 0
    rep = json.loads((out / "answer_head.json").read_text())
    assert [(r["run"], r["gamma"]) for r in rep["rows"]] == [("freeze", 0), ("freeze", 4), ("lam1", 0), ("lam1", 4)]
    for r in rep["rows"]:
        assert 0 <= r["survival"]["focus 1"]["0.25"]["mean"] <= 1 and 0 <= r["val"]["answer_auc"] <= 1
    frozen = next(r for r in rep["rows"] if r["run"] == "freeze")
    assert frozen["val"]["kl"] < 1e-3  # the encoder and keep head did not move
    assert set(rep["best_4x"]) == {"focus 1", "focus 0.5"}
    assert {p.name for p in out.glob("run_*.tar")} == {"run_freeze.tar", "run_lam1.tar"}
    assert len(frozen["answer_head"]["weight"]) == TINY_BERT["hidden_size"]
    tars = sorted(out.glob("model_*.tar"))
    assert tars
    with tarfile.open(tars[0]) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    (model,) = (tmp_path / "x").iterdir()
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["base"]["path"] == str(base) and "answer_head_finetune" in cfg["metadata"]
    load_model(model)

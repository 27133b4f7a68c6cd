"""Training groups of the question path's sentence encoder (mooscomp.training.relevance_data)."""

from __future__ import annotations

from mooscomp.evaluation.items import EvalItem
from mooscomp.training import relevance_data as rd


def _example(qid: str, titles: tuple[str, str] = ("Ed Wood", "Scott Derrickson")) -> dict:
    return {
        "_id": qid,
        "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
        "answer": "yes",
        "supporting_facts": [[titles[1], 0], [titles[0], 1]],
        "context": [
            [titles[0], ["Edward Davis Wood Jr. was a filmmaker.", " He was born in 1924.",
                         " He was an American director."]],
            [titles[1], [" Scott Derrickson is an American director.", " He lives in Los Angeles."]],
            ["Other", ["Nothing to see here.", " Still nothing."]],
        ],
    }


def test_group_marks_the_supporting_sentences(tiny_compressor):
    g = rd.build_group(_example("a1"), tiny_compressor)
    assert g.item_id == "hotpotqa/a1" and g.answer == "yes"
    positive = [g.sentences[i] for i in g.positive]
    assert any("born in 1924" in s for s in positive)
    assert any(s.startswith("Scott Derrickson: Scott Derrickson is") for s in positive)
    assert not any("Los Angeles" in s or "nothing" in s.lower() for s in positive)
    assert rd.Group.from_json(g.to_json()) == g


def test_pool_drops_reserved_ids_and_their_titles():
    data = [_example("r1"), _example("k1", ("Ed Wood", "Other Person")), _example("k2", ("A", "B"))]
    data[2]["context"][2][0] = "C"
    pool = rd.training_pool(data, {"hotpotqa/r1"})
    assert [ex["_id"] for ex in pool] == ["k2"]  # k1 shares the title "Ed Wood" with r1
    assert rd.ids_sha256(pool) == rd.ids_sha256(list(reversed(pool)))


def test_answer_group_and_round_trip(tiny_compressor, tmp_path):
    item = EvalItem(task="squad", item_id="squad/x", contexts=("The dam opened in 1962. It is tall.",
                                                               "Rivers flow."),
                    question="When did the dam open?", answers=("1962",), kind="qa")
    g = rd.answer_group(item, tiny_compressor)
    assert [g.sentences[i] for i in g.positive] == ["The dam opened in 1962."]
    assert rd.write_groups([g], tmp_path / "g.jsonl.gz") == 1
    assert rd.read_groups(tmp_path / "g.jsonl.gz") == [g]


def test_groups_record_each_sentences_context(tiny_compressor):
    g = rd.build_group(_example("c1"), tiny_compressor)
    assert len(g.context_of) == len(g.sentences)
    assert list(g.context_of) == sorted(g.context_of) and set(g.context_of) == {0, 1, 2}
    assert rd.Group.from_json(g.to_json()).context_of == g.context_of

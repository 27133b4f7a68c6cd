"""The llmlingua drop-in: llmlingua 0.2.2 call patterns (its README and docs) through the facade.

Every argument either does what it does in llmlingua's LLMLingua-2 path or is refused by name.
"""

from __future__ import annotations

import pytest

from mooscomp.adapters.llmlingua import PromptCompressor

KEYS = {"compressed_prompt", "compressed_prompt_list", "origin_tokens", "compressed_tokens",
        "ratio", "rate", "saving"}


@pytest.fixture(scope="module")
def pc(tiny_model_dir):
    return PromptCompressor(model_name=str(tiny_model_dir), device_map="cpu", use_llmlingua2=True,
                            backend="torch")


@pytest.fixture()
def contexts(sample_text):
    a, b = sample_text.split("\n\n")
    sents = [s.strip() + "." for s in (a + " " + b).split(". ") if s.strip()]
    return [" ".join(sents[i:i + 2]) for i in range(0, 8, 2)]  # 4 contexts of 2 sentences


def _check_row(out):
    assert set(out) >= KEYS
    assert isinstance(out["origin_tokens"], int) and isinstance(out["compressed_tokens"], int)
    assert out["ratio"].endswith("x") and out["rate"].endswith("%")
    assert out["compressed_prompt"] == "\n\n".join(out["compressed_prompt_list"])


def test_shim_still_imports():
    from mooscomp.compat import PromptCompressor as Old

    assert Old is PromptCompressor


def test_readme_llmlingua2_pattern(pc, sample_text):
    # llmlingua README: compress_prompt(prompt, rate=0.33, force_tokens=['\n', '?'])
    out = pc.compress_prompt(sample_text, rate=0.33, force_tokens=["\n", "?"])
    _check_row(out)
    assert 0 < out["compressed_tokens"] < out["origin_tokens"]
    assert pc(sample_text, rate=0.33, force_tokens=["\n", "?"]) == out  # __call__, as in llmlingua


def test_readme_target_token_pattern(pc, sample_text):
    # llmlingua README: compress_prompt(prompt, instruction="", question="", target_token=200)
    out = pc.compress_prompt(sample_text, instruction="", question="", target_token=60)
    _check_row(out)
    assert abs(out["compressed_tokens"] - 60) <= 3
    # positional order is llmlingua's: context, instruction, question, rate, target_token
    assert pc.compress_prompt(sample_text, "", "", 0.5, 60) == out


def test_usage_doc_word_labels_pattern(pc, sample_text):
    # llmlingua docs (Usage.md, LLMLingua-2)
    out = pc.compress_prompt(sample_text, rate=0.33, force_tokens=["\n", "?"],
                             chunk_end_tokens=[".", "\n"], return_word_label=True,
                             drop_consecutive=True)
    pairs = [p.rsplit(" ", 1) for p in out["fn_labeled_original_prompt"].split("\t\t|\t\t")]
    kept = [w for w, lab in pairs if lab == "1"]
    assert {lab for _, lab in pairs} == {"0", "1"}
    assert "".join(kept) == "".join(out["compressed_prompt"].split())
    custom = pc.compress_prompt(sample_text, rate=0.33, return_word_label=True, word_sep="|",
                                label_sep="=")
    assert custom["fn_labeled_original_prompt"].count("|") == len(pairs) - 1


def test_gsm8k_pattern_context_filter_and_digits(pc, contexts):
    # LLMLingua-2 paper's GSM8K script: demonstrations, context filter, digits and force tokens
    force = ["+", "-", "*", "×", "/", "÷", "=", "The answer is", "\n"]
    out = pc.compress_prompt(contexts, rate=0.5, force_tokens=force, force_reserve_digit=True,
                             use_context_level_filter=True, target_token=40)
    _check_row(out)
    assert len(out["compressed_prompt_list"]) < len(contexts)
    digits = pc.compress_prompt(contexts, rate=0.2, force_reserve_digit=True,
                                use_context_level_filter=False)["compressed_prompt"]
    assert "10th" in contexts[0] and "10th" in digits and "11th" in digits


def test_context_filter_is_on_by_default_as_in_llmlingua(pc, contexts):
    # llmlingua 0.2.2: compress_prompt defaults use_context_level_filter=True; rate 0.5 ->
    # context level (0.5 + 1) / 2 = 0.75 -> the lowest of 4 contexts goes
    default = pc.compress_prompt(contexts, rate=0.5)
    assert len(default["compressed_prompt_list"]) == 3
    off = pc.compress_prompt(contexts, rate=0.5, use_context_level_filter=False)
    assert len(off["compressed_prompt_list"]) == 4
    # compress_prompt_llmlingua2 has the filter off by default, as there
    assert pc.compress_prompt_llmlingua2(contexts, rate=0.5) == off


def test_target_context_and_force_context_ids(pc, contexts):
    two = pc.compress_prompt(contexts, rate=0.5, target_context=2, use_token_level_filter=False)
    assert len(two["compressed_prompt_list"]) == 2
    assert all(c in contexts for c in two["compressed_prompt_list"])  # token filter off: verbatim
    one = pc.compress_prompt(contexts, rate=0.5, target_context=1, use_token_level_filter=False)
    (best,) = one["compressed_prompt_list"]
    other = next(i for i, c in enumerate(contexts) if c != best)
    forced = pc.compress_prompt(contexts, rate=0.5, target_context=1, force_context_ids=[other],
                                use_token_level_filter=False)
    assert forced["compressed_prompt_list"] == [c for c in contexts if c in (best, contexts[other])]


def test_context_level_target_token(pc, contexts):
    origin = pc.compress_prompt(contexts, rate=1.0, use_context_level_filter=False)["origin_tokens"]
    few = pc.compress_prompt(contexts, rate=0.9, use_token_level_filter=False,
                             context_level_target_token=origin // 4)
    many = pc.compress_prompt(contexts, rate=0.9, use_token_level_filter=False,
                              context_level_target_token=origin)
    assert len(few["compressed_prompt_list"]) < len(many["compressed_prompt_list"]) == 4


def test_token_level_filter_off_keeps_text(pc, sample_text):
    out = pc.compress_prompt(sample_text, rate=0.3, use_token_level_filter=False)
    assert out["compressed_prompt"] == sample_text
    assert out["compressed_tokens"] == out["origin_tokens"] and out["ratio"] == "1.0x"


def test_dropped_contexts_are_labelled_zero(pc, contexts):
    out = pc.compress_prompt(contexts, rate=0.5, target_context=2, return_word_label=True)
    labels = [p.rsplit(" ", 1)[1] for p in out["fn_labeled_original_prompt"].split("\t\t|\t\t")]
    n_words = sum(len(c.split()) for c in contexts)
    assert len(labels) >= n_words and labels.count("1") < len(labels) / 2


def test_same_as_library_for_one_context(pc, sample_text):
    out = pc.compress_prompt(sample_text, rate=0.4)
    cfg = pc.compressor.config.replace(chunk_end_chars=".\n")
    want = pc.compressor.compress(sample_text, rate=0.4, config=cfg, format="raw")  # llmlingua's way
    assert out["compressed_prompt"] == want.text


def test_longllmlingua_rank_method_uses_the_question(pc, contexts):
    q = "Who was Rollo and what did the Normans adopt?"
    plain = pc.compress_prompt(contexts, question=q, rate=0.3, use_context_level_filter=False)
    aware = pc.compress_prompt(contexts, question=q, rate=0.3, rank_method="longllmlingua",
                               use_context_level_filter=False)
    assert plain == pc.compress_prompt(contexts, rate=0.3, use_context_level_filter=False)
    cfg = pc.compressor.config.replace(chunk_end_chars=".\n")
    lib = pc.compressor.compress(contexts, rate=0.3, question=q, config=cfg)
    assert aware["compressed_prompt"] == lib.text
    with pytest.raises(ValueError, match="question"):
        pc.compress_prompt(contexts, rate=0.3, rank_method="longllmlingua")
    with pytest.raises(ValueError, match="rank_method"):
        pc.compress_prompt(contexts, rate=0.3, rank_method="bm25")


def test_longllmlingua_readme_options_are_refused_by_name(pc, contexts):
    # llmlingua README (LongLLMLingua): these are silently ignored by llmlingua's LLMLingua-2 path
    with pytest.raises(ValueError) as e:
        pc.compress_prompt(contexts, question="Who?", rate=0.55,
                           condition_in_question="after_condition", reorder_context="sort",
                           dynamic_context_compression_ratio=0.3, condition_compare=True,
                           context_budget="+100", rank_method="longllmlingua")
    msg = str(e.value)
    for name in ("condition_in_question", "dynamic_context_compression_ratio", "condition_compare"):
        assert name in msg
    assert "context_budget" not in msg  # its default value is fine
    assert "reorder_context" not in msg  # "sort" with rank_method="longllmlingua" is mapped
    for kw in ({"iterative_size": 100}, {"keep_first_sentence": 1}, {"add_instruction": True}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            pc.compress_prompt(contexts, rate=0.5, **kw)


@pytest.mark.parametrize("kw", [{"totally_bogus_kw": 1}, {"ratio": 0.5}])
def test_unknown_keywords_are_type_errors(pc, sample_text, kw):
    with pytest.raises(TypeError, match=next(iter(kw))):
        pc.compress_prompt(sample_text, **kw)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": 1.5}, "rate"),
        ({"target_token": 0}, "target_token"),
        ({"context_level_rate": 0.0}, "context_level_rate"),
        ({"chunk_end_tokens": [". "]}, "chunk_end_tokens"),
        ({"force_tokens": "abc"}, "force_tokens"),
        ({"force_context_ids": ["0"]}, "force_context_ids"),
        ({"token_to_word": "max"}, "token_to_word"),
        ({"force_tokens": [str(i) for i in range(101)]}, "max_force_token"),
    ],
)
def test_bad_values_name_the_argument(pc, sample_text, kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        pc.compress_prompt(sample_text, **kw)


def test_constructor_errors(tiny_model_dir, tmp_path):
    for hub in ("microsoft/llmlingua-2-xlm-roberta-large-meetingbank", "NousResearch/Llama-2-7b-hf"):
        with pytest.raises(ValueError, match=r"hub name.*PromptCompressor\(\)"):
            PromptCompressor(model_name=hub, use_llmlingua2=True)
    with pytest.raises(ValueError, match="not a directory"):
        PromptCompressor(model_name=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="LLMLingua-1"):
        PromptCompressor(model_name=str(tiny_model_dir), use_llmlingua2=False)
    with pytest.raises(ValueError, match="model_config"):
        PromptCompressor(model_name=str(tiny_model_dir), model_config={"revision": "main"})
    with pytest.raises(TypeError, match="max_seq"):
        PromptCompressor(model_name=str(tiny_model_dir), llmlingua2_config={"max_seq": 1})
    pc = PromptCompressor(model_name=str(tiny_model_dir), llmlingua2_config={"max_batch_size": 7},
                          backend="torch")
    assert pc.compressor.config.batch_size == 7
    assert pc.get_token_length("hello world", use_oai_tokenizer=True) == 2
    with pytest.raises(NotImplementedError, match="structured_compress_prompt"):
        pc.structured_compress_prompt(["<llmlingua>x</llmlingua>"])


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory, wordpiece_tokenizer):
    """A tiny 2-label BERT token classifier saved the Hugging Face way (as llmlingua's models are);
    the folder name carries 'bert-base-multilingual-cased' because llmlingua picks its code path
    from the name."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(3)
    cfg = BertConfig(vocab_size=wordpiece_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, num_labels=2)
    path = tmp_path_factory.mktemp("hf") / "tiny-bert-base-multilingual-cased"
    BertForTokenClassification(cfg).save_pretrained(str(path))
    wordpiece_tokenizer.save_pretrained(str(path))
    return path


def test_local_llmlingua_checkpoint_gives_llmlingua_words(hf_checkpoint, monkeypatch, tmp_path):
    pc = PromptCompressor(model_name=str(hf_checkpoint), backend="torch")
    text = ("The Normans were the people who in the tenth and eleventh centuries gave their name "
            "to Normandy, a region in France. They were descended from Norse raiders and pirates.")
    out = pc.compress_prompt(text, rate=0.5, return_word_label=True)
    _check_row(out)
    assert 0 < out["compressed_tokens"] < out["origin_tokens"]
    llmlingua = pytest.importorskip("llmlingua", reason="llmlingua is not installed (dev extra)")
    from mooscomp.counting import cl100k_rank_file

    cache = tmp_path / "tiktoken"  # tiktoken's offline cache: the file named by its URL's sha1
    cache.mkdir()
    import gzip

    (cache / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").write_bytes(
        gzip.decompress(cl100k_rank_file().read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    ref = llmlingua.PromptCompressor(model_name=str(hf_checkpoint), device_map="cpu",
                                     use_llmlingua2=True)
    want = ref.compress_prompt(text, rate=0.5, return_word_label=True)
    labels = [p.rsplit(" ", 1)[1] for p in want["fn_labeled_original_prompt"].split("\t\t|\t\t")]
    ours = [p.rsplit(" ", 1)[1] for p in out["fn_labeled_original_prompt"].split("\t\t|\t\t")]
    assert ours == labels and "0" in labels and "1" in labels
    # the same words kept (llmlingua re-joins them with its tokenizer: spacing may differ)
    assert "".join(out["compressed_prompt"].lower().split()) == "".join(want["compressed_prompt"].split())

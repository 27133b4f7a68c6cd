"""Shared fixtures: a tiny randomly initialised compressor built in-process (no network)."""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# exported ONNX graphs of test models go to a throw-away folder, not the user's ~/.cache
if "MOOSCOMP_CACHE" not in os.environ:
    import tempfile

    os.environ["MOOSCOMP_CACHE"] = tempfile.mkdtemp(prefix="mooscomp-test-cache-")

TINY_BERT = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir

    return resolve_base_dir(DEFAULT_BASE)


@pytest.fixture(scope="session")
def wordpiece_tokenizer(minilm_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir))


@pytest.fixture(scope="session")
def _tiny_compressor(wordpiece_tokenizer):
    import torch

    from mooscomp.compressor import Compressor
    from mooscomp.modeling import TokenCompressorModel

    torch.manual_seed(0)  # tests may seed; the library never does
    model = TokenCompressorModel.from_config_dict(TINY_BERT)
    return Compressor(model, wordpiece_tokenizer)


@pytest.fixture()
def tiny_compressor(_tiny_compressor):
    return copy.deepcopy(_tiny_compressor)


@pytest.fixture(scope="session")
def tiny_model_dir(_tiny_compressor, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny"
    _tiny_compressor.save_pretrained(path)
    return path


SAMPLE = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
    "a region in France. They were descended from Norse raiders and pirates from Denmark, Iceland "
    "and Norway who, under their leader Rollo, agreed to swear fealty to King Charles III of West "
    "Francia. Through generations of assimilation and mixing with the native Frankish and "
    "Roman-Gaulish populations, their descendants would gradually merge with the Carolingian-based "
    "cultures of West Francia. The distinct cultural and ethnic identity of the Normans emerged "
    "initially in the first half of the 10th century, and it continued to evolve over the "
    "succeeding centuries.\n\nThe Norman dynasty had a major political, cultural and military "
    "impact on medieval Europe and even the Near East. The Normans were famed for their martial "
    "spirit and eventually for their Christian piety, becoming exponents of the Catholic orthodoxy "
    "into which they assimilated. They adopted the Gallo-Romance language of the Frankish land "
    "they settled, their dialect becoming known as Norman, an important literary language. The "
    "Duchy of Normandy, which they formed by treaty with the French crown, was a great fief of "
    "medieval France, and under Richard I of Normandy was forged into a cohesive and formidable "
    "principality in feudal tenure. In 1066, William the Conqueror paid 3.5 million pennies."
)


@pytest.fixture()
def sample_text() -> str:
    return SAMPLE


def load_module(name: str, rel: str) -> ModuleType:
    """A script or benchmark (not part of the package) by its path below the repository root."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / rel)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

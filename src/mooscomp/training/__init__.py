"""Training a token compressor with the MOOS loss (CE + beta * inter-class cosine similarity).

``config.py`` holds ``TrainConfig``; ``data.py`` turns labelled documents into encoder chunks
exactly as inference chunks them (sub-tokens take their word's label; specials, padding and
word-less tokens are ignored) and splits train/validation by document id; ``loop.py`` runs
``train`` and ``export_model``; ``distill.py`` distils a smaller student from a trained model's
keep-probabilities; ``evaluate.py`` computes the validation metrics; ``checkpoint.py``
writes safetensors + JSON checkpoints (never pickle) atomically each epoch, verified by sha256 on
resume. Importing this package imports torch.
"""

from __future__ import annotations

from mooscomp.training.checkpoint import (
    CHECKPOINT_DIR,
    MANIFEST_FILE,
    MODEL_FILE,
    OPTIM_FILE,
    STATE_FILE,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint_model,
    save_checkpoint,
)
from mooscomp.training.config import TrainConfig
from mooscomp.training.data import (
    EncodedDoc,
    collate,
    encode_docs,
    load_label_shards,
    make_batches,
    split_by_document,
)
from mooscomp.training.distill import (
    DistillConfig,
    DistillResult,
    build_student,
    distill,
    save_student,
)
from mooscomp.training.evaluate import evaluate
from mooscomp.training.loop import (
    TrainProgress,
    TrainResult,
    export_model,
    resolve_device,
    train,
)
from mooscomp.training.params import encoder_layer_prefixes

__all__ = [
    "CHECKPOINT_DIR",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "OPTIM_FILE",
    "STATE_FILE",
    "CheckpointError",
    "DistillConfig",
    "DistillResult",
    "EncodedDoc",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "build_student",
    "collate",
    "distill",
    "encode_docs",
    "encoder_layer_prefixes",
    "evaluate",
    "export_model",
    "latest_checkpoint",
    "load_checkpoint",
    "load_label_shards",
    "make_batches",
    "read_checkpoint_model",
    "resolve_device",
    "save_checkpoint",
    "save_student",
    "split_by_document",
    "train",
]

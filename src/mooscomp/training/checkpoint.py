"""Training checkpoints: safetensors + JSON (never pickle), one folder per epoch.

``root/epoch-NNNN/`` holds the trainable weights, the optimizer tensors, ``trainer_state.json``
(format, epoch, config, optimizer/scheduler state, history, best epoch) and a sha256 manifest. A
folder is written under a temporary name and renamed, so a crash never leaves a half checkpoint;
resuming verifies every file against the manifest and refuses a different configuration.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mooscomp._util import sha256_file
from mooscomp.training.config import TrainConfig
from mooscomp.training.params import trainable_state

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "MANIFEST.json"
_CKPT_FORMAT = "mooscomp-train-checkpoint/1"


class CheckpointError(ValueError):
    """A training checkpoint is missing, corrupt or belongs to a different configuration."""


def ckpt_name(epoch: int) -> str:
    """Folder name of one epoch's checkpoint (sorts by epoch)."""
    return f"epoch-{epoch:04d}"


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder (temporary folders of a crashed write are skipped)."""
    r = Path(root)
    if not r.is_dir():
        return None
    done = [p for p in r.iterdir() if p.is_dir() and p.name.startswith("epoch-") and "." not in p.name]
    return max(done, key=lambda p: p.name) if done else None


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state -> (tensors for safetensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        _, pid, k = name.split(".", 2)
        state.setdefault(int(pid), {})[k] = t
    for pid, st in meta.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    root: str | Path,
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: TrainConfig,
    state: dict[str, Any],
) -> Path:
    """Write ``root/epoch-NNNN`` atomically (temp folder + rename), then prune older ones
    except the best epoch's (needed to restore the best weights on resume)."""
    from safetensors.torch import save_file

    r = Path(root)
    r.mkdir(parents=True, exist_ok=True)
    final = r / ckpt_name(epoch)
    tmp = r / f"{ckpt_name(epoch)}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / MODEL_FILE))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(tmp / OPTIM_FILE))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    body = {
        "format": _CKPT_FORMAT,
        "epoch": epoch,
        "config": config.to_dict(),
        "optimizer": opt_meta,
        "scheduler": sched,
        **state,
    }
    (tmp / STATE_FILE).write_text(json.dumps(body, indent=1, default=float))
    manifest = {n: sha256_file(tmp / n) for n in (MODEL_FILE, OPTIM_FILE, STATE_FILE)}
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    keep = {final.name, ckpt_name(int(state.get("best_epoch") or 0))}
    for p in r.iterdir():
        if p.is_dir() and p.name.startswith("epoch-") and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
    return final


def _verify(folder: Path) -> None:
    mpath = folder / MANIFEST_FILE
    if not mpath.is_file():
        raise CheckpointError(f"{mpath} is missing: incomplete checkpoint (delete {folder} to restart)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{mpath} is corrupt (not JSON: {e})") from None
    for name in (MODEL_FILE, OPTIM_FILE, STATE_FILE):
        p = folder / name
        if not p.is_file():
            raise CheckpointError(f"{p} is missing from the checkpoint")
        want = manifest.get(name) if isinstance(manifest, dict) else None
        got = sha256_file(p)
        if got != want:
            raise CheckpointError(f"{p} is corrupt: sha256 {got} differs from the {want} in {mpath}")


def read_checkpoint_model(folder: str | Path) -> dict[str, torch.Tensor]:
    """The trainable weights stored in a checkpoint folder (verified)."""
    from safetensors.torch import load_file

    f = Path(folder)
    _verify(f)
    try:
        return load_file(str(f / MODEL_FILE))
    except Exception as e:  # safetensors raises several types on bad files
        raise CheckpointError(f"{f / MODEL_FILE} cannot be read as safetensors: {e}") from None


def load_checkpoint(
    folder: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: TrainConfig,
) -> dict[str, Any]:
    """Restore model/optimizer/scheduler from a checkpoint; returns the trainer state."""
    from safetensors.torch import load_file

    f = Path(folder)
    weights = read_checkpoint_model(f)
    state = json.loads((f / STATE_FILE).read_text())
    if state.get("format") != _CKPT_FORMAT:
        raise CheckpointError(f"{f / STATE_FILE}: format {state.get('format')!r}, expected {_CKPT_FORMAT!r}")
    saved = dict(state.get("config") or {})
    now = json.loads(json.dumps(config.to_dict()))  # tuples as the lists JSON gave back
    diff = sorted(k for k in set(saved) | set(now) if k != "device" and saved.get(k) != now.get(k))
    if diff:
        raise CheckpointError(
            f"{f / STATE_FILE} was written with a different configuration ("
            + ", ".join(f"{k}: {saved.get(k)!r} != {now.get(k)!r}" for k in diff)
            + "); use another out_dir or the same configuration"
        )
    own = dict(model.named_parameters())
    expected = {n for n, p in own.items() if p.requires_grad}
    if set(weights) != expected:
        raise CheckpointError(
            f"{f / MODEL_FILE}: holds {len(weights)} tensors, expected the {len(expected)} trainable ones"
        )
    with torch.no_grad():
        for n, t in weights.items():
            if tuple(t.shape) != tuple(own[n].shape):
                raise CheckpointError(f"{f / MODEL_FILE}: {n} has shape {tuple(t.shape)}, expected {tuple(own[n].shape)}")
            own[n].copy_(t.to(own[n].device, own[n].dtype))
    try:
        opt_tensors = load_file(str(f / OPTIM_FILE))
    except Exception as e:
        raise CheckpointError(f"{f / OPTIM_FILE} cannot be read as safetensors: {e}") from None
    dev = next(iter(own.values())).device
    opt_sd = _unflatten_optimizer({k: v.to(dev) for k, v in opt_tensors.items()}, state["optimizer"])
    try:
        optimizer.load_state_dict(opt_sd)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{f / OPTIM_FILE} does not match the optimizer: {e}") from None
    # AdamW keeps "step" on the CPU unless capturable; restore as written.
    for st in optimizer.state.values():
        if "step" in st and isinstance(st["step"], torch.Tensor):
            st["step"] = st["step"].cpu()
    sched = dict(scheduler.state_dict())
    sched.update(state.get("scheduler") or {})
    scheduler.load_state_dict(sched)
    return state

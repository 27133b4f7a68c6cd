"""β ablation of the MOOS loss and the storage-choice comparison (full fine-tune vs top-k layers).

Every run uses the same documents and the same document-level validation split; the report's
``summary.runs`` lists ``{beta, seed, val_f1, val_acc, last_layer_cos}`` per run. Used by
``scripts/device/train_job.py`` (GPU) and runnable alone on CPU with tiny settings:

    PYTHONPATH=src python benchmarks/train_ablation.py --synthetic 40 --epochs 1 --out /tmp/abl
    PYTHONPATH=src python benchmarks/train_ablation.py --plot reports/training_ablation.json
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_BETAS = (0.0, 0.1, 0.5, 1.0)
DEFAULT_SEEDS = (0, 1)


def synthetic_docs(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Stand-in corpus for smoke runs: capitalised and numeric words are 'keep'."""
    from mooscomp.alignment import segment_words

    rng = random.Random(seed)
    filler = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "it", "by", "at", "from", "this", "be", "or", "an"]
    names = ["Paris", "Lyon", "Alice", "Bob", "Tokyo", "Rome", "Delta", "Kappa", "Nile", "Oslo", "March", "Smith"]
    docs = []
    for d in range(n):
        sents = []
        for _ in range(rng.randint(3, 12)):
            ws = [rng.choice(names) if rng.random() < 0.25 else
                  str(rng.randint(1, 9999)) if rng.random() < 0.08 else rng.choice(filler)
                  for _ in range(rng.randint(5, 20))]
            sents.append(" ".join(ws) + rng.choice([".", ".", "?", "!\n"]))
        text = " ".join(sents)
        labels = [int(w[:1].isupper() or w.isdigit()) for w in segment_words(text).tolist()]
        docs.append({"doc_id": f"syn{d}", "source": "synthetic", "text": text, "labels": labels})
    return docs


def load_docs(patterns: Sequence[str], *, max_docs: int | None, synthetic: int) -> tuple[list[dict], dict]:
    from mooscomp.training import load_label_shards

    if synthetic:
        docs = synthetic_docs(synthetic)
        return docs, {"kind": "synthetic", "n_docs": len(docs)}
    paths = sorted({p for pat in patterns for p in glob.glob(pat, recursive=True)})
    if not paths:
        raise SystemExit(f"no labelled shards match {list(patterns)} (use --synthetic N for a smoke run)")
    docs = load_label_shards(paths)
    # deterministic subsample across sources (shards are ordered by source)
    if max_docs is not None and len(docs) > max_docs:
        docs = sorted(docs, key=lambda d: hash_id(str(d.get("doc_id"))))[:max_docs]
    sources: dict[str, int] = {}
    for d in docs:
        sources[str(d.get("source"))] = sources.get(str(d.get("source")), 0) + 1
    return docs, {"kind": "labels", "shards": paths, "n_docs": len(docs), "sources": sources}


def hash_id(s: str) -> str:
    from mooscomp._util import sha256_bytes

    return sha256_bytes(s.encode())


def run_one(encoded: list, *, encoder: str, beta: float, seed: int, top_layers: int | None,
            epochs: int, work: Path, common: dict[str, Any], val_fraction: float = 0.1,
            log: Callable[[str], None] = print,
            word_shape: tuple[str, ...] = ()) -> tuple[dict[str, Any], Any]:
    from mooscomp.training import TrainConfig, train

    cfg = TrainConfig(encoder=encoder, beta=beta, seed=seed, trainable_top_layers=top_layers,
                      epochs=epochs, val_fraction=val_fraction, word_shape=word_shape, **common)
    name = f"{'top' + str(top_layers) if top_layers else 'full'}{'_shape' if word_shape else ''}_b{beta:g}_s{seed}"
    if val_fraction == 0:
        name += "_all"
    t0 = time.perf_counter()
    res = train(cfg, encoded, out_dir=work / name)
    m = res.best_metrics or {}
    row = {
        "name": name,
        "beta": beta,
        "seed": seed,
        "trainable": f"top{top_layers}" if top_layers else "full",
        "word_shape": list(word_shape),
        "val_f1": m.get("f1"),
        "val_acc": m.get("accuracy"),
        "val_precision": m.get("precision"),
        "val_recall": m.get("recall"),
        "last_layer_cos": m.get("last_layer_cos"),
        "layer_cos": m.get("layer_cos"),
        "best_epoch": res.best_epoch,
        "epochs_run": len(res.history),
        "seconds": round(time.perf_counter() - t0, 1),
        "train_tokens_per_epoch": res.train_tokens_per_epoch,
        "history": [{k: v for k, v in h.items() if k != "val"} | {
            "val_f1": (h.get("val") or {}).get("f1"),
            "val_last_layer_cos": (h.get("val") or {}).get("last_layer_cos")} for h in res.history],
    }
    f1 = f"{row['val_f1']:.4f}" if row["val_f1"] is not None else "-"
    cos = f"{row['last_layer_cos']:.4f}" if row["last_layer_cos"] is not None else "-"
    log(f"[{name}] f1 {f1} S^L {cos} best epoch {res.best_epoch} ({row['seconds']}s)")
    return row, res


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (trainable, beta): mean/std over seeds; the storage cost in F1 per beta."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        if r.get("val_f1") is not None:
            groups.setdefault((r["trainable"], r["beta"]), []).append(r)

    def ms(vals: list[float]) -> dict[str, float]:
        return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}

    by = []
    for (tr, beta), rs in sorted(groups.items()):
        by.append({"trainable": tr, "beta": beta, "n_seeds": len(rs),
                   "val_f1": ms([r["val_f1"] for r in rs]), "val_acc": ms([r["val_acc"] for r in rs]),
                   "last_layer_cos": ms([r["last_layer_cos"] for r in rs])})
    storage = []
    trainables = sorted({tr for tr, _ in groups})
    if "full" in trainables:
        for tr in (t for t in trainables if t != "full"):
            for beta in sorted({b for t, b in groups if t == tr}):
                if ("full", beta) not in groups:
                    continue
                seeds = sorted({r["seed"] for r in groups[("full", beta)]}
                               & {r["seed"] for r in groups[(tr, beta)]})
                if not seeds:  # compare like with like: the same seeds on both sides
                    continue
                f = statistics.fmean(r["val_f1"] for r in groups[("full", beta)] if r["seed"] in seeds)
                k = statistics.fmean(r["val_f1"] for r in groups[(tr, beta)] if r["seed"] in seeds)
                storage.append({"beta": beta, "stored": tr, "seeds": seeds, "full_f1": f,
                                "stored_f1": k, "f1_cost": f - k})
    return {"by_setting": by, "storage_cost": storage}


def best_beta(rows: list[dict[str, Any]], trainable: str) -> float:
    """β with the highest mean validation F1 (ties: the smaller β)."""
    by: dict[float, list[float]] = {}
    for r in rows:
        if r["trainable"] == trainable and r.get("val_f1") is not None:
            by.setdefault(r["beta"], []).append(r["val_f1"])
    if not by:
        raise ValueError(f"no finished {trainable} runs to choose beta from")
    return max(sorted(by), key=lambda b: statistics.fmean(by[b]))


TRAINABLE_LABELS = {
    "top2": "top 2 layers + head trained",
    "top6": "6 layers + head, no word shapes",
    "full": "all 6 layers + head trained",
    "top2+shape": "top 2 layers + head, word shapes",
    "top6+shape": "6 layers + head, word shapes",
    "full+shape": "everything incl. embeddings, word shapes",
}


def _setting(r: dict[str, Any]) -> str:
    """A run's setting: what was trained, and whether the head saw word shapes."""
    return r["trainable"] + ("+shape" if r.get("word_shape") else "")


def plot(report: dict[str, Any], png: str | Path) -> bool:
    """Keep/drop similarity per layer (per β, mean over seeds) and F1 vs β, the shipped model
    marked; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [{**r, "trainable": _setting(r), "word_shape": []} for r in report["summary"]["runs"]
            if r.get("layer_cos")]
    trainables = sorted({r["trainable"] for r in rows}, reverse=True)  # top2 first
    shown = [t for t in trainables if len({r["beta"] for r in rows if r["trainable"] == t}) > 1] or trainables
    down = [r for r in rows if r.get("answer_survival_4x") is not None]
    n = len(shown) + 1 + bool(down)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2))
    for ax, tr in zip(axes[: len(shown)], shown, strict=True):
        _plot_layers(ax, report, rows, tr)
    _plot_f1(axes[len(shown)], report, rows, trainables)
    if down:
        _plot_survival(axes[-1], down)
    fig.suptitle("MOOS loss weight β: what it does to the token states and to keep/drop F1")
    fig.tight_layout()
    fig.savefig(str(png), dpi=110)
    plt.close(fig)
    return True


def _plot_layers(ax: Any, report: dict[str, Any], rows: list[dict[str, Any]], tr: str) -> None:
    init = report.get("initial_layer_cos")
    if init:
        ax.plot(range(len(init)), init, "k--", label="before training")
    for beta in sorted({r["beta"] for r in rows if r["trainable"] == tr}):
        rs = [r["layer_cos"] for r in rows if r["trainable"] == tr and r["beta"] == beta]
        mean = [statistics.fmean(v) for v in zip(*rs, strict=True)]
        name = "β = 0 (cross-entropy only)" if beta == 0 else f"β = {beta:g}"
        ax.plot(range(len(mean)), mean, marker="o", label=name)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("layer (0 = embeddings, 6 = last)")
    ax.set_ylabel("cosine similarity, keep vs drop tokens")
    ax.set_title(TRAINABLE_LABELS.get(tr, tr), fontsize=10)
    ax.legend(fontsize=8)


def _plot_f1(ax: Any, report: dict[str, Any], rows: list[dict[str, Any]],
             trainables: list[str]) -> None:
    for i, tr in enumerate(trainables):
        pts = [(r["beta"], r["val_f1"]) for r in rows if _setting(r) == tr]
        color = ("tab:purple", "tab:grey", "tab:olive", "tab:blue", "tab:red")[i % 5]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], alpha=0.4, color=color, s=14)
        betas = sorted({p[0] for p in pts})
        ax.plot(betas, [statistics.fmean(f for b, f in pts if b == x) for x in betas],
                marker="o", color=color, label=TRAINABLE_LABELS.get(tr, tr))
    final = report.get("final") or {}
    shipped = [r["val_f1"] for r in rows
               if _setting(r) == final.get("trainable") and r["beta"] == final.get("beta")]
    if shipped:
        y = statistics.fmean(shipped)
        ax.scatter([final["beta"]], [y], marker="*", s=260, color="gold", edgecolor="black",
                   zorder=5, label="shipped model")
        ax.annotate(f"shipped: {TRAINABLE_LABELS.get(final['trainable'], final['trainable'])},"
                    f" β = {final['beta']:g}", (final["beta"], y), textcoords="offset points",
                    xytext=(12, 8), fontsize=8)
    ax.set_xlabel("β (weight of the MOOS similarity loss)")
    ax.set_ylabel("keep/drop F1 on validation tokens")
    ax.set_title("F1 vs β (small dots: single seeds)", fontsize=10)
    ax.legend(fontsize=8)


def _plot_survival(ax: Any, rows: list[dict[str, Any]]) -> None:
    """Dev answer survival at 4x (no question) per run, by setting and β."""
    for i, tr in enumerate(sorted({r["trainable"] for r in rows}, reverse=True)):
        pts = sorted((r["beta"], r["answer_survival_4x"]) for r in rows if r["trainable"] == tr)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ls="-" if len(pts) > 1 else "",
                color=("tab:purple", "tab:grey", "tab:olive", "tab:blue", "tab:red")[i % 5],
                label=TRAINABLE_LABELS.get(tr, tr))
    ax.set_xlabel("β (weight of the MOOS similarity loss)")
    ax.set_ylabel("dev answer survival at 4x (SQuAD + HotpotQA)")
    ax.set_title("What β does downstream (seed 0)", fontsize=10)
    ax.legend(fontsize=7)


def initial_layer_cos(encoded: list, encoder: str, *, val_fraction: float, batch_size: int,
                      device: str) -> list[float]:
    """S^l of the pretrained encoder on the validation split (before any training)."""
    from transformers import AutoTokenizer

    from mooscomp.modeling import TokenCompressorModel
    from mooscomp.training import evaluate, resolve_device, split_by_document

    _, va = split_by_document([d.doc_id for d in encoded], val_fraction)
    val = [c for i in va for c in encoded[i].chunks]
    if not val:
        return []
    dev = resolve_device(device)
    model = TokenCompressorModel.from_encoder_dir(encoder).to(dev)
    tok = AutoTokenizer.from_pretrained(encoder)
    return evaluate(model, val, batch_size=batch_size, pad_id=tok.pad_token_id or 0, device=dev)["layer_cos"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", metavar="JSON", help="only redraw the PNG of an existing report")
    ap.add_argument("--data", action="append", default=[], metavar="GLOB")
    ap.add_argument("--synthetic", type=int, default=0, help="use N synthetic docs (smoke run)")
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--encoder", help="encoder folder (default: pip-installed MiniLM-L6)")
    ap.add_argument("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    ap.add_argument("--top-layers", type=int, nargs="+", default=[2, 0],
                    help="settings to compare: k = top-k layers + head, 0 = full fine-tune")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="reports", help="folder for training_ablation.json/.png")
    ap.add_argument("--work", default="/tmp/mooscomp_ablation", help="run folders (checkpoints)")
    args = ap.parse_args(argv)
    if args.plot:
        rep = json.loads(Path(args.plot).read_text())
        png = Path(args.plot).with_suffix(".png")
        print(f"wrote {png}" if plot(rep, png) else "matplotlib is missing")
        return 0
    report = run_ablation(args, log=lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_ablation.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "training_ablation.png")
    print(json.dumps(report["summary"]["by_setting"], indent=1))
    return 0


def prepare(args: argparse.Namespace, encoder: str,
            word_shape: tuple[str, ...] = ()) -> tuple[list, dict[str, Any]]:
    """Load and encode the corpus once for all runs (shape ids for ``word_shape``)."""
    from transformers import AutoTokenizer

    from mooscomp.training import encode_docs

    t0 = time.perf_counter()
    docs, info = load_docs(args.data or ["data/labels/**/*.jsonl.gz"], max_docs=args.max_docs,
                           synthetic=args.synthetic)
    tok = AutoTokenizer.from_pretrained(encoder)
    encoded = encode_docs(docs, tok, max_length=args.max_length, word_shape=word_shape)
    info["n_chunks"] = sum(len(d.chunks) for d in encoded)
    info["n_tokens"] = sum(len(c[0]) for d in encoded for c in d.chunks)
    info["encode_seconds"] = round(time.perf_counter() - t0, 1)
    return encoded, info


def common_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"lr": args.lr, "batch_size": args.batch_size, "max_length": args.max_length,
            "device": args.device, "patience": 2}


def run_ablation(args: argparse.Namespace, *, log: Callable[[str], None],
                 budget_s: float | None = None, reserve_runs: float = 0.0,
                 encoded: list | None = None, data_info: dict | None = None) -> dict[str, Any]:
    """All (top_layers, seed, beta) runs, shipped setting first. With a time budget, runs that
    would not fit are skipped (listed in ``skipped``), keeping ``reserve_runs`` times the mean
    run time of the first setting for the final trainings."""
    from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir

    t_start = time.perf_counter()
    encoder = args.encoder or str(resolve_base_dir(DEFAULT_BASE))
    if encoded is None or data_info is None:
        encoded, data_info = prepare(args, encoder)
    log(f"data: {data_info['n_docs']} docs, {data_info['n_chunks']} chunks, "
        f"{data_info['n_tokens']} tokens ({data_info['encode_seconds']}s)")
    common = common_settings(args)
    init = initial_layer_cos(encoded, encoder, val_fraction=0.1, batch_size=args.batch_size * 2,
                             device=args.device)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    secs: dict[int, list[float]] = {}
    work = Path(args.work)
    for top in args.top_layers:
        for seed in args.seeds:
            for beta in args.betas:
                est = statistics.fmean(secs[top]) if secs.get(top) else 0.0
                left = None if budget_s is None else budget_s - (time.perf_counter() - t_start)
                first = secs.get(args.top_layers[0]) or [est]
                reserve = reserve_runs * statistics.fmean(first)
                if left is not None and left - 1.2 * est < reserve:
                    skipped.append({"beta": beta, "seed": seed, "top_layers": top,
                                    "why": f"time budget ({left:.0f}s left, run ~{est:.0f}s)"})
                    log(f"skip top{top} beta {beta} seed {seed}: time budget")
                    continue
                row, _ = run_one(encoded, encoder=encoder, beta=beta, seed=seed,
                                 top_layers=top or None, epochs=args.epochs, work=work,
                                 common=common, log=log)
                rows.append(row)
                secs.setdefault(top, []).append(row["seconds"])
    summary = summarize(rows)
    summary["runs"] = [{k: r[k] for k in ("beta", "seed", "trainable", "val_f1", "val_acc",
                                          "last_layer_cos", "layer_cos", "best_epoch", "epochs_run",
                                          "seconds")} for r in rows]
    return {
        "what": "MOOS loss beta ablation and storage choice (top-k layers + head vs full fine-tune)",
        "metric_note": "token-level keep-class metrics on a document-level validation split "
                       "(10%, by sha256 of doc_id); S^l = mean over val chunks of the inter-class "
                       "cosine similarity of layer l (0 = embeddings), gold labels",
        "data": data_info,
        "encoder": encoder,
        "settings": {**common, "epochs": args.epochs, "betas": args.betas, "seeds": args.seeds,
                     "top_layers": args.top_layers, "val_fraction": 0.1},
        "initial_layer_cos": init,
        "summary": summary,
        "skipped": skipped,
        "runs_detail": rows,
        "seconds": round(time.perf_counter() - t_start, 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())

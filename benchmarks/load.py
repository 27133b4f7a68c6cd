"""Load test of ``mooscomp serve`` on loopback: many concurrent clients, good and bad requests.

Starts ``mooscomp serve`` on 127.0.0.1 (a free port) with the tiny random model (default; fast) or
the shipped model (``--model default``), then runs ``--clients`` concurrent clients for
``--seconds``. About ``--bad-share`` of the requests are bad on purpose (malformed JSON, wrong
types, empty text, invalid rates, unknown fields, bodies over the limit) and must get their 4xx;
a health probe runs throughout. An error is a connection failure, a timeout, a 5xx, or any status
other than the expected one. Requests only go to 127.0.0.1; every loop is bounded in time.

Usage: .venv/bin/python benchmarks/load.py [--clients 50] [--seconds 60]
Writes reports/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
HOST = "127.0.0.1"
BODY_LIMIT = 64 * 1024
TINY_BERT = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}


def tiny_model(path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer

    from mooscomp.compressor import Compressor
    from mooscomp.modeling import DEFAULT_BASE, TokenCompressorModel, resolve_base_dir

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(resolve_base_dir(DEFAULT_BASE)))
    Compressor(TokenCompressorModel.from_config_dict(TINY_BERT), tok).save_pretrained(path)
    return path


def texts() -> list[str]:
    from speed_onnx import doc_paragraphs, squad_paragraphs

    paras = squad_paragraphs() or doc_paragraphs()
    random.Random(0).shuffle(paras)
    return paras[:500]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def bad_requests() -> list[tuple[str, bytes, dict[str, str], int]]:
    j = {"content-type": "application/json"}
    big = json.dumps({"text": "word " * (BODY_LIMIT // 4), "rate": 0.5}).encode()
    return [
        ("malformed_json", b'{"text": "abc", "rate": 0.5', j, 400),
        ("not_json", b"text=abc", {"content-type": "text/plain"}, 415),
        ("wrong_type", json.dumps({"text": 42, "rate": 0.5}).encode(), j, 422),
        ("missing_text", json.dumps({"rate": 0.5}).encode(), j, 422),
        ("empty_text", json.dumps({"text": "", "rate": 0.5}).encode(), j, 422),
        ("rate_above_1", json.dumps({"text": "a b c", "rate": 3}).encode(), j, 422),
        ("rate_zero", json.dumps({"text": "a b c", "rate": 0}).encode(), j, 422),
        ("rate_nan", b'{"text": "a b c", "rate": NaN}', j, 422),
        ("both_budgets", json.dumps({"text": "a", "rate": 0.5, "target_tokens": 4}).encode(), j, 422),
        ("unknown_field", json.dumps({"text": "a", "rate": 0.5, "x": 1}).encode(), j, 422),
        ("too_large", big, j, 413),
    ]


async def client(
    http: Any, rng: random.Random, corpus: list[str], deadline: float, bad_share: float,
    log: list[dict[str, Any]],
) -> None:
    bads = bad_requests()
    while time.monotonic() < deadline:
        if rng.random() < bad_share:
            kind, body, headers, want = rng.choice(bads)
        else:
            n = rng.randint(1, 3)
            body = json.dumps(
                {
                    "text": "\n\n".join(rng.sample(corpus, n)),
                    "rate": rng.choice([0.2, 0.33, 0.5, 0.7]),
                    "return_scores": rng.random() < 0.2,
                }
            ).encode()
            kind, headers, want = "good", {"content-type": "application/json"}, 200
        t = time.perf_counter()
        status, err = 0, ""
        try:
            r = await http.post("/v1/compress", content=body, headers=headers)
            status = r.status_code
            if status != 200:
                msg = r.json().get("error", {}).get("message")
                if not msg:
                    err = "4xx without a message"
        except Exception as e:  # noqa: BLE001 - every failure is counted
            err = f"{type(e).__name__}: {e}"
        dt = time.perf_counter() - t
        if not err and status != want:
            err = f"status {status}, expected {want}"
        log.append({"kind": kind, "status": status, "seconds": dt, "error": err})


async def prober(http: Any, deadline: float, out: list[float], errors: list[str]) -> None:
    while time.monotonic() < deadline:
        t = time.perf_counter()
        try:
            r = await http.get("/healthz")
            if r.status_code != 200:
                errors.append(f"healthz {r.status_code}")
        except Exception as e:  # noqa: BLE001
            errors.append(f"healthz {type(e).__name__}")
        out.append(time.perf_counter() - t)
        await asyncio.sleep(0.5)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


async def run_load(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    corpus = texts()
    log: list[dict[str, Any]] = []
    probes: list[float] = []
    probe_errors: list[str] = []
    limits = httpx.Limits(max_connections=args.clients + 5, max_keepalive_connections=args.clients + 5)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as http:
        t0 = time.monotonic()
        deadline = t0 + args.seconds
        tasks = [
            client(http, random.Random(i), corpus, deadline, args.bad_share, log)
            for i in range(args.clients)
        ]
        await asyncio.gather(*tasks, prober(http, deadline, probes, probe_errors))
        elapsed = time.monotonic() - t0
    good = [e["seconds"] for e in log if e["kind"] == "good" and not e["error"]]
    bad = [e for e in log if e["kind"] != "good"]
    errors = [e for e in log if e["error"]] + [{"error": x} for x in probe_errors]
    by_kind: dict[str, dict[str, int]] = {}
    for e in log:
        d = by_kind.setdefault(e["kind"], {})
        d[str(e["status"])] = d.get(str(e["status"]), 0) + 1
    return {
        "requests": len(log),
        "good_requests": sum(e["kind"] == "good" for e in log),
        "bad_requests": len(bad),
        "errors": len(errors),
        "error_examples": sorted({e["error"] for e in errors})[:10],
        "elapsed_seconds": elapsed,
        "throughput_rps": len(log) / elapsed,
        "good_latency_ms": {
            "p50": 1000 * pct(good, 50),
            "p90": 1000 * pct(good, 90),
            "p99": 1000 * pct(good, 99),
            "max": 1000 * max(good, default=float("nan")),
            "mean": 1000 * (statistics.fmean(good) if good else float("nan")),
        },
        "bad_latency_ms": {
            "p50": 1000 * pct([e["seconds"] for e in bad], 50),
            "p99": 1000 * pct([e["seconds"] for e in bad], 99),
        },
        "healthz_latency_ms": {"p50": 1000 * pct(probes, 50), "p99": 1000 * pct(probes, 99)},
        "healthz_probes": len(probes),
        "status_by_kind": by_kind,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--bad-share", type=float, default=0.2)
    ap.add_argument("--model", default="tiny", help="'tiny' (random 2-layer BERT), 'default', or a dir")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "load.json")
    args = ap.parse_args()
    if not 1 <= args.clients <= 1000 or not 0 < args.seconds <= 600:
        sys.exit("clients must be in [1, 1000] and seconds in (0, 600]")

    tmp = Path(tempfile.mkdtemp(prefix="mooscomp-load-"))
    model_args: list[str] = []
    if args.model == "tiny":
        model_args = ["--model", str(tiny_model(tmp / "tiny"))]
    elif args.model != "default":
        model_args = ["--model", args.model]
    port = free_port()
    cmd = [
        sys.executable, "-c", "import sys; from mooscomp.cli import main; sys.exit(main())",
        "serve", "--host", HOST, "--port", str(port), "--workers", str(args.workers),
        "--max-body-bytes", str(BODY_LIMIT), *model_args,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - the server writes to it until the end
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://{HOST}:{port}"
    try:
        import httpx

        t0 = time.monotonic()
        while True:
            if server.poll() is not None:
                sys.exit(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > 180:
                sys.exit("server did not start in 180 s")
            time.sleep(0.3)
        startup = time.monotonic() - t0
        result = asyncio.run(run_load(url, args))
        alive = httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    report = {
        "benchmark": "load",
        "what": f"{args.clients} concurrent clients for {args.seconds:.0f} s against mooscomp serve "
        f"on loopback; ~{args.bad_share:.0%} deliberately bad requests (expected 4xx)",
        "model": args.model if args.model != "tiny" else "tiny random BERT (2 layers, hidden 32)",
        "server": {"workers": args.workers, "max_body_bytes": BODY_LIMIT, "startup_seconds": startup},
        "clients": args.clients,
        "seconds": args.seconds,
        "summary": {
            "errors": result["errors"],
            "p50_ms": result["good_latency_ms"]["p50"],
            "p99_ms": result["good_latency_ms"]["p99"],
            "requests": result["requests"],
            "bad_requests": result["bad_requests"],
            "throughput_rps": result["throughput_rps"],
            "alive_after": alive,
        },
        "detail": result,
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    return 0 if result["errors"] == 0 and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())

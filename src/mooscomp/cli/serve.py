"""``mooscomp serve``: the HTTP service and demo page (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the HTTP service and the demo page")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        default="auto",
        help="forward backend: auto (onnxruntime fp32 on a CPU when installed, else torch), torch, "
        "onnxruntime fp32, or onnxruntime int8 (changes some kept words; needs the onnx extra)",
    )
    p.add_argument("--workers", type=int, default=1, help="compression threads (default 1)")
    p.add_argument(
        "--max-body-bytes", type=int, default=2 * 1024 * 1024, help="request body limit"
    )
    p.add_argument("--max-pending", type=int, default=256, help="queued requests before 503")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mooscomp.cli import UserError

    try:
        import uvicorn

        from mooscomp.server import ServerOptions, create_app
    except ImportError as e:
        raise UserError(
            f"the service needs the serve extra ({e.name} is missing): pip install 'mooscomp[serve]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in [0, 65535], got {args.port}")
    ServerOptions(  # validate before the slow model load
        max_body_bytes=args.max_body_bytes, workers=args.workers, max_pending=args.max_pending
    )
    comp = _load(args)
    app = create_app(
        comp,
        max_body_bytes=args.max_body_bytes,
        workers=args.workers,
        max_pending=args.max_pending,
        model_name=str(args.model or "default"),
    )
    sys.stderr.write(f"mooscomp: serving on http://{args.host}:{args.port}/ (Ctrl-C stops)\n")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _load(args: argparse.Namespace) -> Any:
    from mooscomp.cli import UserError
    from mooscomp.compressor import Compressor
    from mooscomp.modeling import ModelFormatError

    if args.backend == "onnx-int8":
        try:
            from mooscomp.onnx_runtime import OnnxOptions, onnx_compressor
        except ImportError as e:
            raise UserError(
                f"--backend {args.backend} needs the onnx extra ({e.name} is missing): "
                "pip install 'mooscomp[onnx]'"
            ) from None
    try:
        comp = Compressor.from_pretrained(
            args.model,
            device=args.device,
            backend="torch" if args.backend == "onnx-int8" else args.backend,
        )
    except (ModelFormatError, ValueError) as e:  # ValueError: a backend or device this machine lacks
        raise UserError(str(e)) from None
    if args.backend == "onnx-int8":
        comp = onnx_compressor(comp, options=OnnxOptions(quantize=True))
    return comp

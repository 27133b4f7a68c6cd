"""``mooscomp serve``: the HTTP service and demo page (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
import sys
from typing import Any

INSTALL_HINT = "bash scripts/setup.sh serve (or .venv/bin/pip install -e '.[serve]') in the checkout"


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
    p.add_argument(
        "--api-key",
        help="require 'Authorization: Bearer KEY' under /v1/ (default: $MOOSCOMP_API_KEY; the "
        "variable keeps the key out of the process list)",
    )
    p.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="allow browser calls from ORIGIN, e.g. https://app.example (repeatable; default: none)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mooscomp.cli import UserError

    try:
        import uvicorn

        from mooscomp.server import ServerOptions, create_app
    except ImportError as e:
        raise UserError(
            f"the service needs the serve extra ({e.name} is missing): {INSTALL_HINT}"
        ) from None
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in [0, 65535], got {args.port}")
    api_key = args.api_key if args.api_key is not None else os.environ.get("MOOSCOMP_API_KEY")
    opts = ServerOptions(  # validate before the slow model load
        max_body_bytes=args.max_body_bytes, workers=args.workers, max_pending=args.max_pending,
        api_key=api_key or None, cors_origins=tuple(args.cors_origin),
    )
    sock, loopback = _listen(args.host, args.port)  # a busy port fails here, before loading
    if not loopback and opts.api_key is None:
        sys.stderr.write(
            f"mooscomp serve: warning: listening on {args.host} without an API key: anyone who can "
            "reach this machine can use the service (set MOOSCOMP_API_KEY or --api-key)\n"
        )
    comp = _load(args)
    app = create_app(
        comp,
        max_body_bytes=opts.max_body_bytes,
        workers=opts.workers,
        max_pending=opts.max_pending,
        model_name=str(args.model or "default"),
        api_key=opts.api_key,
        cors_origins=opts.cors_origins,
    )
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = " (API key required under /v1/)" if opts.api_key else ""
    sys.stderr.write(f"mooscomp: serving on http://{shown}:{port}/{auth} (Ctrl-C stops)\n")
    config = uvicorn.Config(app, log_level=args.log_level)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _listen(host: str, port: int) -> tuple[socket.socket, bool]:
    """A listening socket on host:port (one clear error if the port is taken); loopback or not."""
    from mooscomp.cli import UserError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise UserError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        reason = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise UserError(
            f"cannot listen on {host}:{port}: {reason} (stop the other server or pick another --port)"
        ) from None
    return sock, ipaddress.ip_address(str(addr[0]).split("%")[0]).is_loopback


def _load(args: argparse.Namespace) -> Any:
    from mooscomp.cli import UserError
    from mooscomp.compressor import Compressor
    from mooscomp.modeling import ModelFormatError

    if args.backend == "onnx-int8":
        try:
            from mooscomp.onnx_runtime import OnnxOptions, onnx_compressor
        except ImportError as e:
            raise UserError(
                f"--backend {args.backend} needs onnx and onnxruntime ({e.name} is missing): "
                "bash scripts/setup.sh (or .venv/bin/pip install -e .) in the checkout"
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

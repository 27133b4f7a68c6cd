"""HTTP service: ``POST /v1/compress``, ``GET /healthz``, a demo page at ``/`` and OpenAPI docs.

The compressor is built once by the caller and shared; compression runs in a small thread pool so
the event loop keeps answering (health checks, bad requests) while the model works. Every bad
request gets a 4xx JSON body ``{"error": {"type": ..., "message": ..., "details": [...]}}``:

- malformed JSON -> 400; body over ``max_body_bytes`` -> 413; a non-JSON content type -> 415;
- wrong types, missing or unknown fields, invalid budgets, empty text -> 422;
- too many requests waiting for the model -> 503 (with ``Retry-After``);
- with an API key set, ``/v1/*`` without ``Authorization: Bearer <key>`` -> 401.

The OpenAPI docs (``/docs``, ``/redoc``) are local copies (``fastapi-offline``, ``serve`` extra),
so they work offline. CORS headers are sent only for the origins given in ``cors_origins``.
Empty text is refused (422: almost certainly a client bug; the library returns an empty result).
Needs the ``serve`` extra (``fastapi``, ``uvicorn``).
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from mooscomp import __version__
from mooscomp._asgi import BearerAuth, BodyLimit
from mooscomp.config import CALL_OPTIONS
from mooscomp.result import TargetMissedWarning

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
_STATIC = "static"
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text} for code, text in (
        (400, "malformed JSON"), (401, "missing or wrong API key (only when the service has one)"),
        (413, "body too large"), (415, "not JSON"), (422, "invalid fields"), (503, "overloaded"))}


@dataclass(frozen=True)
class ServerOptions:
    """Limits of the service.

    Attributes:
        max_body_bytes: largest request body accepted (413 above it).
        workers: threads that run compressions concurrently (1 suits a small CPU: the model
            already uses every core).
        max_pending: compressions allowed to wait for a worker; more get 503.
        api_key: when set, ``/v1/*`` needs ``Authorization: Bearer <api_key>`` (never shown in
            the repr or any message).
        cors_origins: origins allowed to call the API from a browser on another origin (CORS);
            empty = no CORS headers at all. ``"*"`` allows any origin.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    workers: int = 1
    max_pending: int = 256
    api_key: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, low in (("max_body_bytes", 64), ("workers", 1), ("max_pending", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        key = self.api_key
        if key is not None and not (
            isinstance(key, str) and key and key.isascii() and key.isprintable() and " " not in key
        ):
            raise ValueError("api_key must be a non-empty string of printable ASCII without spaces")
        if isinstance(self.cors_origins, str):
            raise TypeError("cors_origins must be a sequence of origins, not a str")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        for o in self.cors_origins:
            if not (o == "*" or (isinstance(o, str) and o.startswith(("http://", "https://")))):
                raise ValueError(f"CORS origin must be '*' or start with http:// or https://, got {o!r}")


class FormatOptionsBody(BaseModel):
    """``format_options``: how structured input is treated (:class:`mooscomp.formats.FormatOptions`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    code_blocks: Literal["keep", "drop"] | None = Field(
        None, description="markdown code blocks: kept verbatim (default) or dropped whole")
    code: Literal["verbatim", "comments"] | None = Field(
        None, description="code: kept verbatim (default), or only comments/docstrings compressed")
    over_budget: Literal["warn", "error"] | None = Field(
        None, description="structure alone over the target: warn (default) or a 422 error")
    json_item_rate: float | None = Field(
        None, gt=0, le=1, description="JSON lists of objects keep this share of their items, "
        "the lowest-value ones dropped whole (default: every item kept)")


class CompressRequest(BaseModel):
    """Body of ``POST /v1/compress``: give ``text`` or ``contexts``, and ``rate`` or ``target_tokens``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | None = Field(None, description="the prompt to compress")
    contexts: list[str] | None = Field(
        None, description="several contexts compressed under one budget (instead of text)"
    )
    rate: float | None = Field(
        None, gt=0.0, le=1.0, allow_inf_nan=False,
        description="wanted compressed/original token ratio in (0, 1]",
    )
    target_tokens: int | None = Field(None, gt=0, description="wanted compressed token count")
    force_tokens: list[str] = Field(
        default_factory=list, max_length=1000, description="strings that are always kept"
    )
    question: str | None = Field(
        None, description="question the prompt will answer: question-aware selection (relevant "
        "sentences kept whole or lightly compressed); empty or blank = none; longer than the "
        "budget: 422")
    focus: float | None = Field(None, ge=0.0, le=100.0, allow_inf_nan=False, description="no "
                                "question: budget into the best sentences (0 = off, default)")
    focus_spread: float | None = Field(None, gt=0.0, le=1000.0, allow_inf_nan=False,
                                       description="focus bonus spans this many budgets")
    focus_per_paragraph: int | None = Field(None, ge=0, le=1000, description="focus: N best sentences per paragraph first")
    focus_first: int | None = Field(None, ge=0, le=1000, description="focus: N opening sentences per paragraph first")
    context_order: Literal["original", "relevance"] | None = Field(None, description="with a question: "
                                                                   "contexts in original order or best first")
    min_contexts: int | None = Field(None, ge=0, le=10**6, description="with a question: best sentence "
                                     "of the N most relevant contexts first")
    return_scores: bool = Field(False, description="include per-word keep_prob/outlier_z/score")
    format: Literal["auto", "raw", "text", "markdown", "json", "code"] | None = Field(None, description=(
        "input format: auto (default; detects Markdown, JSON, code or text and keeps their structure; plain "
        "prose compresses as raw), raw (word by word over the whole input), text, markdown, json (malformed "
        "JSON: 422), code"))
    format_options: FormatOptionsBody | None = Field(
        None, description="options of the structured formats (not with format 'raw')")

    @model_validator(mode="after")
    def _one_of_each(self) -> CompressRequest:
        if (self.text is None) == (self.contexts is None):
            raise ValueError("give exactly one of 'text' or 'contexts'")
        if (self.rate is None) == (self.target_tokens is None):
            raise ValueError("give exactly one of 'rate' (in (0, 1]) or 'target_tokens' (> 0)")
        if self.text is not None and not self.text.strip():
            raise ValueError("'text' is empty: nothing to compress")
        if self.contexts is not None and not any(c.strip() for c in self.contexts):
            raise ValueError("'contexts' has no non-empty context: nothing to compress")
        if self.format_options is not None and self.resolved_format == "raw":
            raise ValueError("'format_options' apply to structured formats, not to 'raw'")
        if self.contexts is not None and self.format not in (None, "auto", "raw"):
            raise ValueError(f"format {self.format!r} applies to 'text'; 'contexts' are "
                             "compressed raw under one budget")
        return self

    @property
    def resolved_format(self) -> str:
        """``format``, or its default, auto (every format returns per-word scores)."""
        return self.format or "auto"


def create_app(
    compressor: Any,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    workers: int = 1,
    max_pending: int = 256,
    model_name: str = "default",
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """The FastAPI application serving ``compressor`` (already loaded; shared by all requests)."""
    opts = ServerOptions(max_body_bytes=max_body_bytes, workers=workers, max_pending=max_pending,
                         api_key=api_key, cors_origins=tuple(cors_origins))
    pool = ThreadPoolExecutor(max_workers=opts.workers, thread_name_prefix="mooscomp")
    state = {"pending": 0}
    backend = str(getattr(compressor, "backend", type(compressor).__name__))  # torch / onnx / onnx-int8

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    assets = _docs_assets()
    app = FastAPI(
        title="mooscomp",
        version=__version__,
        description="Prompt compression with a small token classifier (MOOSComp).",
        lifespan=lifespan,
        docs_url=None if assets else "/docs",
        redoc_url=None if assets else "/redoc",
    )
    _install_error_handlers(app)
    if assets:
        _install_local_docs(app, assets)

    @app.get("/healthz", summary="liveness and model info")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": model_name,
            "backend": backend,
            "pending": state["pending"],
            "auth": opts.api_key is not None,
        }

    @app.post(
        "/v1/compress",
        summary="compress a prompt",
        responses=_ERROR_RESPONSES,
    )
    async def compress(req: CompressRequest) -> JSONResponse:
        if state["pending"] >= opts.max_pending:
            return _error(503, "overloaded", "too many requests waiting; retry later",
                          headers={"Retry-After": "1"})
        state["pending"] += 1
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(pool, _run, compressor, req)
        except ValueError as e:  # the library's own input checks (budget, force tokens, size)
            return _error(422, "invalid_request", _one_line(e))
        finally:
            state["pending"] -= 1
        return JSONResponse(_finite(result))

    static = resources.files("mooscomp").joinpath(_STATIC)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(static.joinpath("index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _install_middleware(app, opts)
    return app


def _install_middleware(app: FastAPI, opts: ServerOptions) -> None:
    # added last = runs first: CORS (answers preflights), then auth, then the body limit
    app.add_middleware(BodyLimit, limit=opts.max_body_bytes)
    if opts.api_key is not None:
        app.add_middleware(BearerAuth, key=opts.api_key)
    if opts.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(opts.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )


def _docs_assets() -> Path | None:
    """Folder of the Swagger UI / ReDoc files shipped by ``fastapi-offline`` (None if absent)."""
    try:
        folder = resources.files("fastapi_offline").joinpath("static")
    except ModuleNotFoundError:
        return None
    path = Path(str(folder))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def _install_local_docs(app: FastAPI, assets: Path) -> None:
    """FastAPI's self-hosting recipe for the docs: the same pages, assets from this server."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title="mooscomp - API docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title="mooscomp - API docs",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png", with_google_fonts=False,
        )


def _run(compressor: Any, req: CompressRequest) -> dict[str, Any]:
    opts = None
    if req.format_options is not None:
        from mooscomp.formats import FormatOptions

        opts = FormatOptions(**req.format_options.model_dump(exclude_none=True))
    changes = {k: getattr(req, k) for k in CALL_OPTIONS if getattr(req, k) is not None}
    config = compressor.config.replace(**changes) if changes else None
    # a missed target is in the response, not the server log (with several workers the
    # filter change may race: at worst one warning also reaches stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TargetMissedWarning)
        res = compressor.compress(
            req.text if req.text is not None else list(req.contexts or []),
            rate=req.rate,
            target_tokens=req.target_tokens,
            force_tokens=tuple(req.force_tokens),
            question=req.question,
            format=req.resolved_format,
            format_options=opts,
            config=config,
        )
    out: dict[str, Any] = res.to_dict(include_scores=req.return_scores)
    out.update(format=res.format, target_missed=res.target_missed, warnings=list(res.warnings))
    if req.return_scores:
        # the text between words (whitespace, line breaks), so a client can redraw the original
        for d, c in zip(out["details"], res.details, strict=True):
            w = c.words
            ends = [0, *w.ends.tolist()]
            d["gaps"] = [w.text[e:s] for e, s in zip(ends, w.starts.tolist(), strict=False)]
    return out


# ---------------------------------------------------------------------- errors


def _error(
    status: int, kind: str, message: str, *, details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if details:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "malformed_json", "request body is not valid JSON: " + _json_hint(errors))
        if request.method == "POST" and not _is_json(request):
            return _error(415, "unsupported_media_type", "send the body as application/json")
        if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") == "missing" for e in errors):
            return _error(422, "invalid_request", "request body is empty: send a JSON object "
                          "with 'text' (or 'contexts') and 'rate' (or 'target_tokens')")
        details = [_clean(e) for e in errors]
        msg = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details)
        return _error(422, "invalid_request", msg or "invalid request", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail),
                      headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"internal error: {type(exc).__name__}")


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


def _json_hint(errors: list[Any]) -> str:
    for e in errors:
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            loc: tuple[Any, ...] = tuple(e.get("loc") or ())
            where = f" at position {loc[1]}" if len(loc) > 1 else ""
            return f"{ctx.get('error', 'invalid JSON')}{where}"
    return "invalid JSON"


def _clean(e: dict[str, Any]) -> dict[str, Any]:
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    msg = str(e.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return {"field": ".".join(loc), "message": msg, "type": str(e.get("type", ""))}


def _one_line(e: BaseException) -> str:
    return " ".join((str(e) or type(e).__name__).split())[:500]


def _finite(x: Any) -> Any:
    """JSON has no inf/NaN: they become None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x

"""Chat backends for ``GenerativeTeacher``: an OpenAI-compatible endpoint and llama.cpp.

Private interop glue (the teacher only needs ``complete(system, user) -> str``); the endpoint
client uses urllib so labelling needs no HTTP dependency.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from mooscomp._util import check_float, check_int

logger = logging.getLogger(__name__)


class ChatBackend(Protocol):
    """Anything that answers one system + user chat turn with text."""

    def complete(self, system: str, user: str) -> str: ...


@dataclass(frozen=True)
class EndpointConfig:
    """OpenAI-compatible chat endpoint (llama.cpp server, vLLM, a hosted API)."""

    base_url: str
    model: str = "default"
    api_key: str | None = None
    temperature: float = 0.3
    top_p: float = 1.0
    max_tokens: int = 1024
    timeout_s: float = 120.0
    retries: int = 2
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        check_float("temperature", self.temperature, 0.0, 2.0)
        check_float("top_p", self.top_p, 0.0, 1.0, low_open=True)
        check_int("max_tokens", self.max_tokens, 1, 2**31 - 1)
        check_int("retries", self.retries, 0, 2**31 - 1)


class EndpointBackend:
    """Chat completions over plain urllib (no HTTP dependency)."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config

    def complete(self, system: str, user: str) -> str:
        c = self.config
        body: dict[str, Any] = {
            "model": c.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": c.temperature,
            "top_p": c.top_p,
            "max_tokens": c.max_tokens,
        }
        if c.seed is not None:
            body["seed"] = c.seed
        headers = {"Content-Type": "application/json"}
        if c.api_key:
            headers["Authorization"] = f"Bearer {c.api_key}"
        url = c.base_url.rstrip("/") + "/chat/completions"
        last: Exception | None = None
        for attempt in range(c.retries + 1):
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=c.timeout_s) as r:  # noqa: S310
                    data = json.loads(r.read().decode("utf-8"))
                content = data["choices"][0]["message"]["content"]
                if not isinstance(content, str):
                    raise ValueError("malformed response: content is not a string")
                return content
            except (urllib.error.URLError, TimeoutError, KeyError, IndexError, ValueError) as e:
                last = e
                logger.warning("endpoint attempt %d failed: %s", attempt + 1, e)
                time.sleep(min(2.0**attempt * 0.1, 2.0))
        raise RuntimeError(f"chat endpoint failed after {c.retries + 1} attempts: {last}")


class LlamaCppBackend:
    """A local GGUF through llama-cpp-python (optional dependency)."""

    def __init__(self, model_path: str, *, n_ctx: int = 4096, temperature: float = 0.3, seed: int = 0,
                 max_tokens: int = 1024) -> None:  # fmt: skip
        from llama_cpp import Llama  # type: ignore[import-not-found]

        self.llm = Llama(model_path=model_path, n_ctx=n_ctx, seed=seed, verbose=False)
        self.temperature = temperature
        self.max_tokens = max_tokens

    def complete(self, system: str, user: str) -> str:
        out: Any = self.llm.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        return str(out["choices"][0]["message"]["content"])

"""Reader LLMs that answer from (compressed) prompts, and the prompt templates.

Templates follow LLMLingua-2's evaluation prompts ("... using the provided context (which may be
compressed)"). Two backends:

* :class:`TransformersReader` — any transformers causal LM (a folder, or a GGUF file dequantised by
  transformers via ``gguf_file=``, which needs the ``gguf`` package); batched greedy generation with
  left padding and the model's chat template; CPU (float32) or CUDA (bfloat16).
* :class:`LlamaCppReader` — ``llama-cpp-python`` on a GGUF file, one prompt at a time (the
  weak-device setting of the latency benchmark).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

TEMPLATES = {
    "qa": (
        "Write a high-quality answer for the given question using the provided context (which may "
        "be compressed). Reply with the answer only, as a short phrase.\n\n{context}\n\n"
        "Question: {question}\nAnswer:"
    ),
    "needle": (
        "Write a high-quality answer for the given question using the provided context (which may "
        "be compressed). Reply with the answer only.\n\n{context}\n\nQuestion: {question}\nAnswer:"
    ),
    "summary": (
        "Summarize the provided article (which may be compressed) in one sentence.\n\n{context}\n\n"
        "Summary:"
    ),
    "fewshot": (
        "Answer the multiple-choice question, following the examples (which may be compressed). "
        "Reply with the option letter only, e.g. (A).\n\n{context}\n\n{question}\nA:"
    ),
}
MAX_NEW_TOKENS = {"qa": 32, "needle": 24, "summary": 64, "fewshot": 6}


def build_prompt(kind: str, context: str, question: str) -> str:
    """The user message for an item of template ``kind``."""
    try:
        template = TEMPLATES[kind]
    except KeyError:
        raise ValueError(f"unknown prompt kind {kind!r}; known: {sorted(TEMPLATES)}") from None
    return template.format(context=context, question=question)


@runtime_checkable
class Reader(Protocol):
    """Generates greedy answers; raises on failure (the runner records it per item)."""

    name: str

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int) -> list[str]: ...

    def info(self) -> dict[str, Any]: ...


def _resolve_dtype(device: str, dtype: str | None) -> Any:
    import torch

    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]


class TransformersReader:
    """Batched greedy generation with a transformers causal LM.

    Prompts are sorted by length and grouped so a batch holds at most ``max_batch_size`` prompts
    and ``max_batch_tokens`` padded prompt tokens; longer-than-``max_input_tokens`` prompts keep
    their last tokens (the question is at the end).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "transformers",
        max_batch_size: int = 128,
        max_batch_tokens: int = 200_000,
        max_input_tokens: int = 32_000,
        use_chat_template: bool = True,
        source: str = "",
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_size = int(max_batch_size)
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_input_tokens = int(max_input_tokens)
        self.use_chat_template = bool(use_chat_template) and bool(
            getattr(tokenizer, "chat_template", None)
        )
        self.source = source
        self.truncated = 0
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        gguf_file: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        tokenizer_path: str | Path | None = None,
        **kwargs: Any,
    ) -> TransformersReader:
        """Load a folder, or a GGUF file (``path`` = the .gguf, or its folder + ``gguf_file``);
        ``tokenizer_path``: a tokenizer folder to use instead of the one in the GGUF (faster)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = Path(path)
        if p.suffix == ".gguf" and gguf_file is None:
            p, gguf_file = p.parent, p.name
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        if tokenizer_path:
            tok = AutoTokenizer.from_pretrained(str(tokenizer_path))
        else:
            tok = AutoTokenizer.from_pretrained(str(p), **extra)
        model = AutoModelForCausalLM.from_pretrained(
            str(p), dtype=_resolve_dtype(device, dtype), **extra
        )
        model = model.to(device)  # type: ignore[arg-type]
        name = kwargs.pop("name", Path(gguf_file).stem if gguf_file else p.name)
        return cls(
            model, tok, name=name, source=str(p / gguf_file) if gguf_file else str(p), **kwargs
        )

    def format(self, user_text: str) -> str:
        if self.use_chat_template:
            return str(
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": user_text}],
                    tokenize=False,
                    add_generation_prompt=True,
                )
            )
        return user_text

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int) -> list[str]:
        import torch

        if not prompts:
            return []
        tok = self.tokenizer
        texts = [self.format(p) for p in prompts]
        ids = tok(texts, add_special_tokens=not self.use_chat_template)["input_ids"]
        for i, x in enumerate(ids):
            if len(x) > self.max_input_tokens:
                ids[i] = x[-self.max_input_tokens :]
                self.truncated += 1
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[str] = [""] * len(ids)
        dev = next(self.model.parameters()).device
        pad = int(tok.pad_token_id)
        b = 0
        while b < len(order):
            width = len(ids[order[b]]) + max_new_tokens
            size = max(1, min(self.max_batch_size, self.max_batch_tokens // max(width, 1)))
            batch = order[b : b + size]
            b += len(batch)
            w = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), w), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), w), dtype=torch.long)
            for j, i in enumerate(batch):
                input_ids[j, w - len(ids[i]) :] = torch.tensor(ids[i])
                mask[j, w - len(ids[i]) :] = 1
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=input_ids.to(dev),
                    attention_mask=mask.to(dev),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                )
            new = gen[:, w:].cpu()
            for j, i in enumerate(batch):
                out[i] = tok.decode(new[j], skip_special_tokens=True)
        return out

    def info(self) -> dict[str, Any]:
        import torch
        import transformers

        p = next(self.model.parameters())
        dev = p.device
        return {
            "backend": "transformers",
            "name": self.name,
            "source": self.source,
            "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "dtype": str(p.dtype).replace("torch.", ""),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "chat_template": self.use_chat_template,
            "max_batch_size": self.max_batch_size,
            "max_input_tokens": self.max_input_tokens,
            "truncated_prompts": self.truncated,
        }


class LlamaCppReader:
    """``llama-cpp-python`` reader (one prompt at a time, chat completion, temperature 0).

    A generation slower than ``timeout_s`` raises ``TimeoutError`` for that prompt (llama.cpp cannot
    be interrupted mid-call, so the check happens when it returns).
    """

    def __init__(
        self,
        gguf_path: str | Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        timeout_s: float | None = None,
        name: str | None = None,
    ) -> None:
        from llama_cpp import Llama

        self.path = str(gguf_path)
        self.llm = Llama(
            model_path=self.path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, verbose=False
        )
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.timeout_s = timeout_s
        self.name = name or Path(self.path).stem
        self.last_timings: list[dict[str, float]] = []

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int) -> list[str]:
        out = []
        self.last_timings = []
        for p in prompts:
            t0 = time.perf_counter()
            res: Any = self.llm.create_chat_completion(
                messages=[{"role": "user", "content": p}],
                max_tokens=max_new_tokens,
                temperature=0.0,
            )
            dt = time.perf_counter() - t0
            usage = res.get("usage", {})
            self.last_timings.append(
                {
                    "seconds": dt,
                    "prompt_tokens": float(usage.get("prompt_tokens", 0)),
                    "completion_tokens": float(usage.get("completion_tokens", 0)),
                }
            )
            if self.timeout_s is not None and dt > self.timeout_s:
                raise TimeoutError(f"generation took {dt:.1f}s > {self.timeout_s}s")
            out.append(str(res["choices"][0]["message"]["content"] or ""))
        return out

    def reset(self) -> None:
        """Forget the KV cache so the next prompt is evaluated from scratch (fair timing)."""
        self.llm.reset()

    def info(self) -> dict[str, Any]:
        import llama_cpp

        return {
            "backend": "llama.cpp",
            "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
            "name": self.name,
            "source": self.path,
            "device": "cpu",
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
        }

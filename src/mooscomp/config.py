"""Validated, frozen configuration of the compression algorithm."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from mooscomp._util import check_float as _check_float
from mooscomp._util import check_int as _check_int

Budget = Literal["global", "llmlingua2"]
OutlierVariant = Literal["hidden", "rarity"]
OutlierTransform = Literal["relu", "sigmoid", "identity"]
TokenToWord = Literal["mean", "first"]
UnitPool = Literal["mean", "max"]
UNIT_RULES = ("attached", "capitalised", "number")  # the default rules
UNIT_RULE_NAMES = (*UNIT_RULES, "phrase")  # every rule (``phrase`` is opt-in)

ContextOrder = Literal["original", "relevance"]  # the question path's context order
# CompressionConfig fields one call may set through the CLI and the service (both read them by name)
CALL_OPTIONS = ("focus", "focus_spread", "focus_per_paragraph", "focus_first", "context_order", "min_contexts")
_CHOICES: dict[str, tuple[str | None, ...]] = {
    "budget": get_args(Budget),
    "outlier_variant": get_args(OutlierVariant),
    "outlier_transform": get_args(OutlierTransform),
    "token_to_word": get_args(TokenToWord),
    "unit_pool": get_args(UnitPool),
    "context_order": (*get_args(ContextOrder), None),  # None = the allocator's
}
# Most force tokens one call may give (each becomes a regex alternative).
MAX_FORCE_TOKENS = 1000


@dataclass(frozen=True)
class CompressionConfig:
    """How words are scored and selected.

    Attributes:
        budget: ``"global"`` picks words by score across the whole prompt so the achieved token
            count (recounted exactly) is the closest achievable to the target; ``"llmlingua2"`` reproduces
            LLMLingua-2's per-chunk, token-weighted percentile rule (for parity).
        outlier_variant: MOOSComp outlier score: ``"hidden"`` = deviation of a token's last-layer
            state from its chunk mean (1 - cosine), ``"rarity"`` = -log unigram frequency (the
            model's table if it has one, else in-prompt frequency); Z-scored over
            the chunk (hidden) or the context (rarity).
        outlier_alpha: weight of the outlier term, ``score = p + alpha * g(z)``; 0 = LLMLingua-2.
        outlier_transform: g: ``relu`` (only above-average outliers help), ``sigmoid``, ``identity``.
        outlier_clip: |z| is clipped to this value before g.
        token_to_word: word keep-probability from its sub-tokens: mean (LLMLingua-2) or first.
        units: cheap unit-integrity rules; the words of one unit are kept or dropped together:
            ``attached`` (no space between: "3.5", "e-mail", "U.S."), ``capitalised`` (runs of
            capitalised words: names), ``number`` (quantities and dates: "5 km", "April 11");
            opt-in ``phrase`` (runs of content words and their connectors: "steam engine
            indicator"; :mod:`mooscomp.units`). Only used by the global budget.
        unit_pool: how a unit's score is made from its words' scores.
        force_reserve_digit: always keep words that contain a digit.
        drop_consecutive: drop a forced token repeating the previous kept forced token.
        use_context_level_filter: for a list of contexts, first drop whole low-scoring contexts
            (LLMLingua-2 semantics), then compress the rest.
        context_level_rate: share of contexts kept by the context filter; None = derived from the
            rate as LLMLingua-2 does ((rate + 1) / 2).
        question_weight: added to the score of words that occur in ``question`` (when one is given).
        focus: without a question, weight of a sentence bonus that moves the budget into the
            sentences with the best mean score (fewer sentences, each less compressed: easier for
            a reader; :mod:`mooscomp.focus`); 0 = words compete alone. Global budget only.
        focus_spread: the bonus falls to 0 once the better sentences fill this many budgets.
        focus_numbers: share of the full bonus that a word holding a digit gets wherever it
            stands. Measured (reports/readable_focus.json): 1.0 keeps a lone number but not the
            words around it, and costs QA reader F1; 0 = off.
        focus_per_paragraph: the this-many best sentences of every paragraph (and context) are
            ranked first by the focus (a fact in a paragraph of its own keeps its place); 0 = off.
        focus_first: the this-many opening sentences of every paragraph (and context) are ranked
            first by the focus, beside ``focus_per_paragraph``'s best ones (the first sentence of an
            encyclopedic paragraph names and defines its subject); 0 = off.
        context_order: with a question, the contexts of the output in their ``"original"`` order
            or by ``"relevance"`` (best first; reader F1 +0.02 at 4x, reports/readable_question.json);
            None = the question path's ``AllocationConfig.order`` (original).
        min_contexts: with a question, the best sentence of each of the this-many most relevant
            contexts is kept first; None = the question path's ``AllocationConfig.min_contexts`` (0).
        chunk_end_chars: characters after which a chunk may end (newline: a line break after it).
        max_seq_len: encoder window including the two special tokens.
        batch_size: most chunks per forward pass.
        max_batch_tokens: most padded tokens per forward pass; None = 1028 on CPU (two full chunks:
            cache-friendly, measured fastest for MiniLM on 2 cores) and 512 chunks of 514 on a GPU.
        max_input_chars: inputs longer than this are refused with a ValueError.

    A model records the configuration it was tuned with. A config passed to
    ``Compressor.from_pretrained``, ``Compressor.compress`` or ``CompressionPipeline`` is laid
    over it: only the fields given explicitly (:attr:`given`) replace the model's values, so
    ``CompressionConfig(outlier_variant="rarity")`` keeps the model's ``outlier_alpha``. Configs
    made by :meth:`replace` or from a complete dict give every field.
    """

    budget: Budget = "global"
    outlier_variant: OutlierVariant = "hidden"
    outlier_alpha: float = 0.1
    outlier_transform: OutlierTransform = "relu"
    outlier_clip: float = 3.0
    token_to_word: TokenToWord = "mean"
    units: tuple[str, ...] = UNIT_RULES
    unit_pool: UnitPool = "mean"
    force_reserve_digit: bool = False
    drop_consecutive: bool = False
    use_context_level_filter: bool = False
    context_level_rate: float | None = None
    question_weight: float = 0.25
    focus: float = 0.0
    focus_spread: float = 1.0
    focus_numbers: float = 0.0
    focus_per_paragraph: int = 0
    focus_first: int = 0
    context_order: ContextOrder | None = None
    min_contexts: int | None = None
    chunk_end_chars: str = ".!?\n"
    max_seq_len: int = 512
    batch_size: int = 32
    max_batch_tokens: int | None = None
    max_input_chars: int = 50_000_000

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        _check_float("outlier_alpha", self.outlier_alpha, 0.0, 100.0)
        _check_float("outlier_clip", self.outlier_clip, 0.0, 1e6, low_open=True)
        _check_float("question_weight", self.question_weight, 0.0, 100.0)
        _check_float("focus", self.focus, 0.0, 100.0)
        _check_float("focus_spread", self.focus_spread, 0.0, 1000.0, low_open=True)
        _check_float("focus_numbers", self.focus_numbers, 0.0, 1.0)
        _check_int("focus_per_paragraph", self.focus_per_paragraph, 0, 1000)
        _check_int("focus_first", self.focus_first, 0, 1000)
        if self.min_contexts is not None:
            _check_int("min_contexts", self.min_contexts, 0, 10**6)
        if self.context_level_rate is not None:
            _check_float("context_level_rate", self.context_level_rate, 0.0, 1.0, low_open=True)
        if isinstance(self.units, str) or not all(isinstance(u, str) for u in self.units):
            raise TypeError(f"units must be a tuple of rule names from {UNIT_RULE_NAMES}, got {self.units!r}")
        object.__setattr__(self, "units", tuple(self.units))
        bad = [u for u in self.units if u not in UNIT_RULE_NAMES]
        if bad:
            raise ValueError(f"units: unknown rules {bad}; allowed {UNIT_RULE_NAMES}")
        if not isinstance(self.chunk_end_chars, str):
            raise TypeError("chunk_end_chars must be a str")
        _check_int("max_seq_len", self.max_seq_len, 8, 1_000_000)
        _check_int("batch_size", self.batch_size, 1, 100_000)
        if self.max_batch_tokens is not None:
            _check_int("max_batch_tokens", self.max_batch_tokens, 8, 10**9)
        _check_int("max_input_chars", self.max_input_chars, 1, 10**12)
        for name in ("force_reserve_digit", "drop_consecutive", "use_context_level_filter"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")

    @property
    def given(self) -> frozenset[str]:
        """Names of the fields set explicitly when this config was made."""
        return self.__dict__.get("_given", _FIELD_SET)  # type: ignore[no-any-return]

    def merged(self, other: CompressionConfig | None) -> CompressionConfig:
        """This config with ``other``'s explicitly given fields laid over it (``None``: itself)."""
        if other is None:
            return self
        if not isinstance(other, CompressionConfig):
            raise TypeError(f"config must be a CompressionConfig, got {type(other).__name__}")
        if other.given == _FIELD_SET:
            return other
        return self.replace(**{k: getattr(other, k) for k in other.given})

    def replace(self, **changes: Any) -> CompressionConfig:
        """A copy with ``changes`` (validated; every field counts as given)."""
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["units"] = list(self.units)
        return d


_FIELD_NAMES = tuple(f.name for f in fields(CompressionConfig))
_FIELD_SET = frozenset(_FIELD_NAMES)
_dataclass_init = CompressionConfig.__init__


@functools.wraps(_dataclass_init)
def _init_recording_given(self: CompressionConfig, *args: Any, **kwargs: Any) -> None:
    """The dataclass ``__init__``, plus which fields the caller gave (see ``merged``)."""
    _dataclass_init(self, *args, **kwargs)
    object.__setattr__(self, "_given", frozenset(_FIELD_NAMES[: len(args)] + tuple(kwargs)))


CompressionConfig.__init__ = _init_recording_given  # type: ignore[method-assign]


def from_dict(data: dict[str, Any]) -> CompressionConfig:
    """Build a config from a dict, rejecting unknown keys."""
    known = {f.name for f in fields(CompressionConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown CompressionConfig keys {unknown}; known: {sorted(known)}")
    d = dict(data)
    if "units" in d and isinstance(d["units"], list):
        d["units"] = tuple(d["units"])
    return CompressionConfig(**d)


@dataclass(frozen=True)
class Request:
    """One compression call's options, validated once (the API, pipeline and engines share it).

    Attributes:
        rate: wanted compressed/original token ratio in (0, 1].
        target_tokens: wanted compressed token count (> 0); give exactly one of the two.
        force_tokens: strings whose occurrences are always kept (deduplicated, order kept).
        question: optional question (coarse-to-fine question-aware selection,
            :mod:`mooscomp.question`; models without it boost the words it mentions by
            ``CompressionConfig.question_weight``). Empty or whitespace-only = no question.
    """

    rate: float | None = None
    target_tokens: int | None = None
    force_tokens: tuple[str, ...] = ()
    question: str | None = None

    def __post_init__(self) -> None:
        _check_budget(self.rate, self.target_tokens)
        object.__setattr__(self, "force_tokens", _check_force_tokens(self.force_tokens))
        if self.question is not None and not isinstance(self.question, str):
            raise TypeError(f"question must be a str or None, got {type(self.question).__name__}")
        if self.question is not None and not self.question.strip():
            object.__setattr__(self, "question", None)  # blank = no question (documented)

    @property
    def keep_newlines(self) -> bool:
        """A forced newline keeps the line breaks between kept words."""
        return "\n" in self.force_tokens

    def wants_all(self, origin_tokens: int) -> bool:
        """True when the budget covers the whole input (nothing is dropped)."""
        if self.rate is not None:
            return self.rate >= 1.0
        return self.target_tokens is not None and self.target_tokens >= origin_tokens


def _check_budget(rate: Any, target_tokens: Any) -> None:
    if (rate is None) == (target_tokens is None):
        raise ValueError("give exactly one of rate (in (0, 1]) or target_tokens (> 0)")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(f"rate must be a number in (0, 1], got {type(rate).__name__}")
        if not (0.0 < float(rate) <= 1.0):
            raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    if target_tokens is not None:
        if isinstance(target_tokens, bool) or not isinstance(target_tokens, numbers.Integral):
            raise TypeError(f"target_tokens must be an int > 0, got {type(target_tokens).__name__}")
        if target_tokens <= 0:
            raise ValueError(f"target_tokens must be > 0, got {target_tokens}")


def _check_force_tokens(force_tokens: Sequence[str]) -> tuple[str, ...]:
    if isinstance(force_tokens, str) or not isinstance(force_tokens, (list, tuple)):
        raise TypeError("force_tokens must be a list or tuple of strings")
    if len(force_tokens) > MAX_FORCE_TOKENS:
        raise ValueError(f"force_tokens: at most {MAX_FORCE_TOKENS} tokens, got {len(force_tokens)}")
    for t in force_tokens:
        if not isinstance(t, str):
            raise TypeError(f"force_tokens must contain strings, got {type(t).__name__}")
        if t == "":
            raise ValueError("force_tokens must not contain the empty string")
    return tuple(dict.fromkeys(force_tokens))

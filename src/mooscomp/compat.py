"""Former home of the llmlingua facade; it lives in :mod:`mooscomp.adapters.llmlingua` now."""

from mooscomp.adapters.llmlingua import PromptCompressor as PromptCompressor  # noqa: F401

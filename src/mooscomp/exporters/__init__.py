"""Exporters of a trained compressor to other runtimes (:mod:`mooscomp.exporters.onnx`).

Nothing here is imported by ``import mooscomp`` or by :mod:`mooscomp.compressor` at module
import: the ONNX stack loads only when a backend asks for it.
"""

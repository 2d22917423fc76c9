"""reidlab: how much do person re-ID systems depend on faces?

The package imports nothing heavy at import time (torch, timm, onnxruntime are imported
inside the modules that need them), so ``import reidlab`` and ``reidlab --help`` stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

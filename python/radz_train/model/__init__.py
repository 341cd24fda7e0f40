"""The LLaVA-RadZ model: presets, factory and modules (imports torch)."""

from .config import ModelConfig, Prompts
from .factory import create_model
from .modeling import Features, RadzModel
from .registry import get_model_config, list_models

__all__ = ["Features", "ModelConfig", "Prompts", "RadzModel", "create_model", "get_model_config", "list_models"]

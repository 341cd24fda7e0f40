"""The LLaVA-RadZ model: presets, factory and modules (imports torch)."""

from radz_train.model.config import ModelConfig, Prompts
from radz_train.model.factory import create_model
from radz_train.model.modeling import Features, RadzModel
from radz_train.model.registry import get_model_config, list_models

__all__ = ["Features", "ModelConfig", "Prompts", "RadzModel", "create_model", "get_model_config", "list_models"]

"""radz_train: training, data and zero-shot evaluation for radz_engine.

Importing this package is cheap on purpose: nothing here imports torch, pydicom or any
other heavy dependency at import time, so `radz synth` works in a torch-free deployment.
Subpackages import what they need when they are used.
"""

__all__: list[str] = []

"""Stored pixels -> model input: the grayscale pipeline's parameters (pixel_spec.py), the C++
core's fast path (native.py) and its numpy reference, the test oracle (reference.py)."""

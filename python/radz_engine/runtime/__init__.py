"""The inference runtime: Engine (engine.py), its runner threads (runner.py), the one input
preparation step (prepare.py), batch screening (screen.py), results, the text encoder for new
classes, timing and progress helpers."""

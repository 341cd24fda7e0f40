"""radz_bench: `radz bench`, throughput and latency measurement for radz_engine.

A separate package from the runtime so that it may import torch (lazily): the plain PyTorch
eager reference, CUDA events, the matmul peak. radz_engine itself never imports torch.

    radz bench --bundle B --device cpu --batch 1,8,32 --precision fp32     throughput (cli.py, throughput.py)
    radz bench --preset small --device cuda:0 --backend torch,torch-compile   random weights, no bundle
    radz bench load --bundle B --target engine | dicom://AE@host:port      open-loop serving load (load.py)

Modules: flops (analytic FLOPs per image), device (timers, peak matmul, memory, machine info),
models (the PyTorch model for the reference and the torch backend), throughput (side-by-side
runs), scaling (multi-GPU), load (Poisson load generator), report (JSON, Markdown, PNG).
"""

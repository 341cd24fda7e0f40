"""A few training steps of the `small` (bf16, full) and `paper` (bf16, LoRA) presets on one GPU,
random weights, no network: step time, samples/s and peak memory.

    PYTHONPATH=python python benchmarks/gpu_train_check.py [--steps 6] [--batch-small 64] [--batch-paper 8]

Needs torch with CUDA plus transformers, peft, tokenizers and safetensors. A GPU machine without
network access can get them from wheels carried with the working tree:
    pip download transformers peft tokenizers safetensors huggingface-hub -d wheels/ --no-deps
    (on the GPU machine) pip install --no-index --find-links wheels/ transformers peft tokenizers safetensors huggingface-hub

Not yet run on a GPU (no device was available to the session that wrote it); results go to
docs/GPU_TRAINING.md with the card's name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def check_imports() -> None:
    missing = []
    for name in ("torch", "transformers", "peft", "tokenizers", "safetensors"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        sys.exit(f"gpu_train_check: missing {missing}; see this script's docstring for installing from carried wheels")
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_train_check: no CUDA device")


def corpus(n: int = 2000) -> list[str]:
    from radz_train.data.phantom import sample_findings
    from radz_train.data.reports import write_report

    return [write_report(sample_findings(i, seed=5), seed=i) for i in range(n)]


def run_preset(name: str, steps: int, batch: int, overrides: dict) -> dict:
    import torch

    from radz_train.dkam import encode_anchors, load_knowledge
    from radz_train.losses import RadzLoss
    from radz_train.model import create_model
    from radz_train.model.trainable import count_parameters, parameter_groups
    from radz_train.training.config import DEFAULT_CLASSES

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    texts = corpus()
    knowledge = load_knowledge()
    torch.set_default_dtype(torch.bfloat16)  # build weights in bf16 directly on the GPU
    with torch.device("cuda"):
        model = create_model(name, corpus=texts + list(knowledge.values()), overrides=overrides, seed=0)
    torch.set_default_dtype(torch.float32)
    model.train()
    for part in (model.decoder, model.vision_tower):
        part.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lrs = {"vision": 2e-5, "projector": 2e-6, "decoder": 2e-5, "tokens": 2e-5}
    optimizer = torch.optim.AdamW(parameter_groups(model, lrs))
    loss_fn = RadzLoss(model.config.tau, 0.5)
    size = model.config.image_size
    classes = list(DEFAULT_CLASSES)
    times = []
    for step in range(steps):
        images = torch.randn(batch, 3, size, size, device="cuda", dtype=torch.bfloat16)
        reports = [texts[(step * batch + i) % len(texts)] for i in range(batch)]
        text = model.tokenize(reports, device="cuda")
        labels = torch.randint(0, 2, (batch, len(classes)), device="cuda").float()
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            img, txt = model(images, **text)
            anchors = encode_anchors(model, classes, knowledge)
        loss = loss_fn(img, txt, anchors, labels)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    steady = sorted(times[1:]) if len(times) > 1 else times
    median = steady[len(steady) // 2]
    counts = count_parameters(model)
    result = {
        "preset": name,
        "batch": batch,
        "steps": steps,
        "step_s_median": round(median, 4),
        "samples_per_s": round(batch / median, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "params_m": round(counts["total"] / 1e6, 1),
        "trainable_m": round(counts["trainable"] / 1e6, 1),
        "loss_last": round(float(loss), 4),
    }
    del model, optimizer
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-small", type=int, default=64)
    parser.add_argument("--batch-paper", type=int, default=8)
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--out", default=None, help="JSON output path")
    args = parser.parse_args()
    check_imports()
    import torch

    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    results["runs"].append(run_preset("small", args.steps, args.batch_small, {}))
    print(json.dumps(results["runs"][-1]))
    if not args.skip_paper:
        results["runs"].append(run_preset("paper", args.steps, args.batch_paper, {"tokenizer.vocab_size": 32000}))
        print(json.dumps(results["runs"][-1]))
    print(f"\n{results['device']}, torch {results['torch']}")
    print(
        f"{'preset':<8} {'batch':>5} {'step s':>8} {'samples/s':>10} {'peak GiB':>9} {'params M':>9} {'trainable M':>12}"
    )
    for r in results["runs"]:
        print(
            f"{r['preset']:<8} {r['batch']:>5} {r['step_s_median']:>8.3f} {r['samples_per_s']:>10.1f} "
            f"{r['peak_memory_gib']:>9.1f} {r['params_m']:>9.1f} {r['trainable_m']:>12.1f}"
        )
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()

"""Is the phantom task fair? A histogram baseline must fail, a small CNN must succeed.

    python benchmarks/phantom_fairness.py [--n-train 5000] [--n-test 1500] [--seed 0]
        [--site site_a] [--unseen-site site_c] [--epochs 12] [--threads 2]
        [--out docs/phantom_fairness.json] [--cache DIR]

Generates phantoms (rendered at --size, averaged down to --input-size), then measures
per-class test AUC of
  (a) an image-statistics baseline: intensity histogram + moments + percentiles,
      standardised, one logistic regression per class (scikit-learn);
  (b) a small supervised CNN (torch, CPU, --threads threads).
Both are evaluated on a held-out test set from the training site and on a test set from
an unseen site (external validation). Targets: (a) macro AUC <= 0.75, (b) macro AUC >= 0.90
(macro over the nine findings, same-site test set). Prints a table and writes JSON.
Standalone: never imported by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))

from radz_train.data.phantom import FINDINGS, LABELS, generate_case  # noqa: E402


def _one(args: tuple[int, int, str, int, int]) -> tuple[np.ndarray, np.ndarray]:
    index, seed, site, size, input_size = args
    case = generate_case(index, seed=seed, site=site, size=size)
    f = size // input_size
    img = case.image.reshape(input_size, f, input_size, f).mean(axis=(1, 3))
    return img.astype(np.float16), np.array([case.labels[n] for n in LABELS], np.int8)


def make_set(
    n: int, seed: int, site: str, size: int, input_size: int, workers: int, cache: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """n phantoms as (float16 [n, s, s] images, int8 [n, len(LABELS)] labels)."""
    path = None
    if cache:
        os.makedirs(cache, exist_ok=True)
        path = os.path.join(cache, f"set_{n}_{seed}_{site}_{size}_{input_size}.npz")
        if os.path.exists(path):
            d = np.load(path)
            return d["x"], d["y"]
    jobs = [(i, seed, site, size, input_size) for i in range(n)]
    t0 = time.perf_counter()
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            out = pool.map(_one, jobs, chunksize=64)
    else:
        out = [_one(j) for j in jobs]
    dt = time.perf_counter() - t0
    print(f"  generated {n} x {site} in {dt:.1f}s ({n / dt:.1f} img/s with {workers} workers)", flush=True)
    x = np.stack([o[0] for o in out])
    y = np.stack([o[1] for o in out])
    if path:
        np.savez(path, x=x, y=y)
    return x, y


def hist_features(x: np.ndarray) -> np.ndarray:
    """Global intensity statistics per image: 64-bin histogram, moments, percentiles."""
    x = x.astype(np.float32).reshape(len(x), -1)
    bins = np.linspace(0, 1, 65)
    h = np.stack([np.histogram(r, bins=bins)[0] for r in x]).astype(np.float32) / x.shape[1]
    mean = x.mean(1, keepdims=True)
    std = x.std(1, keepdims=True) + 1e-6
    z = (x - mean) / std
    skew = (z**3).mean(1, keepdims=True)
    kurt = (z**4).mean(1, keepdims=True)
    pct = np.percentile(x, [1, 5, 10, 25, 50, 75, 90, 95, 99], axis=1).T
    ent = -(h * np.log(h + 1e-9)).sum(1, keepdims=True)
    return np.concatenate([h, mean, std, skew, kurt, pct, ent], axis=1)


def auc_table(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    out = {}
    for j, name in enumerate(LABELS):
        if 0 < y[:, j].sum() < len(y):
            out[name] = float(roc_auc_score(y[:, j], scores[:, j]))
        else:
            out[name] = float("nan")
    out["macro_findings"] = float(np.nanmean([out[n] for n in FINDINGS]))
    out["macro_all"] = float(np.nanmean([out[n] for n in LABELS]))
    return out


def run_histogram(xtr, ytr, tests: dict) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ftr = hist_features(xtr)
    sc = StandardScaler().fit(ftr)
    models = [LogisticRegression(C=1.0, max_iter=3000).fit(sc.transform(ftr), ytr[:, j]) for j in range(len(LABELS))]
    res = {}
    for name, (x, y) in tests.items():
        f = sc.transform(hist_features(x))
        s = np.stack([m.predict_proba(f)[:, 1] for m in models], axis=1)
        res[name] = auc_table(y, s)
    return res


def run_cnn(xtr, ytr, tests: dict, epochs: int, threads: int, seed: int) -> tuple[dict, dict]:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    def block(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )

    class SmallCNN(nn.Module):
        def __init__(self, n_out: int):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 5, stride=2, padding=2, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU(inplace=True),
                block(16, 32),
                nn.MaxPool2d(2),
                block(32, 64),
                nn.MaxPool2d(2),
                block(64, 96),
                nn.MaxPool2d(2),
                block(96, 128),
                block(128, 128),
            )
            self.head = nn.Linear(256, n_out)

        def forward(self, x):
            h = self.features(x)
            return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))

    model = SmallCNN(len(LABELS))
    xt = torch.from_numpy(xtr.astype(np.float32))[:, None]
    mu, sd = float(xt.mean()), float(xt.std())
    xt = (xt - mu) / sd
    yt = torch.from_numpy(ytr.astype(np.float32))
    bs = 64
    steps = epochs * ((len(xt) + bs - 1) // bs)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    lossf = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        tot = 0.0
        for i in range(0, len(xt), bs):
            idx = perm[i : i + bs]
            xb = xt[idx]
            # small random translation: the model must not rely on exact pixel positions
            dx, dy = (int(v) for v in torch.randint(-4, 5, (2,), generator=g))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = lossf(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        print(f"  epoch {ep + 1}/{epochs} loss {tot / len(xt):.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    train_s = time.perf_counter() - t0
    model.eval()
    res = {}
    with torch.no_grad():
        for name, (x, y) in tests.items():
            xx = (torch.from_numpy(x.astype(np.float32))[:, None] - mu) / sd
            s = torch.cat([torch.sigmoid(model(xx[i : i + 256])) for i in range(0, len(xx), 256)]).numpy()
            res[name] = auc_table(y, s)
    info = {
        "train_seconds": round(train_s, 1),
        "epochs": epochs,
        "threads": threads,
        "params": sum(p.numel() for p in model.parameters()),
    }
    return res, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-test", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--site", default="site_a")
    ap.add_argument("--unseen-site", default="site_c")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-cnn", action="store_true")
    ap.add_argument("--cache", default=None, help="directory to cache generated arrays")
    ap.add_argument("--out", default="docs/phantom_fairness.json")
    args = ap.parse_args(argv)
    if args.size % args.input_size:
        raise ValueError(f"--size must be a multiple of --input-size, got {args.size}, {args.input_size}")

    t_all = time.perf_counter()
    print("generating phantoms", flush=True)
    # train and test series use different seeds: no case appears in both
    xtr, ytr = make_set(args.n_train, args.seed, args.site, args.size, args.input_size, args.workers, args.cache)
    tests = {
        f"test_{args.site}": make_set(
            args.n_test, args.seed + 1, args.site, args.size, args.input_size, args.workers, args.cache
        ),
        f"unseen_{args.unseen_site}": make_set(
            args.n_test, args.seed + 2, args.unseen_site, args.size, args.input_size, args.workers, args.cache
        ),
    }
    prevalence = {n: float(ytr[:, j].mean()) for j, n in enumerate(LABELS)}
    print("histogram baseline", flush=True)
    t0 = time.perf_counter()
    hist = run_histogram(xtr, ytr, tests)
    hist_s = time.perf_counter() - t0
    cnn, info = ({}, {}) if args.skip_cnn else run_cnn(xtr, ytr, tests, args.epochs, args.threads, args.seed)

    main_test = f"test_{args.site}"
    rows = [("label", "prev") + tuple(f"hist:{t}" for t in tests) + tuple(f"cnn:{t}" for t in cnn and tests)]
    for name in LABELS + ("macro_findings", "macro_all"):
        row = (name, f"{prevalence.get(name, float('nan')):.3f}" if name in prevalence else "")
        row += tuple(f"{hist[t][name]:.3f}" for t in tests)
        row += tuple(f"{cnn[t][name]:.3f}" for t in cnn)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    targets = {"histogram_macro_auc_max": 0.75, "cnn_macro_auc_min": 0.90}
    verdict = {"histogram_ok": hist[main_test]["macro_findings"] <= 0.75}
    if cnn:
        verdict["cnn_ok"] = cnn[main_test]["macro_findings"] >= 0.90
    print("verdict:", verdict)
    result = {
        "config": vars(args),
        "prevalence_train": prevalence,
        "targets": targets,
        "histogram": hist,
        "histogram_seconds": round(hist_s, 1),
        "cnn": cnn,
        "cnn_info": info,
        "verdict": verdict,
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "note": "AUC per class on held-out test sets; macro_findings = mean over the nine findings.",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

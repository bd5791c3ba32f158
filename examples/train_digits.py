"""Train a small MLP on scikit-learn's 8x8 handwritten digits with hybrid.

    python examples/train_digits.py [--mode both|eager|compiled] [--epochs 30] [--seed 0]

It shows the usual PyTorch-style loop: a Dataset and DataLoader, an nn.Module, a loss, an
optimizer, and a `train_step` that does forward, backward and update. With `--mode compiled`
the whole step is compiled once by `hybrid.compile` (forward, backward and the Adam update in
one native program); the default trains both ways from the same seed and compares their time.
The digits ship with scikit-learn (no download); the test accuracy should reach ~97%.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.data import DataLoader, TensorDataset


class MLP(nn.Module):
    """64 pixels -> two hidden ReLU layers -> 10 class scores (logits)."""

    def __init__(self, n_in: int = 64, hidden: int = 128, n_classes: int = 10) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: hybrid.Tensor) -> hybrid.Tensor:
        return self.layers(x)


def load_data(seed: int, test_fraction: float = 0.2):
    """Standardized train/test tensors (features float32, labels int64), split at random."""
    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6  # statistics of the training set only
    x = (x - mean) / std
    return (hybrid.tensor(x[train]), hybrid.tensor(y[train]),
            hybrid.tensor(x[test]), hybrid.tensor(y[test]))


def train_step(model: nn.Module, opt: hybrid.optim.Optimizer, x: hybrid.Tensor,
               y: hybrid.Tensor) -> hybrid.Tensor:
    """One optimization step on a batch; returns the loss (a 0-d tensor)."""
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def accuracy(model: nn.Module, x: hybrid.Tensor, y: hybrid.Tensor) -> float:
    """Fraction of samples whose highest-scoring class is the label."""
    model.eval()
    with hybrid.no_grad():
        predicted = model(x).argmax(dim=1)
    model.train()
    return (predicted == y).float().mean().item()


def train(args: argparse.Namespace, compiled: bool) -> tuple[float, float]:
    """Train a fresh model from `args.seed`; returns (test accuracy, seconds of training)."""
    hybrid.manual_seed(args.seed)  # parameter init and shuffling are reproducible
    x_train, y_train, x_test, y_test = load_data(args.seed)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)

    model = MLP()
    opt = hybrid.optim.Adam(model.parameters(), lr=args.lr)
    step = hybrid.compile(train_step) if compiled else train_step
    label = "compiled" if compiled else "eager"

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        bar = tqdm(loader, desc=f"{label:8s} epoch {epoch:2d}/{args.epochs}", leave=False,
                   disable=args.quiet)
        for x, y in bar:
            loss = step(model, opt, x, y)
            bar.set_postfix(loss=f"{loss.item():.4f}")
    elapsed = time.perf_counter() - start
    return accuracy(model, x_test, y_test), elapsed


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["both", "eager", "compiled"], default="both")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    print(MLP())

    modes = {"both": [False, True], "eager": [False], "compiled": [True]}[args.mode]
    results = {}
    for compiled in modes:
        results["compiled" if compiled else "eager"] = train(args, compiled)
    for label, (acc, seconds) in results.items():
        print(f"{label:8s}  test accuracy {acc:.2%}  training time {seconds:.2f} s "
              f"({args.epochs} epochs)")
    if len(results) == 2:
        speedup = results["eager"][1] / results["compiled"][1]
        print(f"compiled training is {speedup:.1f}x the speed of eager (first call included)")
    return min(acc for acc, _ in results.values())


if __name__ == "__main__":
    main()

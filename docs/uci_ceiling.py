"""What batch models reach on the held-out split of ``stream-risk uci-split``.

A reference for the engine's precision on the UCI credit data: models trained
with hindsight on the whole table of the training customers (all six months and
the label at once, which the engine never sees), scored on the held-out
customers of the same split (the first ``--train`` rows against the rest, as
``uci-split`` does). The precision at a recall is read from the held-out
labels, with the threshold chosen on them: an upper bound for that model.

Needs scikit-learn, which stream-risk itself does not use::

    pip install scikit-learn
    python docs/uci_ceiling.py ../shared/data/uci-credit-default/train.tsv
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

try:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import precision_recall_curve, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
except ImportError as exc:  # pragma: no cover - a reference script, not part of the engine
    raise SystemExit(f"uci_ceiling needs scikit-learn (pip install scikit-learn): {exc}") from None

Matrix = np.ndarray


def read_table(path: Path) -> tuple[Matrix, Matrix]:
    """The 23 attribute columns (without ``ID``) and the default label of every row."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    attributes = np.array([[float(v) for v in row[1:-1]] for row in rows])
    labels = np.array([int(row[-1]) for row in rows])
    return attributes, labels


def with_ratios(x: Matrix) -> Matrix:
    """The raw columns plus utilisation per month, payment over the previous bill, months late."""
    limit = np.maximum(x[:, 0:1], 1.0)
    status, bills, paid = x[:, 5:11], x[:, 11:17], x[:, 17:23]
    utilisation = bills / limit
    paid_share = paid[:, :5] / np.maximum(bills[:, 1:6], 1.0)
    months_late = (status > 0).sum(axis=1, keepdims=True)
    worst = status.max(axis=1, keepdims=True)
    return np.hstack([x, utilisation, paid_share, months_late, worst])


def best_precision(labels: Matrix, scores: Matrix, recall: float) -> float:
    """The highest precision of any threshold whose recall is at least ``recall``."""
    precision, reached, _ = precision_recall_curve(labels, scores)
    return float(max(p for p, r in zip(precision, reached, strict=True) if r >= recall))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path, help="the UCI table (train.tsv)")
    parser.add_argument("--train", type=int, default=15_000, help="training rows (15000)")
    parser.add_argument("--recall", type=float, default=0.40, help="recall to read at (0.40)")
    args = parser.parse_args()
    x, y = read_table(args.table)
    x_train, y_train, x_held, y_held = (
        x[: args.train],
        y[: args.train],
        x[args.train :],
        y[args.train :],
    )
    print(f"{len(y_held)} held-out customers, base rate {y_held.mean():.3f}")
    models: list[tuple[str, Callable[[], object], Callable[[Matrix], Matrix]]] = [
        (
            "logistic regression, raw",
            lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            lambda m: m,
        ),
        (
            "gradient-boosted trees, raw",
            lambda: HistGradientBoostingClassifier(
                max_iter=300, learning_rate=0.05, random_state=0
            ),
            lambda m: m,
        ),
        (
            "gradient-boosted trees, ratios",
            lambda: HistGradientBoostingClassifier(
                max_iter=300, learning_rate=0.05, random_state=0
            ),
            with_ratios,
        ),
        (
            "random forest, ratios",
            lambda: RandomForestClassifier(500, min_samples_leaf=20, random_state=0),
            with_ratios,
        ),
    ]
    for name, build, columns in models:
        model = build()
        model.fit(columns(x_train), y_train)  # type: ignore[attr-defined]
        scores = model.predict_proba(columns(x_held))[:, 1]  # type: ignore[attr-defined]
        precision = best_precision(y_held, scores, args.recall)
        print(
            f"{name:32s} ROC AUC {roc_auc_score(y_held, scores):.3f}  "
            f"best precision at recall >= {args.recall:.2f}: {precision:.3f}"
        )


if __name__ == "__main__":
    main()

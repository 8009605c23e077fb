"""A user's own training code, outside Vigil: fit a scikit-learn pipeline, save it with skops,
and write the reference and holdout rows that ``python -m training.register`` takes.

    python examples/bring_your_own_model.py OUT_DIR

The data is scikit-learn's bundled diabetes set (nothing downloads), with ``sex`` as a
category, as it would come from a CSV; the target is ``progression``, a number: a regressor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def main(out: Path) -> None:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame = frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
    train, holdout = train_test_split(frame, test_size=0.25, random_state=0)
    numbers = [c for c in frame.columns if c not in ("sex", "progression")]
    encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    prepare = ColumnTransformer([("sex", encode, ["sex"]), ("numbers", "passthrough", numbers)])
    model = Pipeline(
        [
            ("prepare", prepare),
            ("model", HistGradientBoostingRegressor(max_iter=100, learning_rate=0.05)),
        ]
    )
    model.fit(train.drop(columns="progression"), train["progression"])

    out.mkdir(parents=True, exist_ok=True)
    skops.io.dump(model, out / "model.skops")
    train.to_csv(out / "reference.csv", index=False)  # what the model was trained on
    holdout.to_csv(out / "holdout.csv", index=False)  # rows it never saw
    print(f"wrote {out}/model.skops, reference.csv, holdout.csv")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "byom"))

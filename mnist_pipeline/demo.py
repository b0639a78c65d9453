"""The single-neuron demo: Dense(1) learns y = 2x - 1 from six points, then predicts y at x = 10.

Its own small task type: no MNIST data, no accuracy, a short report of its own. Import after
`mnist_pipeline.import_tensorflow()`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from mnist_pipeline.config import DemoParams
from mnist_pipeline.reporting.markdown import md_escape, table

X = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], dtype=np.float32)  # the tutorial's six points
Y = 2 * X - 1


def truth(x: float) -> float:
    return 2 * x - 1


class StepLoss(keras.callbacks.Callback):
    """The training loss of each step (each step is one of the tutorial's epochs). Keras logs the running
    mean over the epoch's steps so far; with equal batches step k's own loss is k m_k - (k - 1) m_(k-1)."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self.mean = 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        mean = float((logs or {})["loss"])
        self.losses.append((batch + 1) * mean - batch * self.mean)
        self.mean = mean


def fit_neuron(settings: DemoParams) -> tuple[Any, dict[str, list[float]]]:
    """Fit Dense(1) with SGD on mean squared error, seeded; the model and its loss per epoch.

    The tutorial's `fit(xs, ys, epochs=500)` (default batch 32) takes one full-batch step on the six
    points per epoch. Keras spends about 50 ms of bookkeeping per epoch, so the same 500 steps run as one
    epoch over the points repeated 500 times, one full batch per step, in order: the same updates, in
    a second instead of half a minute.
    """
    keras.utils.set_random_seed(settings.seed)
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(settings.learning_rate), loss="mse")
    steps = StepLoss()
    model.fit(np.tile(X, settings.epochs), np.tile(Y, settings.epochs), epochs=1, batch_size=len(X), shuffle=False,
              verbose=0, callbacks=[steps])
    return model, {"loss": steps.losses}


def describe(model: Any, history: dict[str, list[float]], settings: DemoParams) -> dict[str, Any]:
    """The demo's record: what it learned and what it predicts at `settings.at`."""
    weight, bias = (float(np.asarray(w).ravel()[0]) for w in model.get_weights())
    prediction = float(np.asarray(model.predict(np.array([[settings.at]], dtype=np.float32), verbose=0))[0, 0])
    return {"settings": settings.model_dump(), "weight": weight, "bias": bias, "final_loss": history["loss"][-1],
            "prediction": prediction, "at": settings.at, "truth": truth(settings.at),
            "error": abs(prediction - truth(settings.at)), "claimed": settings.claimed,
            "epochs_run": len(history["loss"])}


def render(record: dict[str, Any], code: str) -> str:
    """The demo's short report."""
    s = record["settings"]
    return "\n".join([
        "# The single neuron learns y = 2x - 1", "",
        f"One Dense(1) unit, fitted on the six points x = -1..4 with y = 2x - 1 (the tutorial's data), "
        f"{s['optimizer']} learning rate {s['learning_rate']}, mean squared error, {record['epochs_run']} epochs "
        f"of one full batch each, seed {s['seed']}. Source: {md_escape(s['source'])}.", "",
        table(["", "value"], [
            ["learned", f"y = {record['weight']:.4f} x {record['bias']:+.4f}"],
            ["final training loss", f"{record['final_loss']:.6f}"],
            [f"predict({record['at']:g})", f"{record['prediction']:.4f}"],
            ["the tutorial's prediction", f"{record['claimed']:.2f}"],
            ["the truth", f"{record['truth']:.2f}"],
        ]), "",
        f"The neuron never sees x = {record['at']:g}: it extrapolates the line it fitted, so an error in the "
        f"weight is multiplied by {record['at']:g} there. Same seed, same number on the same machine.", "",
        f"Code: {md_escape(code)}.", ""])

"""Keras callbacks the tutorials used that Keras does not ship."""

from __future__ import annotations

import keras


class StopAtLoss(keras.callbacks.Callback):
    """End training once the epoch's training loss drops below `threshold` (the Fashion-MNIST tutorial's callback)."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and logs.get("loss", float("inf")) < self.threshold:
            self.stopped_epoch = epoch
            self.model.stop_training = True

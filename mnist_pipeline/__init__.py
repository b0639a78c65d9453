"""mnist_pipeline: the library under the pipeline's stages, flows and command line.

data (sources, validation, preparation), images, catalogue and models, backends (Keras' engine), training,
metrics, reporting, registry, project_files (every file a stage reads or writes), lineage; for runs outside the
workspace worktrees, run_params, experiments and prefect_api; comparison (`mnist compare`'s engine).
It never reads params.yaml or the command line: callers hand it what they parsed.
"""

import os
import sys
import tempfile

# TensorFlow's C++ runtime logs harmless graph warnings at ERROR level on every fit;
# silence them unless the user asked for a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# What TensorFlow 2.19+ prints while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says: it logs
# through absl before absl is initialised (tensorflow/tensorflow#100442), on CPUs where oneDNN's
# custom operations are on (AVX-512 machines, for one). Harmless, and it buries our one-line errors.
IMPORT_CHATTER = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")


def import_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter removed from stderr; anything else it prints is kept; and make
    it Keras' backend: the commands that call this (features, demo, predict, serve) run on TensorFlow whatever
    KERAS_BACKEND the shell exported (only train follows `train.backend`: mnist_pipeline/backends.py).

    Call before the first `import keras` or `import tensorflow` of a command whose stderr users read.
    """
    os.environ["KERAS_BACKEND"] = "tensorflow"
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not any(chatter in line for chatter in IMPORT_CHATTER)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()

"""Pipeline stages: one module per DVC stage, each a pure core plus a `main()` edge."""

import os

# TensorFlow's C++ runtime logs harmless graph warnings at ERROR level on every fit;
# silence them unless the user asked for a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

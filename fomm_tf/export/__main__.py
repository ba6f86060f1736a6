"""Entry point: `python -m fomm_tf.export` (the command lives in fomm_tf/export/cli.py)."""

import os

# TensorFlow's C++ INFO and WARNING lines (one set per temporary SavedModel the converter writes) drown the
# progress output; set before TensorFlow loads, and only when the caller has not chosen a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":
  from fomm_tf.export import cli  # pylint: disable=g-import-not-at-top
  cli.main()

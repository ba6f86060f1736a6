"""Prints where Keras float32 animation spends its time, per TensorFlow op type (TensorFlow's profiler).

  .venv/bin/python tools/profile_ops.py --config=vox-256
  .venv/bin/python tools/profile_ops.py --flagfile=configs/taichi-256.flags --batch_size=1

Animates --num_frames synthetic driving frames through `fomm_tf.animate` (the Keras backend, random weights
unless --checkpoint) once to trace, then once under `tf.profiler.experimental`, and sums the executed ops'
durations by op type: the kernels that really ran, after Grappler's fusions and oneDNN's rewrites (a convolution
on oneDNN is `_MklNativeFusedConv2D`, on TensorFlow's own Eigen kernel `Conv2D` or `_FusedConv2D`). The share is of
the summed op time, which on several threads can exceed the wall time. docs/cpu-speed.md has vox-256's table.
"""

import collections
import glob
import os
import re
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from fomm_tf import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf import errors  # pylint: disable=g-import-not-at-top,wrong-import-position
from tools import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

# An executed op's event is "op_name:OpType" (op names hold no colon); the executor's own events have "::".
_OP_EVENT = re.compile(r"^[^:]+:([A-Za-z0-9_]+)$")


def define_flags(flag_values):
  cli.define_model_flags(flag_values, checkpoint_help="Weights to profile with (default: random, seed 0).")
  flags.DEFINE_integer("batch_size", 8, "Driving frames per call.", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("num_frames", 16, "Driving frames profiled.", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("top",
                       15,
                       "Op types listed (the rest are summed in one line).",
                       lower_bound=1,
                       flag_values=flag_values)


def op_times(xplane_path):
  """{op type: (milliseconds, count)} of the ops executed in a profile (an .xplane.pb)."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
  space = xplane_pb2.XSpace()
  with open(xplane_path, "rb") as f:
    space.ParseFromString(f.read())
  totals = collections.defaultdict(lambda: [0.0, 0])
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        match = _OP_EVENT.match(plane.event_metadata[event.metadata_id].name)
        if match:
          totals[match.group(1)][0] += event.duration_ps / 1e9
          totals[match.group(1)][1] += 1
  return {op: tuple(value) for op, value in totals.items()}


def run(flag_values):
  """Prints the table; returns op_times' dict."""
  cfg = cli.resolve_config(flag_values)
  if cfg is None:
    raise errors.UsageError("no model config: pass --config=NAME (e.g. vox-256) or --flagfile=configs/NAME.flags")
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import fomm_tf  # pylint: disable=import-outside-toplevel
  from fomm_tf.export import evaluation  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import keras_backend  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import pipeline  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(0)
  model = fomm_tf.load_model(cfg, checkpoint=flag_values.checkpoint)
  backend = keras_backend.KerasBackend(model)
  frames = evaluation.synthetic_frames(model.frame_shape, count=9)
  driving = [frames[1 + i % 8] for i in range(flag_values.num_frames)]

  def animate():
    for _ in pipeline.animate(backend, frames[0], driving, batch_size=flag_values.batch_size):
      pass

  animate()  # Traces every function first, so that the profile holds only running them.
  with tempfile.TemporaryDirectory(prefix="profile_ops_") as log_dir:
    tf.profiler.experimental.start(log_dir)
    try:
      animate()
    finally:
      tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)
    if len(paths) != 1:
      raise errors.FommError(f"the profiler wrote {len(paths)} .xplane.pb files to {log_dir}, expected 1")
    times = op_times(paths[0])
  total = sum(ms for ms, _ in times.values())
  if not total:
    raise errors.FommError("the profile holds no executed op")
  ranked = sorted(times.items(), key=lambda item: -item[1][0])
  print(f"{cfg.source}, Keras float32, {flag_values.num_frames} frames at batch {flag_values.batch_size} "
        f"(source encoded once); {machine.describe()}; op time {total:.0f} ms in all")
  print(f"  {'op type':<32} {'ms':>9} {'%':>6} {'runs':>6}")
  for op, (ms, count) in ranked[:flag_values.top]:
    print(f"  {op:<32} {ms:>9.1f} {100 * ms / total:>6.1f} {count:>6}")
  rest = ranked[flag_values.top:]
  if rest:
    ms = sum(value[0] for _, value in rest)
    print(f"  {f'{len(rest)} other op types':<32} {ms:>9.1f} {100 * ms / total:>6.1f} "
          f"{sum(value[1] for _, value in rest):>6}")
  convolutions = sum(ms for op, (ms, _) in times.items() if "Conv" in op)
  print(f"  convolutions (op types with Conv): {100 * convolutions / total:.1f}% of the op time")
  return times


main = cli.main_function(define_flags, run)

if __name__ == "__main__":
  main()

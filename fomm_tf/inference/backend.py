"""Inference backends: the calls animation needs, whatever runs the networks.

A Backend detects keypoints, prepares a source once per video, animates it to
batches of driving keypoints and transfers relative motion. Implementations:
KerasBackend (keras_backend.py), SavedModelBackend and TFLiteBackend (an
exported model directory). All arrays in and out are numpy float32, NHWC.
"""

import functools

import numpy as np

from fomm_tf.errors import AnimationError

HULL_ERROR = ("adapt_movement_scale: the initial driving keypoints span no area (all collinear); "
              "use relative motion without --adapt_scale")


class Backend:
  """Interface of an animation backend."""

  name = "base"
  precision = "float32"
  frame_shape = None  # (H, W, C)
  num_kp = None

  def detect_keypoints(self, frames):
    """frames (B, H, W, 3) in [0, 1] -> {'value': (B, K, 2), 'jacobian': (B, K, 2, 2)}."""
    raise NotImplementedError

  def prepare_source(self, source):
    """source (1, H, W, 3) -> opaque state reused for every driving frame of one video."""
    raise NotImplementedError

  def generate(self, state, kp_source, kp_driving):
    """Animates the prepared source to each of the B driving keypoint sets -> (B, H, W, 3)."""
    raise NotImplementedError

  def prepare_sources(self, sources):
    """F sources (F, H, W, 3) -> opaque state for `generate_sources`. This default prepares each on its own;
    a backend whose networks take a batch of sources overrides it with one call."""
    return [self.prepare_source(np.asarray(source)[np.newaxis]) for source in sources]

  def generate_sources(self, state, kp_source, kp_driving):
    """Animates F prepared sources, each to its own B driving keypoint sets.

    Args:
      state: from `prepare_sources` of the F sources.
      kp_source: the F sources' keypoints, {'value': (F, K, 2), 'jacobian': (F, K, 2, 2)}.
      kp_driving: F * B keypoint sets, source-major: entries i * B to (i + 1) * B drive source i.

    Returns:
      (F * B, H, W, 3), in the order of `kp_driving`. This default runs one `generate` per source; a backend
      whose networks take a batch of sources overrides it with one call.
    """
    count, batch = sources_and_batch(kp_source, kp_driving)
    return np.concatenate([
        self.generate(state[i], {
            k: v[i:i + 1] for k, v in kp_source.items()
        }, {
            k: v[i * batch:(i + 1) * batch] for k, v in kp_driving.items()
        }) for i in range(count)
    ])

  def normalize_kp(self, kp_source, kp_driving, kp_driving_initial, adapt_movement_scale, use_relative_movement,
                   use_relative_jacobian):
    out = _normalize_graph()(kp_source, kp_driving, kp_driving_initial, bool(adapt_movement_scale),
                             bool(use_relative_movement), bool(use_relative_jacobian))
    return check_normalized({k: np.asarray(v) for k, v in out.items()}, adapt_movement_scale)


@functools.cache
def _normalize_graph():
  """ops.normalize_kp as a TensorFlow graph, traced once per combination of the flags (and generalised over the
  batch). Run eagerly, its few dozen small ops took 23 ms a frame on the 2-core AVX2 machine (live, vox-256-lite:
  more than the keypoint detector); as one graph 1.4 ms. A degenerate hull is reported by check_normalized.
  Imported here: it needs TensorFlow, which the exported backends (TFLite, ONNX) run without."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from fomm_tf.ops import normalize_kp as normalize_lib  # pylint: disable=import-outside-toplevel
  return tf.function(normalize_lib.normalize_kp, reduce_retracing=True, autograph=False)


def sources_and_batch(kp_source, kp_driving):
  """(F, B) of F source keypoint sets and F * B driving ones; ValueError when they do not divide."""
  count, total = len(kp_source["value"]), len(kp_driving["value"])
  if count < 1 or total % count:
    raise ValueError(f"generate_sources: {total} driving keypoint sets do not split among {count} sources")
  return count, total // count


def check_normalized(kp, adapt_movement_scale):
  """A degenerate convex hull (adapt scale) shows as non-finite keypoints; that is the input's fault."""
  if adapt_movement_scale and not np.all(np.isfinite(kp["value"])):
    raise AnimationError(HULL_ERROR)
  return kp

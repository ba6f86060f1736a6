"""Animation from a prepared source: the one definition that the Keras backend, the SavedModel and TFLite serve.

`encode_source` does the work that depends on the source image alone (encoder
features and the dense-motion copy of the source), once per video;
`generate_from_state` animates that state to a batch of driving keypoints.
The export signatures wrap these same two functions, so every backend computes
exactly the same graph.
"""

import tensorflow as tf


def tile_to(x, batch):
  """Repeats a batch-1 (or batch-`batch`) tensor along the batch axis to `batch` entries."""
  return tf.repeat(x, batch // tf.shape(x)[0], axis=0)


def encode_source(generator, source):
  """(1, H, W, C) source -> {'features'(, 'source_small')}: everything the generator needs from the source."""
  return dict(generator.encode_source(source, training=False))


def generate_from_state(generator, state, kp_source, kp_driving):
  """Predictions (B, H, W, C) for B driving keypoint sets from the state and keypoints of one source."""
  batch = tf.shape(kp_driving["value"])[0]
  state = {k: tile_to(v, batch) for k, v in state.items()}
  kp_source = {k: tile_to(v, batch) for k, v in kp_source.items()}
  # With with_deformed=False the decoder reads the source only through the cached state.
  out = generator.decode(None, state, kp_source, kp_driving, training=False, with_deformed=False)
  return out["prediction"]

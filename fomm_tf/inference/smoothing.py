"""Keypoint smoothing for driving videos: a causal moving average, streamed batch by batch.

Unsupervised keypoints jitter by a fraction of a pixel from frame to frame even
when the face is still, and the generator turns that into shimmering. Averaging
each keypoint's value and Jacobian over the last `window` frames (this one
included) removes most of it at the cost of (window - 1) / 2 frames of lag
(one frame at window 3). The filter is causal, so it works on a stream and live.
"""

import collections

import numpy as np


class KeypointSmoother:
  """Moving average of driving keypoints over the last `window` frames; window 1 passes them through."""

  def __init__(self, window):
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
      raise ValueError(f"smoothing window must be an integer >= 1, got {window!r}")
    self.window = window
    self._history = collections.deque(maxlen=window)

  def __call__(self, kp):
    """{'value': (B, K, 2), 'jacobian': (B, K, 2, 2)} for B consecutive frames -> the smoothed keypoints."""
    if self.window == 1:
      return kp
    out = {name: np.empty_like(np.asarray(values)) for name, values in kp.items()}
    for i in range(len(kp["value"])):
      self._history.append({name: np.asarray(values[i]) for name, values in kp.items()})
      for name in out:
        out[name][i] = np.mean([entry[name] for entry in self._history], axis=0)
    return out


def jitter(values):
  """Mean frame-to-frame displacement of (T, K, 2) keypoints, in their own units."""
  values = np.asarray(values, np.float64)
  return float(np.linalg.norm(np.diff(values, axis=0), axis=-1).mean()) if len(values) > 1 else 0.0

"""Pasting animated head crops back into the source photo, through a feathered square mask.

The output has the source photo's aspect ratio, shrunk (area averaging) so its
longer side is at most `max_output_size`. The animated crop is resized onto the
crop's square and blended in with a mask that is 1 inside, falls smoothly
(smoothstep) to 0 at the square's edges over `feather` x its side, and is 0
outside: pixels outside the square are exactly the (resized) source's, pixels
deeper than the feather band exactly the animation's. The FOMM generator
re-renders the crop's background too, slightly blurred, so the band hides the
seam where the sharper photo resumes.
"""

import numpy as np

from fomm_tf import checks
from fomm_tf.faces import crop as crop_lib
from fomm_tf.faces import sampling
from fomm_tf.io import media

MAX_OUTPUT_SIZE = 1024
FEATHER = 0.1


def _ramp(length, band):
  """(length,) weights of pixel centres: smoothstep from 0 at both ends to 1 at `band` pixels in."""
  centres = np.arange(length, dtype=np.float64) + 0.5
  if band <= 0:
    return np.ones(length, np.float32)
  t = np.clip(np.minimum(centres, length - centres) / band, 0.0, 1.0)
  return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


class PasteBack:
  """Pastes animated crops into one source photo; the resized photo and the mask are prepared once.

  Args:
    source_image: the full source photo, RGB (H, W, 3), float in [0, 1] or uint8.
    placement: the `crop.Placement` of the crop (as `crop.crop_square` returns it) in the photo's pixels.
    max_output_size: the output's longer side at most (the photo is never enlarged).
    feather: the width of the blend band, as a fraction of the square's side (0: a hard edge).

  Attributes:
    output_size: (height, width) of every output frame.
  """

  def __init__(self, source_image, placement, max_output_size=MAX_OUTPUT_SIZE, feather=FEATHER):
    source_image = sampling.check_rgb(source_image, "source image")
    if not isinstance(placement, crop_lib.Placement):
      raise ValueError(f"placement must be a crop.Placement, got {type(placement).__name__}")
    if placement.image_size != source_image.shape[:2]:
      raise ValueError(f"the placement is for a {placement.image_size} image, got {source_image.shape[:2]}")
    if not checks.is_positive_int(max_output_size):
      raise ValueError(f"max_output_size must be a positive integer, got {max_output_size!r}")
    if not (checks.is_number(feather) and 0 <= feather <= 0.5):
      raise ValueError(f"feather must be a fraction of the side in [0, 0.5], got {feather!r}")
    height, width = source_image.shape[:2]
    scale = min(1.0, max_output_size / max(height, width))
    out_height, out_width = max(1, round(height * scale)), max(1, round(width * scale))
    self.output_size = (out_height, out_width)
    self._source = media.resize_frame(sampling.to_unit_float(source_image), self.output_size)
    # The square in output pixels (rounded; x1, y1 exclusive; at least one pixel).
    sx, sy = out_width / width, out_height / height
    x0, y0 = round(placement.x0 * sx), round(placement.y0 * sy)
    x1 = max(round((placement.x0 + placement.side) * sx), x0 + 1)
    y1 = max(round((placement.y0 + placement.side) * sy), y0 + 1)
    self._square_size = (y1 - y0, x1 - x0)
    # The part of it inside the output, in output pixels and in the square's own pixels; None if nothing is.
    top, bottom = min(max(y0, 0), out_height), min(max(y1, 0), out_height)
    left, right = min(max(x0, 0), out_width), min(max(x1, 0), out_width)
    self._target = self._within = None
    if bottom > top and right > left:
      self._target = (slice(top, bottom), slice(left, right))
      self._within = (slice(top - y0, bottom - y0), slice(left - x0, right - x0))
      ramp_y, ramp_x = _ramp(y1 - y0, feather * (y1 - y0)), _ramp(x1 - x0, feather * (x1 - x0))
      self._mask = (ramp_y[:, None] * ramp_x[None, :])[self._within][..., None]
      # source * (1 - mask) + crop * mask: the first term never changes; where the mask is 0 it is the source's
      # exact pixels, where it is 1 it is exactly 0.
      self._background = self._source[self._target] * (np.float32(1.0) - self._mask)

  def __call__(self, animated_crop):
    """The source photo with `animated_crop` (RGB (S, S, 3) float in [0, 1]) pasted in: float32 output_size."""
    animated_crop = sampling.check_rgb(animated_crop, "animated crop")
    output = self._source.copy()
    if self._target is not None:
      resized = media.resize_frame(sampling.to_unit_float(animated_crop), self._square_size)[self._within]
      output[self._target] = self._background + resized * self._mask
    return output


def paste_back(source_image, placement, animated_crop, max_output_size=MAX_OUTPUT_SIZE, feather=FEATHER):
  """One animated crop pasted into the source photo (for many frames, build one `PasteBack` and call it)."""
  return PasteBack(source_image, placement, max_output_size, feather)(animated_crop)

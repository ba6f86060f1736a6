"""Pasting animated head crops back into the source photo, through feathered square masks.

The output has the source photo's aspect ratio, shrunk (area averaging) so its
longer side is at most `max_output_size`. Each animated crop is resized onto
its crop's square and blended in with a mask that is 1 inside, falls smoothly
(smoothstep) to 0 at the square's edges over `feather` x its side, and is 0
outside: pixels outside every square are exactly the (resized) source's, pixels
deeper than the feather band of one square (and in no other) exactly that
animation's. The FOMM generator re-renders the crop's background too, slightly
blurred, so the band hides the seam where the sharper photo resumes.

Several faces (`GroupPasteBack`): where squares overlap, each crop also shows
part of the other face, re-rendered from its own crop (where the other face is
near its edge, blurred and moved with the wrong face's motion). Pasting one
square after the other would put that copy over the other face's animation in
one square and leave a hard edge where the later square's band ends; summing
the masks would paste twice (too bright). Instead each pixel has a coverage
C = 1 - prod(1 - mask_i) (the masks combined as independent opacities: C is
mask_i where only square i reaches, never above 1, and smooth), and C is shared
between the crops in proportion to mask_i x a Gaussian of the distance from
square i's centre in units of its side: each crop owns the pixels near its own
face, the share changes smoothly (no seam) across the overlap, and the shares
add up to C (nothing is pasted twice). Every weight depends only on the
squares, so it is computed once; a frame costs one resize and one
multiply-add per face.
"""

import numpy as np

from fomm_tf import checks
from fomm_tf.faces import crop as crop_lib
from fomm_tf.faces import sampling
from fomm_tf.io import media

MAX_OUTPUT_SIZE = 1024
FEATHER = 0.1
# The spread of each crop's claim on overlapping pixels, in units of its square's side: at 0.15 a crop keeps
# ~99% of the pixels at its own face's centre even where another square's middle reaches it, and the share
# passes from one crop to the other over about a fifth of a side.
OWNERSHIP_SIGMA = 0.15


def _ramp(length, band):
  """(length,) weights of pixel centres: smoothstep from 0 at both ends to 1 at `band` pixels in."""
  centres = np.arange(length, dtype=np.float64) + 0.5
  if band <= 0:
    return np.ones(length, np.float32)
  t = np.clip(np.minimum(centres, length - centres) / band, 0.0, 1.0)
  return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


class _Square:
  """One placement in output pixels: the part inside the output (`target`, or None), the same part in the
  square's own pixels (`within`), its feather mask there and its ownership weight (see the module doc)."""

  def __init__(self, placement, image_size, output_size, feather):
    if not isinstance(placement, crop_lib.Placement):
      raise ValueError(f"placement must be a crop.Placement, got {type(placement).__name__}")
    if placement.image_size != tuple(image_size):
      raise ValueError(f"the placement is for a {placement.image_size} image, got {tuple(image_size)}")
    (height, width), (out_height, out_width) = image_size, output_size
    # The square in output pixels (rounded; x1, y1 exclusive; at least one pixel).
    sx, sy = out_width / width, out_height / height
    x0, y0 = round(placement.x0 * sx), round(placement.y0 * sy)
    x1 = max(round((placement.x0 + placement.side) * sx), x0 + 1)
    y1 = max(round((placement.y0 + placement.side) * sy), y0 + 1)
    self.size = (y1 - y0, x1 - x0)
    top, bottom = min(max(y0, 0), out_height), min(max(y1, 0), out_height)
    left, right = min(max(x0, 0), out_width), min(max(x1, 0), out_width)
    self.target = self.within = self.mask = self.owner = None
    if bottom > top and right > left:
      self.target = (slice(top, bottom), slice(left, right))
      self.within = (slice(top - y0, bottom - y0), slice(left - x0, right - x0))
      ramp_y, ramp_x = _ramp(y1 - y0, feather * (y1 - y0)), _ramp(x1 - x0, feather * (x1 - x0))
      self.mask = (ramp_y[:, None] * ramp_x[None, :])[self.within]
      # Distances from the square's centre in units of its side; >= exp(-0.5 / (2 * 0.15^2)) ~ 1e-5 inside it.
      dy = ((np.arange(y1 - y0) + 0.5) / (y1 - y0) - 0.5)[self.within[0]]
      dx = ((np.arange(x1 - x0) + 0.5) / (x1 - x0) - 0.5)[self.within[1]]
      self.owner = np.exp(-(dy[:, None]**2 + dx[None, :]**2) / (2.0 * OWNERSHIP_SIGMA**2))


class GroupPasteBack:
  """Pastes the animated crops of several faces into one source photo (module doc: how overlaps blend).

  Args:
    source_image: the full source photo, RGB (H, W, 3), float in [0, 1] or uint8.
    placements: the `crop.Placement` of each face's crop (as `crop.crop_square` returns it), in the photo's pixels.
    max_output_size: the output's longer side at most (the photo is never enlarged).
    feather: the width of the blend band, as a fraction of each square's side (0: a hard edge).

  Attributes:
    output_size: (height, width) of every output frame.
  """

  def __init__(self, source_image, placements, max_output_size=MAX_OUTPUT_SIZE, feather=FEATHER):
    source_image = sampling.check_rgb(source_image, "source image")
    placements = list(placements)
    if not placements:
      raise ValueError("placements: at least one crop placement is needed")
    if not checks.is_positive_int(max_output_size):
      raise ValueError(f"max_output_size must be a positive integer, got {max_output_size!r}")
    if not (checks.is_number(feather) and 0 <= feather <= 0.5):
      raise ValueError(f"feather must be a fraction of the side in [0, 0.5], got {feather!r}")
    height, width = source_image.shape[:2]
    scale = min(1.0, max_output_size / max(height, width))
    self.output_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    self._squares = [_Square(p, (height, width), self.output_size, feather) for p in placements]
    coverage = np.zeros(self.output_size, np.float32)
    claims = np.zeros(self.output_size, np.float64)
    for square in self._squares:
      if square.target is not None:
        part = coverage[square.target]
        # Combined opacity, C + m - C m: exactly m where one square reaches alone (no rounding of 1 - (1 - m)).
        coverage[square.target] = part + square.mask - part * square.mask
        claims[square.target] += square.mask * square.owner
    # Each crop's weight: its share of the coverage. The shares of the squares reaching a pixel add up to its
    # coverage; where one square reaches alone its share is exactly its mask (claim / claim is 1).
    self._alphas = []
    for square in self._squares:
      alpha = None
      if square.target is not None:
        claim = square.mask * square.owner
        total = claims[square.target]
        share = np.divide(claim, total, out=np.zeros_like(claim), where=total > 0)
        alpha = (coverage[square.target] * share).astype(np.float32)[..., None]
      self._alphas.append(alpha)
    source = media.resize_frame(sampling.to_unit_float(source_image), self.output_size)
    # source * (1 - C) + sum of crop_i * alpha_i: the first term never changes; where C is 0 it is the source's
    # exact pixels, where it is 1 it is exactly 0.
    self._background = source * (np.float32(1.0) - coverage)[..., None]

  @property
  def num_faces(self):
    return len(self._squares)

  def __call__(self, animated_crops):
    """The photo with each face's crop (RGB (S, S, 3) float in [0, 1], in `placements` order) pasted in.

    Returns:
      float32 (output_size..., 3).
    """
    animated_crops = list(animated_crops)
    if len(animated_crops) != len(self._squares):
      raise ValueError(f"expected {len(self._squares)} animated crops (one per placement), got {len(animated_crops)}")
    output = self._background.copy()
    for square, alpha, animated in zip(self._squares, self._alphas, animated_crops):
      animated = sampling.check_rgb(animated, "animated crop")
      if square.target is not None:
        resized = media.resize_frame(sampling.to_unit_float(animated), square.size)[square.within]
        output[square.target] += resized * alpha
    return output


class PasteBack(GroupPasteBack):
  """Pastes animated crops of one face into one source photo; the resized photo and the mask are prepared once.

  Args:
    source_image: the full source photo, RGB (H, W, 3), float in [0, 1] or uint8.
    placement: the `crop.Placement` of the crop (as `crop.crop_square` returns it) in the photo's pixels.
    max_output_size: the output's longer side at most (the photo is never enlarged).
    feather: the width of the blend band, as a fraction of the square's side (0: a hard edge).

  Attributes:
    output_size: (height, width) of every output frame.
  """

  def __init__(self, source_image, placement, max_output_size=MAX_OUTPUT_SIZE, feather=FEATHER):
    super().__init__(source_image, [placement], max_output_size, feather)

  def __call__(self, animated_crop):  # pylint: disable=arguments-renamed
    """The source photo with `animated_crop` (RGB (S, S, 3) float in [0, 1]) pasted in: float32 output_size."""
    return super().__call__([animated_crop])


def paste_back(source_image, placement, animated_crop, max_output_size=MAX_OUTPUT_SIZE, feather=FEATHER):
  """One animated crop pasted into the source photo (for many frames, build one `PasteBack` and call it)."""
  return PasteBack(source_image, placement, max_output_size, feather)(animated_crop)

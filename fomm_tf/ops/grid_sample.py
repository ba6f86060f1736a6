"""Differentiable bilinear grid sampling (NHWC), PyTorch `grid_sample` semantics.

Built from gathers and elementwise ops only so that it converts to TFLite
builtin ops.
"""

import tensorflow as tf

PADDING_MODES = ("zeros", "reflection")


def _unnormalize(coord, size, align_corners):
  size = tf.cast(size, coord.dtype)
  if align_corners:
    return (coord + 1.0) * 0.5 * (size - 1.0)
  return ((coord + 1.0) * size - 1.0) * 0.5


def _reflect(coord, size, align_corners):
  """Reflects out-of-range pixel coordinates back into the image, then clips."""
  size = tf.cast(size, coord.dtype)
  if align_corners:
    low, span = 0.0, size - 1.0
  else:
    low, span = -0.5, size
  # A one-pixel axis has nothing to reflect about: every tap is pixel 0.
  safe_span = tf.maximum(span, 1e-12)
  dist = tf.abs(coord - low)
  flips = tf.floor(dist / safe_span)
  extra = dist - flips * safe_span
  odd = tf.equal(tf.math.floormod(flips, 2.0), 1.0)
  reflected = tf.where(odd, span - extra + low, extra + low)
  reflected = tf.where(span > 0.0, reflected, tf.zeros_like(reflected))
  return tf.clip_by_value(reflected, 0.0, size - 1.0)


def grid_sample(image, grid, align_corners=True, padding_mode="zeros"):
  """Samples `image` bilinearly at the (x, y) locations in `grid`.

  Args:
    image: (B, H, W, C) float tensor.
    grid: (B, Ho, Wo, 2) sampling locations in [-1, 1] coordinates.
    align_corners: True maps -1/+1 to the centres of the corner pixels
      (pixel = (x + 1)(W - 1) / 2); False maps them to the outer edges of the
      corner pixels (pixel = ((x + 1) W - 1) / 2), PyTorch's default since 1.3.
    padding_mode: "zeros" (taps outside the image contribute zero) or
      "reflection" (coordinates are reflected at the borders).

  Returns:
    (B, Ho, Wo, C) tensor.
  """
  if padding_mode not in PADDING_MODES:
    raise ValueError(f"grid_sample: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
  image = tf.convert_to_tensor(image)
  # Index arithmetic stays in at least float32 even for half-precision images:
  # float16 cannot resolve sub-pixel positions across a 256-pixel frame.
  coord_dtype = tf.float64 if image.dtype == tf.float64 else tf.float32
  grid = tf.cast(grid, coord_dtype)
  if image.shape.rank != 4 or grid.shape.rank != 4 or grid.shape[-1] != 2:
    raise ValueError(f"grid_sample: expected image (B,H,W,C) and grid (B,Ho,Wo,2), got {image.shape} and {grid.shape}")
  shape = tf.shape(image)
  batch = shape[0]
  height = image.shape[1] if image.shape[1] is not None else shape[1]
  width = image.shape[2] if image.shape[2] is not None else shape[2]
  channels = image.shape[3] if image.shape[3] is not None else shape[3]

  ix = _unnormalize(grid[..., 0], width, align_corners)
  iy = _unnormalize(grid[..., 1], height, align_corners)
  if padding_mode == "reflection":
    ix = _reflect(ix, width, align_corners)
    iy = _reflect(iy, height, align_corners)

  x0 = tf.floor(ix)
  y0 = tf.floor(iy)
  wx1 = ix - x0
  wy1 = iy - y0
  wx0 = 1.0 - wx1
  wy0 = 1.0 - wy1
  x0 = tf.cast(x0, tf.int32)
  y0 = tf.cast(y0, tf.int32)
  x1 = x0 + 1
  y1 = y0 + 1

  flat = tf.reshape(image, [-1, channels])
  batch_offset = tf.reshape(tf.range(batch) * (height * width), [-1, 1, 1])

  def tap(yi, xi, weight):
    inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
    xi = tf.clip_by_value(xi, 0, width - 1)
    yi = tf.clip_by_value(yi, 0, height - 1)
    values = tf.gather(flat, batch_offset + yi * width + xi)
    weight = weight * tf.cast(inside, coord_dtype)
    return values * tf.cast(weight, image.dtype)[..., tf.newaxis]

  return (tap(y0, x0, wy0 * wx0) + tap(y0, x1, wy0 * wx1) + tap(y1, x0, wy1 * wx0) + tap(y1, x1, wy1 * wx1))

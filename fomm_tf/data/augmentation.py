"""Training augmentations of FOMM, applied identically to every frame of a clip.

A clip is a float32 array (T, H, W, 3) with values in [0, 1]; for training T
is 2 (source and driving). Every random choice is drawn once per clip from
the `np.random.Generator` passed in, so both frames get the same flip, crop
and colour change, and the same generator state gives the same result.

The order follows the official `AllAugmentationTransform`: flips, random
resize, random crop, colour jitter. Flips follow the official `RandomFlip`
by default (`flip_mode="official"`): with probability 0.5 the clip is reversed
in time and nothing else is flipped; otherwise it is mirrored with probability
0.5 (so 50% time-flipped, 25% mirrored, never both). `flip_mode="independent"`
tosses the two coins independently (25% of clips get both). One deliberate
difference from the official code: colour jitter works in float32 with
torchvision's tensor semantics instead of going through 8-bit PIL images, so
no rounding to 1/255 happens.

Public API:
  AugmentationParams.from_config(cfg) -> AugmentationParams
  augment_clip(frames, params, rng) -> frames
  random_flip, random_resize, random_crop, color_jitter: the single steps.
  sample_jitter_factors(rng, brightness, contrast, saturation, hue)
  adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue,
  rgb_to_hsv, hsv_to_rgb: deterministic building blocks.
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np

from fomm_tf import checks
from fomm_tf.errors import AugmentationError
from fomm_tf.io import media

FLIP_MODES = ("official", "independent")
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class AugmentationParams:
  """What to randomise; all off by default.

  Attributes:
    flip_time: reverse the clip's frame order with probability 0.5.
    flip_horizontal: mirror every frame left-right (with probability 0.5, or
      0.25 when time flips are on too and `flip_mode` is "official").
    flip_mode: "official" (a time flip excludes the mirror) or "independent".
    brightness, contrast, saturation: jitter strengths s >= 0; the factor is
      drawn uniformly from [max(0, 1 - s), 1 + s] (0 switches it off).
    hue: hue jitter strength in [0, 0.5]; the shift is drawn uniformly from
      [-hue, hue] (in turns of the colour wheel).
    resize_ratio: (low, high) range of the random scale factor, or None.
    crop_size: (height, width) of the random crop, or None.
  """
  flip_time: bool = False
  flip_horizontal: bool = False
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  resize_ratio: Optional[Tuple[float, float]] = None
  crop_size: Optional[Tuple[int, int]] = None
  flip_mode: str = "official"

  def __post_init__(self):
    for name in ("flip_time", "flip_horizontal"):
      if not isinstance(getattr(self, name), (bool, np.bool_)):
        raise AugmentationError(f"{name} must be a bool, got {getattr(self, name)!r}")
    if self.flip_mode not in FLIP_MODES:
      raise AugmentationError(f"flip_mode must be one of {', '.join(FLIP_MODES)}, got {self.flip_mode!r}")
    for name in ("brightness", "contrast", "saturation", "hue"):
      value = getattr(self, name)
      if not checks.is_number(value) or not value >= 0:
        raise AugmentationError(f"jitter {name} must be a number >= 0, got {value!r}")
    if self.hue > 0.5:
      raise AugmentationError(f"jitter hue must be in [0, 0.5], got {self.hue}")
    if self.resize_ratio is not None:
      ratio = tuple(self.resize_ratio)
      if (len(ratio) != 2 or not all(checks.is_number(r) for r in ratio) or not 0 < ratio[0] <= ratio[1]):
        raise AugmentationError(f"resize_ratio must be (low, high) with 0 < low <= high, "
                                f"got {list(ratio)}")
      object.__setattr__(self, "resize_ratio", (float(ratio[0]), float(ratio[1])))
      if self.crop_size is None:
        # Without a crop the frames of a batch would differ in size.
        raise AugmentationError(f"resize_ratio {list(ratio)} needs a crop_size to bring "
                                f"frames back to one size")
    if self.crop_size is not None:
      size = tuple(self.crop_size)
      if len(size) != 2 or not all(checks.is_positive_int(s) for s in size):
        raise AugmentationError(f"crop_size must be (height, width) of positive integers, "
                                f"got {list(size)}")
      object.__setattr__(self, "crop_size", (int(size[0]), int(size[1])))

  @classmethod
  def from_config(cls, cfg) -> "AugmentationParams":
    """Reads the dataset section of a FommConfig (empty tuples mean off)."""
    return cls(flip_time=bool(cfg.flip_time),
               flip_horizontal=bool(cfg.flip_horizontal),
               flip_mode=cfg.flip_mode,
               brightness=float(cfg.jitter_brightness),
               contrast=float(cfg.jitter_contrast),
               saturation=float(cfg.jitter_saturation),
               hue=float(cfg.jitter_hue),
               resize_ratio=tuple(cfg.resize_ratio) if cfg.resize_ratio else None,
               crop_size=tuple(cfg.crop_size) if cfg.crop_size else None)

  def output_size(self, input_size: Tuple[int, int]) -> Tuple[int, int]:
    """(height, width) of augmented frames given the input frame size."""
    return self.crop_size if self.crop_size is not None else tuple(input_size)


def _check_clip(frames) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
    raise AugmentationError(f"a clip must be a non-empty (T, H, W, 3) array, got shape "
                            f"{frames.shape}")
  if not np.issubdtype(frames.dtype, np.floating):
    raise AugmentationError(f"a clip must be float, got {frames.dtype}")
  return frames.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------
# Geometry.
# ----------------------------------------------------------------------------


def random_flip(frames: np.ndarray,
                rng: np.random.Generator,
                flip_time: bool,
                flip_horizontal: bool,
                mode: str = "official") -> np.ndarray:
  """Reverses the frame order or mirrors all frames, as the official `RandomFlip` (see the module doc).

  Both coins are always tossed, so the generator advances the same way
  whatever the flags are.
  """
  frames = _check_clip(frames)
  reverse_time, mirror = rng.random(2) < 0.5
  if flip_time and reverse_time:
    frames = frames[::-1]
    if mode == "official":
      return np.ascontiguousarray(frames)
  if flip_horizontal and mirror:
    frames = frames[:, :, ::-1]
  return np.ascontiguousarray(frames)


def random_resize(frames: np.ndarray, rng: np.random.Generator, ratio: Tuple[float, float]) -> np.ndarray:
  """Scales all frames by one factor drawn uniformly from `ratio`.

  The new size is truncated to whole pixels (at least 1), as the official
  `RandomResize` does; shrinking averages areas, enlarging is bilinear.
  """
  frames = _check_clip(frames)
  scale = rng.uniform(ratio[0], ratio[1])
  height, width = frames.shape[1:3]
  size = (max(1, int(height * scale)), max(1, int(width * scale)))
  return np.stack([media.resize_frame(frame, size) for frame in frames])


def random_crop(frames: np.ndarray, rng: np.random.Generator, size: Tuple[int, int]) -> np.ndarray:
  """Crops one random (height, width) window out of all frames.

  Frames smaller than the window along an axis are first padded on both
  sides (centred) by repeating their edge pixels, like the official
  `pad_clip`, and that axis then has a single possible offset.
  """
  frames = _check_clip(frames)
  crop_height, crop_width = size
  height, width = frames.shape[1:3]
  pad_y = max(0, crop_height - height)
  pad_x = max(0, crop_width - width)
  if pad_y or pad_x:
    frames = np.pad(frames, ((0, 0), (pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2), (0, 0)),
                    mode="edge")
    height, width = frames.shape[1:3]
  top = int(rng.integers(0, height - crop_height + 1))
  left = int(rng.integers(0, width - crop_width + 1))
  return np.ascontiguousarray(frames[:, top:top + crop_height, left:left + crop_width])


# ----------------------------------------------------------------------------
# Colour.
# ----------------------------------------------------------------------------


def _grayscale(frames: np.ndarray) -> np.ndarray:
  """Luma of each pixel, (..., H, W, 1)."""
  return (frames @ _LUMA_WEIGHTS)[..., None]


def _blend(frames: np.ndarray, other: np.ndarray, factor: float) -> np.ndarray:
  out = frames * np.float32(factor) + other * np.float32(1.0 - factor)
  return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def adjust_brightness(frames: np.ndarray, factor: float) -> np.ndarray:
  """Scales every value by `factor` (blend with black), clipped to [0, 1]."""
  return _blend(_check_clip(frames), np.float32(0.0), factor)


def adjust_contrast(frames: np.ndarray, factor: float) -> np.ndarray:
  """Blends each frame with the mean luma of that same frame."""
  frames = _check_clip(frames)
  mean = _grayscale(frames).mean(axis=(1, 2, 3), keepdims=True)
  return _blend(frames, mean, factor)


def adjust_saturation(frames: np.ndarray, factor: float) -> np.ndarray:
  """Blends every pixel with its own luma (0 gives a grey image)."""
  frames = _check_clip(frames)
  return _blend(frames, _grayscale(frames), factor)


def _rgb_planes_to_hsv(red, green, blue):
  """Hue, saturation, value planes from contiguous float32 RGB planes."""
  value = np.maximum(np.maximum(red, green), blue)
  chroma = value - np.minimum(np.minimum(red, green), blue)
  grey = chroma == 0
  inverse_chroma = np.float32(1.0) / np.where(grey, np.float32(1.0), chroma)
  # The channel holding the maximum decides the 60-degree sector; where two
  # channels tie, red wins over green, green over blue (as in colorsys).
  hue = (red - green) * inverse_chroma + np.float32(4.0)
  np.copyto(hue, (blue - red) * inverse_chroma + np.float32(2.0), where=value == green)
  np.copyto(hue, (green - blue) * inverse_chroma, where=value == red)
  hue *= np.float32(1.0 / 6.0)
  hue -= np.floor(hue)
  hue[grey] = 0.0
  saturation = chroma / np.where(value == 0, np.float32(1.0), value)
  return hue, saturation, value


def _hsv_planes_to_rgb(hue, saturation, value):
  """RGB planes from HSV planes, hue taken modulo 1.

  Uses the closed form channel = v - v * s * clip(min(k, 4 - k), 0, 1)
  with k = (n + 6 * hue) mod 6 and n = 5, 3, 1 for red, green, blue, which
  needs no per-sector branching.
  """
  chroma = value * saturation
  planes = []
  for offset in (5.0, 3.0, 1.0):
    k = np.mod(np.float32(offset) + hue * np.float32(6.0), np.float32(6.0))
    weight = np.clip(np.minimum(k, np.float32(4.0) - k), 0.0, 1.0)
    planes.append(value - chroma * weight)
  return planes


def _planes(array: np.ndarray):
  """The three channels of (..., 3) float32 data as contiguous planes."""
  return np.moveaxis(np.asarray(array, dtype=np.float32), -1, 0).copy()


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
  """RGB in [0, 1] to HSV, all three in [0, 1] (hue in turns)."""
  return np.stack(_rgb_planes_to_hsv(*_planes(rgb)), axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
  """Inverse of `rgb_to_hsv`; hue is taken modulo 1."""
  return np.stack(_hsv_planes_to_rgb(*_planes(hsv)), axis=-1)


def adjust_hue(frames: np.ndarray, shift: float) -> np.ndarray:
  """Rotates the hue of every pixel by `shift` turns (in [-0.5, 0.5])."""
  frames = _check_clip(frames)
  if not -0.5 <= shift <= 0.5:
    raise AugmentationError(f"hue shift must be in [-0.5, 0.5], got {shift}")
  hue, saturation, value = _rgb_planes_to_hsv(*_planes(frames))
  hue += np.float32(shift)
  rgb = np.stack(_hsv_planes_to_rgb(hue, saturation, value), axis=-1)
  return np.clip(rgb, 0.0, 1.0)


def sample_jitter_factors(rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue: float):
  """Draws torchvision ColorJitter parameters.

  Returns:
    (order, factors): `order` is a permutation of the four adjustments
    (0 brightness, 1 contrast, 2 saturation, 3 hue) and `factors` the four
    values: multiplicative factors in [max(0, 1 - s), 1 + s] and a hue shift
    in [-hue, hue]; None for every adjustment whose strength is 0.
    All random numbers are always drawn, so the generator advances the same
    way whatever the strengths are.
  """
  order = rng.permutation(4)
  draws = rng.random(4)
  factors = []
  for strength, draw in zip((brightness, contrast, saturation), draws[:3]):
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    factors.append(low + (high - low) * draw if strength > 0 else None)
  factors.append(-hue + 2.0 * hue * draws[3] if hue > 0 else None)
  return order, factors


def color_jitter(frames: np.ndarray,
                 rng: np.random.Generator,
                 brightness: float = 0.0,
                 contrast: float = 0.0,
                 saturation: float = 0.0,
                 hue: float = 0.0) -> np.ndarray:
  """Applies torchvision-style ColorJitter, one draw for the whole clip."""
  frames = _check_clip(frames)
  order, factors = sample_jitter_factors(rng, brightness, contrast, saturation, hue)
  adjustments = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
  for which in order:
    if factors[which] is not None:
      frames = adjustments[which](frames, factors[which])
  return frames


def augment_clip(frames: np.ndarray, params: AugmentationParams, rng: np.random.Generator) -> np.ndarray:
  """Flips, resizes, crops and colour-jitters a clip as `params` says."""
  frames = random_flip(frames, rng, params.flip_time, params.flip_horizontal, params.flip_mode)
  if params.resize_ratio is not None:
    frames = random_resize(frames, rng, params.resize_ratio)
  if params.crop_size is not None:
    frames = random_crop(frames, rng, params.crop_size)
  if max(params.brightness, params.contrast, params.saturation, params.hue) > 0:
    frames = color_jitter(frames, rng, params.brightness, params.contrast, params.saturation, params.hue)
  return frames

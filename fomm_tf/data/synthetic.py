"""Deterministic synthetic "articulated puppet" videos for tests, benchmarks and demos.

Every video shows one puppet over a static textured background. The puppet is a
textured torso ellipse with a head (eyes and mouth) and four limbs hinged at
joints. Over time the whole body translates, rotates and scales, while the head
and each limb rotate independently about their joints; all parameters follow
sinusoids with random periods and phases, so the motion is smooth, piecewise
rigid and therefore exactly the kind of motion the First Order Motion Model
(keypoints + local affine transforms) can represent. Textures are attached to
the parts, so a point on a part keeps its colour while the part moves.

An *identity* fixes shapes, textures, colours and background; a *motion* fixes
the trajectory. Several videos can share an identity, and dataset files are
named ``id{N:03d}#{M:02d}`` so that FOMM's ``#``-prefix identity sampling works.

Coordinates follow the official FOMM keypoint convention: ``(x, y)`` in
``[-1, 1]``, ``x`` along the width, with -1/+1 at the centres of the corner
pixels, i.e. ``pixel = (coord + 1) * (size - 1) / 2``. Ground-truth keypoints
(``NUM_KEYPOINTS`` per frame, named in ``KEYPOINT_NAMES``) use the same
convention.

Public API:
  sample_identity(rng_or_seed) -> Identity
  render_video(rng_or_seed, num_frames, frame_size, identity=None)
      -> (frames uint8 (T, H, W, 3), keypoints float32 (T, K, 2))
  write_dataset(output_dir, num_train, num_test, num_frames, frame_size, seed,
                fmt, videos_per_identity=4, overwrite=False) -> summary dict
"""

import dataclasses
import json
import math
import os
import re
import time
from typing import Optional, Union

import numpy as np

from fomm_tf.errors import DatasetError
from fomm_tf.io import files

FORMATS = ("mp4", "png_folder", "strip")
MIN_FRAME_SIZE = 32
FPS = 25
MP4_CRF = 12
DATASET_JSON = "dataset.json"
KEYPOINTS_SUFFIX = ".keypoints.npy"
GENERATOR_NAME = "fomm_tf.data.synthetic"
GENERATOR_VERSION = 2

KEYPOINT_NAMES = (
    "body_centre",
    "head_centre",
    "shoulder_left",
    "shoulder_right",
    "hip_left",
    "hip_right",
    "hand_left",
    "hand_right",
    "foot_left",
    "foot_right",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# Texture tiles are square, periodic RGB images sampled with wrap-around.
_PART_TEXTURE_SIZE = 64
_BACKGROUND_TEXTURE_SIZE = 128
_PART_TILE_STRETCH = 3.0
# The whole puppet (including limb widths) must stay this far inside [-1, 1].
_FRAME_LIMIT = 0.95
# Relative amplitude of the breathing-like scale oscillation.
_MAX_SCALE_AMPLITUDE = 0.12

RngOrSeed = Union[int, np.integer, np.random.Generator]

# ----------------------------------------------------------------------------
# Textures.
# ----------------------------------------------------------------------------


def _periodic_value_noise(rng, size, cells):
  """Smooth, tileable noise in [0, 1]: a random periodic lattice, smoothstep-interpolated."""
  lattice = rng.uniform(0.0, 1.0, (cells, cells)).astype(np.float32)
  coords = np.arange(size, dtype=np.float32) * (cells / size)
  index0 = np.floor(coords).astype(np.int64)
  frac = coords - index0
  frac = frac * frac * (3.0 - 2.0 * frac)
  index0 %= cells
  index1 = (index0 + 1) % cells
  rows = (lattice[index0] * (1.0 - frac)[:, None] + lattice[index1] * frac[:, None])
  return rows[:, index0] * (1.0 - frac)[None, :] + rows[:, index1] * frac[None, :]


def _random_colour(rng):
  return rng.uniform(0.05, 0.95, 3).astype(np.float32)


def _distinct_colours(rng, min_distance=0.35):
  """Two colours far enough apart that the pattern between them stays visible."""
  first = _random_colour(rng)
  while True:
    second = _random_colour(rng)
    if np.linalg.norm(first - second) >= min_distance:
      return first, second


def _make_texture(rng, size, max_frequency, colours=None):
  """A tileable RGB texture mixing smooth noise, stripes and a checker pattern.

  Args:
    rng: numpy Generator.
    size: tile side in texels.
    max_frequency: the most stripe/checker cycles per tile (keeps patterns
      above the pixel scale once the tile is mapped onto the frame).
    colours: optional pair of base colours; random distinct ones otherwise.

  Returns:
    float32 array (size, size, 3) with values in [0, 1].
  """
  grid = np.arange(size, dtype=np.float32) / size
  yy, xx = np.meshgrid(grid, grid, indexing="ij")

  noise = 0.65 * _periodic_value_noise(rng, size, int(rng.integers(3, 7)))
  noise += 0.35 * _periodic_value_noise(rng, size, int(rng.integers(6, 11)))

  kx, ky = 0, 0
  while kx == 0 and ky == 0:
    kx, ky = (int(k) for k in rng.integers(-max_frequency, max_frequency + 1, 2))
  stripe_wave = np.sin(2.0 * np.pi * (kx * xx + ky * yy) + rng.uniform(0.0, 2.0 * np.pi))
  stripes = 0.5 + 0.5 * np.tanh(stripe_wave * rng.uniform(1.0, 4.0))

  cx, cy = (int(k) for k in rng.integers(1, max(2, max_frequency // 2) + 1, 2))
  checker_wave = np.sin(2.0 * np.pi * cx * xx) * np.sin(2.0 * np.pi * cy * yy)
  checker = 0.5 + 0.5 * np.tanh(checker_wave * 4.0)

  weights = rng.dirichlet([1.0, 1.0, 1.0])
  mix = weights[0] * noise + weights[1] * stripes + weights[2] * checker
  # Stretch the mixture so every texture uses most of its colour range.
  mix = (mix - mix.min()) / max(float(mix.max() - mix.min()), 1e-6)

  first, second = colours if colours is not None else _distinct_colours(rng)
  texture = first * (1.0 - mix[..., None]) + second * mix[..., None]
  # Fine grain gives flat regions something for the motion estimator to lock on to.
  grain = _periodic_value_noise(rng, size, 8)
  texture *= (0.85 + 0.3 * grain)[..., None]
  return np.clip(texture, 0.0, 1.0).astype(np.float32)


def _sample_texture(texture, u, v):
  """Bilinearly samples a periodic texture at texel coordinates (u along x, v along y)."""
  size = texture.shape[0]
  u0 = np.floor(u)
  v0 = np.floor(v)
  fu = (u - u0)[..., None].astype(np.float32)
  fv = (v - v0)[..., None].astype(np.float32)
  u0 = u0.astype(np.int64) % size
  v0 = v0.astype(np.int64) % size
  u1 = (u0 + 1) % size
  v1 = (v0 + 1) % size
  top = texture[v0, u0] * (1.0 - fu) + texture[v0, u1] * fu
  bottom = texture[v1, u0] * (1.0 - fu) + texture[v1, u1] * fu
  return top * (1.0 - fv) + bottom * fv


# ----------------------------------------------------------------------------
# Parts and identities.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Part:
  """One rigid, textured (or flat-coloured) shape, defined in its own local frame.

  Lengths are in body units (multiplied by the body scale when rendered).

  Attributes:
    kind: "ellipse" (semi-axes ``half``), "box" (half sizes ``half``) or
      "capsule" (segment along local x of half length ``half[0]`` and radius
      ``half[1]``).
    centre: shape centre in the part frame (limb frames start at the joint).
    half: see ``kind``.
    texture: periodic RGB tile, or None for a flat ``colour``.
    colour: flat colour used when ``texture`` is None.
    texels_per_unit: texture density in texels per body unit.
    texture_offset: texel offset so parts do not all start at the tile corner.
    shading: darkening towards the rim (0 = flat), gives a rounded look.
  """

  kind: str
  centre: tuple
  half: tuple
  texture: Optional[np.ndarray] = None
  colour: tuple = (0.0, 0.0, 0.0)
  texels_per_unit: float = 1.0
  texture_offset: tuple = (0.0, 0.0)
  shading: float = 0.0

  def bounding_radius(self):
    """Radius around the part-frame origin that contains the whole shape."""
    reach = self.half[0] + self.half[1] if self.kind == "capsule" else math.hypot(*self.half)
    return math.hypot(*self.centre) + reach

  def colour_at(self, local_x, local_y):
    """Unshaded surface colour (float32 RGB in [0, 1]) at part-frame points."""
    if self.texture is None:
      shape = np.broadcast(local_x, local_y).shape
      return np.broadcast_to(np.asarray(self.colour, np.float32), shape + (3,)).copy()
    u = local_x * self.texels_per_unit + self.texture_offset[0]
    v = local_y * self.texels_per_unit + self.texture_offset[1]
    return _sample_texture(self.texture, np.asarray(u), np.asarray(v))

  def signed_distance(self, local_x, local_y):
    """Signed distance (body units, negative inside) to the shape outline."""
    x = local_x - self.centre[0]
    y = local_y - self.centre[1]
    hx, hy = self.half
    if self.kind == "ellipse":
      radius = np.sqrt((x / hx)**2 + (y / hy)**2)
      gradient = np.sqrt((x / hx**2)**2 + (y / hy**2)**2) / np.maximum(radius, 1e-6)
      return (radius - 1.0) / np.maximum(gradient, 1e-6)
    if self.kind == "box":
      qx = np.abs(x) - hx
      qy = np.abs(y) - hy
      outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
      return outside + np.minimum(np.maximum(qx, qy), 0.0)
    if self.kind == "capsule":
      along = np.clip(x, -hx, hx)
      return np.hypot(x - along, y) - hy
    raise ValueError(f"unknown part kind {self.kind!r}; expected ellipse, box or capsule")

  def rim_factor(self, local_x, local_y):
    """0 on the part's medial axis, about 1 at its outline; drives the shading."""
    x = local_x - self.centre[0]
    y = local_y - self.centre[1]
    hx, hy = self.half
    if self.kind == "ellipse":
      return np.minimum((x / hx)**2 + (y / hy)**2, 1.0)
    # Boxes and capsules are limbs lying along local x: shade across them like a cylinder.
    return np.minimum((y / hy)**2, 1.0)


@dataclasses.dataclass(frozen=True)
class Limb:
  """A limb hinged at ``joint`` (body frame) pointing along ``rest_angle`` (radians)."""

  joint: tuple
  rest_angle: float
  length: float
  part: Part


@dataclasses.dataclass(frozen=True)
class Identity:
  """Everything about a video that does not change with the motion."""

  background: np.ndarray
  background_texels_per_unit: float
  background_offset: tuple
  torso: Part
  head: Part
  face: tuple
  neck: tuple
  head_offset: float
  limbs: tuple
  body_scale: float
  reach: float


def _as_rng(rng_or_seed, what):
  if isinstance(rng_or_seed, np.random.Generator):
    return rng_or_seed
  if isinstance(rng_or_seed, (bool, np.bool_)) or not isinstance(rng_or_seed, (int, np.integer)):
    raise DatasetError(f"{what} must be an int seed or a numpy Generator, got {rng_or_seed!r}")
  if rng_or_seed < 0:
    raise DatasetError(f"{what} must be a non-negative int, got {rng_or_seed}")
  return np.random.default_rng(int(rng_or_seed))


def _textured_part(rng, kind, centre, half, tile_units, shading, colours=None):
  texture = _make_texture(rng, _PART_TEXTURE_SIZE, max_frequency=1, colours=colours)
  return Part(
      kind=kind,
      centre=tuple(float(c) for c in centre),
      half=tuple(float(h) for h in half),
      texture=texture,
      # Patterns a few pixels wide are beyond what a small generator learns to
      # reproduce in a CPU-sized training run; stretched tiles keep the detail
      # at the scale of the parts.
      texels_per_unit=_PART_TEXTURE_SIZE / (tile_units * _PART_TILE_STRETCH),
      texture_offset=tuple(float(o) for o in rng.uniform(0.0, _PART_TEXTURE_SIZE, 2)),
      shading=shading,
  )


def _face_parts(rng, head_radius):
  """Eyes and mouth in the head frame (head centre at the origin, up = -y)."""
  eye_colour = tuple(float(c) for c in rng.uniform(0.0, 0.2, 3))
  mouth_colour = (float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.0, 0.25)), float(rng.uniform(0.0, 0.3)))
  eye_gap = head_radius * rng.uniform(0.3, 0.45)
  eye_height = -head_radius * rng.uniform(0.15, 0.35)
  eye_half = (head_radius * rng.uniform(0.1, 0.16), head_radius * rng.uniform(0.12, 0.22))
  mouth_half = (head_radius * rng.uniform(0.25, 0.45), head_radius * rng.uniform(0.06, 0.12))
  mouth_height = head_radius * rng.uniform(0.4, 0.55)
  return (
      Part("ellipse", (-eye_gap, eye_height), eye_half, colour=eye_colour),
      Part("ellipse", (eye_gap, eye_height), eye_half, colour=eye_colour),
      Part("ellipse", (0.0, mouth_height), mouth_half, colour=mouth_colour),
  )


def sample_identity(rng_or_seed: RngOrSeed) -> Identity:
  """Draws shapes, textures, colours and background for one puppet identity."""
  rng = _as_rng(rng_or_seed, "rng_or_seed")
  # A calm background (few stripe/checker cycles) keeps the puppet's motion the
  # main thing to learn, rather than reproducing fine background detail.
  background = _make_texture(rng, _BACKGROUND_TEXTURE_SIZE, max_frequency=2)
  background_mean = background.mean(axis=(0, 1))
  # A low-contrast background, like the blurred backdrop of a talking-head
  # video: the puppet's motion is what there is to learn, not texture.
  background = background_mean + rng.uniform(0.15, 0.35) * (background - background_mean)

  # The torso must stand out from the background on average, or the puppet
  # would be hard to segment (for people and for the motion estimator).
  while True:
    torso_colours = _distinct_colours(rng)
    if np.linalg.norm((torso_colours[0] + torso_colours[1]) / 2 - background_mean) >= 0.25:
      break

  # Broad parts: at the modest on-screen size chosen below, the torso and
  # limbs still cover enough pixels to carry their motion.
  torso_half = (rng.uniform(0.22, 0.3), rng.uniform(0.3, 0.4))
  torso = _textured_part(rng, "ellipse", (0.0, 0.0), torso_half, rng.uniform(0.4, 0.8), 0.35, torso_colours)

  head_radius = rng.uniform(0.11, 0.16)
  head_half = (head_radius * rng.uniform(0.85, 1.0), head_radius * rng.uniform(1.0, 1.15))
  head = _textured_part(rng, "ellipse", (0.0, 0.0), head_half, rng.uniform(0.3, 0.6), 0.3)
  neck = (0.0, -torso_half[1] * 0.85)
  head_offset = head_half[1] * 0.85

  limbs = []
  shoulder = (torso_half[0] * 0.8, -torso_half[1] * 0.45)
  hip = (torso_half[0] * 0.6, torso_half[1] * 0.7)
  arm_angle = math.radians(rng.uniform(15.0, 65.0))
  leg_angle = math.radians(rng.uniform(70.0, 88.0))
  for joint_right, angle_right in ((shoulder, arm_angle), (hip, leg_angle)):
    length = rng.uniform(0.26, 0.4)
    width = rng.uniform(0.07, 0.11)
    kind = str(rng.choice(["capsule", "box", "ellipse"]))
    for side in (-1.0, 1.0):
      # Limbs start a little inside the joint so the hinge looks connected.
      inset = width
      if kind == "capsule":
        centre, half = ((length - inset) / 2, 0.0), ((length + inset) / 2 - width, width)
      else:
        centre, half = ((length - inset) / 2, 0.0), ((length + inset) / 2, width)
      part = _textured_part(rng, kind, centre, half, rng.uniform(0.3, 0.6), 0.3)
      joint = (side * joint_right[0], joint_right[1])
      rest = angle_right if side > 0 else math.pi - angle_right
      limbs.append(Limb(joint=joint, rest_angle=float(rest), length=float(length), part=part))

  reach = max(
      max(torso_half),
      math.hypot(*neck) + head_offset + max(head_half),
      *(math.hypot(*limb.joint) + limb.part.bounding_radius() for limb in limbs),
  )
  # Largest on-screen radius: between 45% and 60% of the half frame, leaving
  # room to move by more than a limb's width.
  body_scale = rng.uniform(0.45, 0.6) / (reach * (1.0 + _MAX_SCALE_AMPLITUDE))

  return Identity(
      background=background,
      background_texels_per_unit=_BACKGROUND_TEXTURE_SIZE / rng.uniform(1.5, 2.5),
      background_offset=tuple(float(o) for o in rng.uniform(0.0, _BACKGROUND_TEXTURE_SIZE, 2)),
      torso=torso,
      head=head,
      face=_face_parts(rng, head_radius),
      neck=neck,
      head_offset=float(head_offset),
      limbs=tuple(limbs),
      body_scale=float(body_scale),
      reach=float(reach),
  )


# ----------------------------------------------------------------------------
# Motion.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Oscillation:
  """base + amplitude * sin(2 pi t / period + phase), vectorised over components."""

  base: np.ndarray
  amplitude: np.ndarray
  period: np.ndarray
  phase: np.ndarray

  def at(self, t):
    return self.base + self.amplitude * np.sin(2.0 * np.pi * t / self.period + self.phase)


def _oscillation(rng, base, amplitude, count, min_period=16.0, max_period=48.0):
  return _Oscillation(
      base=np.asarray(base, np.float64),
      amplitude=np.asarray(amplitude, np.float64),
      period=rng.uniform(min_period, max_period, count),
      phase=rng.uniform(0.0, 2.0 * np.pi, count),
  )


@dataclasses.dataclass(frozen=True)
class _Motion:
  centre: _Oscillation
  rotation: _Oscillation
  scale: _Oscillation
  head: _Oscillation
  limbs: _Oscillation


def _sample_motion(rng, identity):
  """Per-video trajectory; translation limits keep the puppet inside the frame."""
  scale_amplitude = rng.uniform(0.03, _MAX_SCALE_AMPLITUDE)
  max_radius = identity.body_scale * identity.reach * (1.0 + scale_amplitude)
  room = _FRAME_LIMIT - max_radius
  amplitude = room * rng.uniform(0.5, 0.9, 2)
  base = rng.uniform(-1.0, 1.0, 2) * (room - amplitude)
  limb_amplitude = np.radians(np.concatenate([rng.uniform(25.0, 60.0, 2), rng.uniform(12.0, 30.0, 2)]))
  return _Motion(
      centre=_oscillation(rng, base, amplitude, 2),
      rotation=_oscillation(rng, [math.radians(rng.uniform(-15.0, 15.0))], [math.radians(rng.uniform(10.0, 30.0))], 1),
      scale=_oscillation(rng, [identity.body_scale], [identity.body_scale * scale_amplitude], 1),
      head=_oscillation(rng, [0.0], [math.radians(rng.uniform(5.0, 25.0))], 1),
      limbs=_oscillation(rng, np.zeros(4), limb_amplitude, 4, min_period=12.0, max_period=40.0),
  )


def _rotation(angle):
  c, s = math.cos(angle), math.sin(angle)
  return np.array([[c, -s], [s, c]])


@dataclasses.dataclass(frozen=True)
class _Placement:
  """Maps part-frame points to frame coordinates: x = translation + scale * R(angle) p."""

  part: Part
  angle: float
  scale: float
  translation: np.ndarray


def _pose(identity, motion, t):
  """Returns (placements in back-to-front order, keypoints (K, 2)) at time t."""
  centre = motion.centre.at(t)
  body_angle = float(motion.rotation.at(t)[0])
  scale = float(motion.scale.at(t)[0])
  body_rotation = _rotation(body_angle)

  def to_frame(body_point):
    return centre + scale * body_rotation @ np.asarray(body_point)

  placements = []
  joints, ends = [], []
  limb_angles = motion.limbs.at(t)
  for limb, swing in zip(identity.limbs, limb_angles):
    angle = limb.rest_angle + float(swing)
    joint = to_frame(limb.joint)
    placements.append(_Placement(limb.part, body_angle + angle, scale, joint))
    joints.append(joint)
    ends.append(to_frame(np.asarray(limb.joint) + limb.length * np.array([math.cos(angle), math.sin(angle)])))

  placements.append(_Placement(identity.torso, body_angle, scale, centre))
  head_angle = float(motion.head.at(t)[0])
  head_centre_body = np.asarray(identity.neck) + _rotation(head_angle) @ np.array([0.0, -identity.head_offset])
  head_centre = to_frame(head_centre_body)
  for part in (identity.head,) + identity.face:
    placements.append(_Placement(part, body_angle + head_angle, scale, head_centre))

  # Limb order is (left arm, right arm, left leg, right leg); see sample_identity.
  keypoints = np.stack(
      [centre, head_centre, joints[0], joints[1], joints[2], joints[3], ends[0], ends[1], ends[2], ends[3]])
  return placements, keypoints


# ----------------------------------------------------------------------------
# Rendering.
# ----------------------------------------------------------------------------


def _pixel_to_coord(pixels, frame_size):
  return pixels * (2.0 / (frame_size - 1)) - 1.0


def _render_background(identity, frame_size):
  coords = _pixel_to_coord(np.arange(frame_size, dtype=np.float64), frame_size)
  yy, xx = np.meshgrid(coords, coords, indexing="ij")
  u = xx * identity.background_texels_per_unit + identity.background_offset[0]
  v = yy * identity.background_texels_per_unit + identity.background_offset[1]
  return _sample_texture(identity.background, u, v).astype(np.float32)


def _dataset_identity(seed, identity_index):
  return sample_identity(np.random.default_rng([seed, 0, identity_index]))


def dataset_background(seed: int, identity_index: int, frame_size: int):
  """The static background (float32 (S, S, 3) in [0, 1]) behind identity `identity_index` of the dataset made
  with `seed` (write_dataset): where a frame differs from it, the puppet is."""
  return _render_background(_dataset_identity(seed, identity_index),
                            _check_count(frame_size, "frame_size", MIN_FRAME_SIZE))


def identity_of(video: str) -> int:
  """The identity index in a video name of write_dataset (``id{N:03d}#{M:02d}`` -> N)."""
  match = re.fullmatch(r"id(\d+)#\d+", video)
  if match is None:
    raise DatasetError(f"{video!r} is not a video name of the synthetic dataset (id<N>#<M>)")
  return int(match.group(1))


def _composite(canvas, placement, frame_size):
  """Draws one part onto the float canvas with a one-pixel soft (anti-aliased) edge."""
  pixels_per_unit = (frame_size - 1) / 2.0
  radius = placement.scale * placement.part.bounding_radius() * pixels_per_unit + 1.0
  centre_px = (placement.translation + 1.0) * pixels_per_unit
  x_lo = max(int(math.floor(centre_px[0] - radius)), 0)
  x_hi = min(int(math.ceil(centre_px[0] + radius)) + 1, frame_size)
  y_lo = max(int(math.floor(centre_px[1] - radius)), 0)
  y_hi = min(int(math.ceil(centre_px[1] + radius)) + 1, frame_size)
  if x_lo >= x_hi or y_lo >= y_hi:
    return

  xs = _pixel_to_coord(np.arange(x_lo, x_hi, dtype=np.float64), frame_size) - placement.translation[0]
  ys = _pixel_to_coord(np.arange(y_lo, y_hi, dtype=np.float64), frame_size) - placement.translation[1]
  dx, dy = np.meshgrid(xs, ys)
  # Inverse of scale * R(angle): rotate by -angle, divide by scale.
  c, s = math.cos(placement.angle), math.sin(placement.angle)
  local_x = (c * dx + s * dy) / placement.scale
  local_y = (-s * dx + c * dy) / placement.scale

  part = placement.part
  distance_px = part.signed_distance(local_x, local_y) * placement.scale * pixels_per_unit
  alpha = np.clip(0.5 - distance_px, 0.0, 1.0).astype(np.float32)
  inside = alpha > 0.0
  if not inside.any():
    return
  colour = part.colour_at(local_x[inside], local_y[inside])
  if part.shading:
    colour *= (1.0 - part.shading * part.rim_factor(local_x[inside], local_y[inside]))[:, None]
  region = canvas[y_lo:y_hi, x_lo:x_hi]
  a = alpha[inside][:, None]
  region[inside] = region[inside] * (1.0 - a) + colour * a


def _check_count(value, name, minimum):
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    raise DatasetError(f"{name} must be an int, got {value!r}")
  if value < minimum:
    raise DatasetError(f"{name} must be >= {minimum}, got {value}")
  return int(value)


def render_video(rng_or_seed: RngOrSeed, num_frames: int, frame_size: int, identity: Optional[Identity] = None):
  """Renders one synthetic video and its ground-truth keypoints.

  Args:
    rng_or_seed: int seed or numpy Generator. Without ``identity`` it draws
      the identity first and then the motion; with one, only the motion.
    num_frames: number of frames (>= 1).
    frame_size: frame height and width in pixels (>= MIN_FRAME_SIZE).
    identity: optional Identity from sample_identity(), to make several
      videos of the same puppet.

  Returns:
    frames: uint8 (num_frames, frame_size, frame_size, 3).
    keypoints: float32 (num_frames, NUM_KEYPOINTS, 2), (x, y) in [-1, 1],
      pixel = (coord + 1) * (frame_size - 1) / 2.
  """
  rng = _as_rng(rng_or_seed, "rng_or_seed")
  num_frames = _check_count(num_frames, "num_frames", 1)
  frame_size = _check_count(frame_size, "frame_size", MIN_FRAME_SIZE)
  if identity is None:
    identity = sample_identity(rng)
  elif not isinstance(identity, Identity):
    raise DatasetError(f"identity must be an Identity from sample_identity(), got {type(identity).__name__}")
  motion = _sample_motion(rng, identity)
  background = _render_background(identity, frame_size)

  frames = np.empty((num_frames, frame_size, frame_size, 3), np.uint8)
  keypoints = np.empty((num_frames, NUM_KEYPOINTS, 2), np.float32)
  for t in range(num_frames):
    placements, keypoints[t] = _pose(identity, motion, float(t))
    canvas = background.copy()
    for placement in placements:
      _composite(canvas, placement, frame_size)
    frames[t] = np.clip(canvas * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
  return frames, keypoints


# ----------------------------------------------------------------------------
# Writing datasets.
# ----------------------------------------------------------------------------


def _write_png(path, image):
  from PIL import Image  # pylint: disable=import-outside-toplevel

  Image.fromarray(image).save(path, format="PNG")


def _write_mp4(path, frames):
  import av  # pylint: disable=import-outside-toplevel

  with av.open(path, mode="w") as container:
    stream = container.add_stream("libx264", rate=FPS, options={"crf": str(MP4_CRF), "preset": "medium"})
    stream.width = frames.shape[2]
    stream.height = frames.shape[1]
    stream.pix_fmt = "yuv420p"
    for frame in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode(None))


def _write_video(split_dir, name, frames, fmt):
  """Writes one video in ``fmt`` and returns its file or folder name."""
  if fmt == "mp4":
    filename = name + ".mp4"
    _write_mp4(os.path.join(split_dir, filename), frames)
  elif fmt == "png_folder":
    filename = name
    os.mkdir(os.path.join(split_dir, filename))
    digits = max(4, len(str(len(frames) - 1)))
    for index, frame in enumerate(frames):
      _write_png(os.path.join(split_dir, filename, f"{index:0{digits}d}.png"), frame)
  else:
    filename = name + ".png"
    # (T, H, W, 3) -> (H, T * W, 3): frames side by side, as FOMM's reader expects.
    _write_png(os.path.join(split_dir, filename), np.concatenate(list(frames), axis=1))
  return filename


def video_name(identity_index: int, video_index: int) -> str:
  """File stem of a video: ``id{N:03d}#{M:02d}``; the part before '#' is the identity."""
  return f"id{identity_index:03d}#{video_index:02d}"


def _plan_split(num_videos, first_identity, videos_per_identity):
  """[(identity index, video index within identity)] for one split."""
  return [(first_identity + i // videos_per_identity, i % videos_per_identity) for i in range(num_videos)]


def _check_output_dir(output_dir, overwrite):
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise DatasetError(f"output_dir {output_dir} exists and is not a directory")
  if os.path.isdir(output_dir) and os.listdir(output_dir):
    if not overwrite:
      raise DatasetError(f"output_dir {output_dir} is not empty; pass overwrite=True (--overwrite) to replace it")
    # Guard against wiping an unrelated directory by a typo in the path.
    if not os.path.isfile(os.path.join(output_dir, DATASET_JSON)):
      raise DatasetError(f"refusing to overwrite {output_dir}: it is not empty and has no {DATASET_JSON}, "
                         "so it does not look like a synthetic dataset")


def write_dataset(output_dir: str,
                  num_train: int,
                  num_test: int,
                  num_frames: int,
                  frame_size: int,
                  seed: int,
                  fmt: str,
                  videos_per_identity: int = 4,
                  overwrite: bool = False) -> dict:
  """Writes a train/test synthetic dataset with per-video keypoints and dataset.json.

  Layout: ``output_dir/{train,test}/<video>`` plus ``<name>.keypoints.npy`` next
  to each video, where ``<video>`` is ``<name>.mp4`` (H.264, yuv420p),
  ``<name>/0000.png ...`` or ``<name>.png`` (frames side by side). Test
  identities are disjoint from train identities. Everything is written into a
  sibling staging folder that is renamed into place only when complete, so a
  failure never leaves a dataset-looking ``output_dir`` behind.

  Args:
    output_dir: destination folder; must be absent or empty unless ``overwrite``.
    num_train: number of training videos (>= 0).
    num_test: number of test videos (>= 0); num_train + num_test >= 1.
    num_frames: frames per video (>= 2).
    frame_size: frame side in pixels (>= MIN_FRAME_SIZE; even for mp4).
    seed: non-negative int; the same seed gives the same frames and keypoints.
    fmt: one of FORMATS.
    videos_per_identity: videos sharing one identity (>= 1).
    overwrite: replace an existing non-empty dataset folder.

  Returns:
    The dataset.json content plus "output_dir", "seconds" and "frames_per_second".
  """
  num_train = _check_count(num_train, "num_train", 0)
  num_test = _check_count(num_test, "num_test", 0)
  if num_train + num_test < 1:
    raise DatasetError("num_train + num_test must be >= 1, got 0")
  num_frames = _check_count(num_frames, "num_frames", 2)
  frame_size = _check_count(frame_size, "frame_size", MIN_FRAME_SIZE)
  seed = _check_count(seed, "seed", 0)
  videos_per_identity = _check_count(videos_per_identity, "videos_per_identity", 1)
  if fmt not in FORMATS:
    raise DatasetError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
  if fmt == "mp4" and frame_size % 2:
    raise DatasetError(f"frame_size must be even for mp4 (yuv420p), got {frame_size}")
  if not isinstance(output_dir, (str, os.PathLike)) or not str(output_dir):
    raise DatasetError(f"output_dir must be a non-empty path, got {output_dir!r}")
  output_dir = os.path.abspath(os.fspath(output_dir))
  _check_output_dir(output_dir, overwrite)

  train_plan = _plan_split(num_train, 0, videos_per_identity)
  first_test_identity = -(-num_train // videos_per_identity)
  test_plan = _plan_split(num_test, first_test_identity, videos_per_identity)
  suffix = {"mp4": ".mp4", "png_folder": "", "strip": ".png"}[fmt]

  start = time.perf_counter()
  # The guard above decided whether an existing folder may be replaced.
  with files.staged_directory(output_dir, DatasetError, replace_if=lambda _: True) as staging:
    splits = {}
    identity_index, identity = None, None
    for split, plan in (("train", train_plan), ("test", test_plan)):
      split_dir = os.path.join(staging, split)
      os.mkdir(split_dir)
      names = []
      for video_identity, video_index in plan:
        # Plans are grouped by identity, so one cached identity is enough.
        if video_identity != identity_index:
          identity_index = video_identity
          identity = _dataset_identity(seed, identity_index)
        name = video_name(identity_index, video_index)
        motion_rng = np.random.default_rng([seed, 1, identity_index, video_index])
        frames, keypoints = render_video(motion_rng, num_frames, frame_size, identity=identity)
        _write_video(split_dir, name, frames, fmt)
        np.save(os.path.join(split_dir, name + KEYPOINTS_SUFFIX), keypoints)
        names.append(name)
      splits[split] = names
    seconds = time.perf_counter() - start

    description = {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "description": ("Synthetic articulated puppets (textured torso, head with eyes and mouth, four hinged limbs) "
                        "over a static textured background. Body translates/rotates/scales and head and limbs rotate "
                        "about their joints along smooth sinusoids. Videos named id{N:03d}#{M:02d} share identity N; "
                        "test identities are disjoint from train identities."),
        "seed": seed,
        "format": fmt,
        "num_train": num_train,
        "num_test": num_test,
        "num_frames": num_frames,
        "frame_size": frame_size,
        "fps": FPS,
        "videos_per_identity": videos_per_identity,
        "video_suffix": suffix,
        "keypoints_suffix": KEYPOINTS_SUFFIX,
        "num_keypoints": NUM_KEYPOINTS,
        "keypoint_names": list(KEYPOINT_NAMES),
        "keypoint_convention": ("(x, y) in [-1, 1], x along the width, -1/+1 at the centres of the corner "
                                "pixels: pixel = (coord + 1) * (frame_size - 1) / 2; array (num_frames, K, 2) "
                                "float32"),
        "splits": splits,
    }
    if fmt == "mp4":
      description["mp4"] = {"codec": "libx264", "pix_fmt": "yuv420p", "crf": MP4_CRF}
    # dataset.json goes last: its presence marks a finished dataset.
    with open(os.path.join(staging, DATASET_JSON), "w", encoding="utf-8") as handle:
      json.dump(description, handle, indent=2)
      handle.write("\n")

  total_frames = (num_train + num_test) * num_frames
  return dict(description, output_dir=output_dir, seconds=seconds, frames_per_second=total_frames / max(seconds, 1e-9))

"""Streaming animation: source image + driving frames -> result frames, lazily."""

import itertools

import numpy as np

from fomm_tf.errors import AnimationError
from fomm_tf.inference import backend as backend_lib
from fomm_tf.io import media


def as_backend(model):
  """Accepts a FommModel (its KerasBackend, kept on the model: traced once) or a Backend."""
  if isinstance(model, backend_lib.Backend):
    return model
  # Imported here: TensorFlow loads only when a Keras model is animated (the TFLite and ONNX backends run without).
  from fomm_tf.inference import keras_backend  # pylint: disable=import-outside-toplevel
  return keras_backend.for_model(model)


def batched(iterable, size):
  """Lists of up to `size` consecutive items, consumed lazily."""
  iterator = iter(iterable)
  while True:
    batch = list(itertools.islice(iterator, size))
    if not batch:
      return
    yield batch


def prepare_frame(frame, size, fit="crop"):
  """Any (H, W, 3) float or uint8 frame -> float32 (size, size, 3) in [0, 1] (crop or pad, never stretch)."""
  frame = np.asarray(frame)
  if frame.dtype == np.uint8:
    frame = frame.astype(np.float32) / 255.0
  return media.fit_frame(frame.astype(np.float32), size, fit)


def animate_with_keypoints(model,
                           source_image,
                           driving_frames,
                           relative=True,
                           adapt_scale=False,
                           batch_size=8,
                           kp_driving_initial=None,
                           fit="crop",
                           prepare_source=None,
                           prepare_driving=None,
                           kp_filter=None):
  """Like `animate`, but yields (result_frame, driving_frame, kp_driving_value) for visualisation.

  `prepare_source` / `prepare_driving` (frame, size) -> float32 (size, size, 3) replace the `fit` framing
  (e.g. a face crop, fomm_tf/animation/framing.py); `kp_filter` (a KeypointSmoother) smooths the driving
  keypoints, across batches.
  """
  backend = as_backend(model)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  height, width = backend.frame_shape[:2]
  if height != width:
    raise AnimationError(f"animation needs a square model frame, got {height}x{width}")
  default = lambda frame, size: prepare_frame(frame, size, fit)
  prepare_source = prepare_source or default
  prepare_driving = prepare_driving or default
  source = prepare_source(source_image, height)[np.newaxis]
  # Everything that depends on the source alone is computed once per video.
  state = backend.prepare_source(source)
  kp_source = backend.detect_keypoints(source)
  for frames, kp_driving, kp_initial in _driving_batches(backend, driving_frames, batch_size, height, prepare_driving,
                                                         kp_filter, kp_driving_initial):
    kp_norm = backend.normalize_kp(kp_source,
                                   kp_driving,
                                   kp_initial,
                                   adapt_movement_scale=adapt_scale,
                                   use_relative_movement=relative,
                                   use_relative_jacobian=relative)
    prediction = backend.generate(state, kp_source, kp_norm)
    for i in range(len(frames)):
      yield prediction[i], frames[i], kp_driving["value"][i]


def _driving_batches(backend, driving_frames, batch_size, size, prepare_driving, kp_filter, kp_initial):
  """(frames, their keypoints (filtered), the initial frame's keypoints) per batch of prepared driving frames; the
  initial keypoints are the first frame's unless given."""
  for batch in batched(driving_frames, batch_size):
    frames = np.stack([prepare_driving(f, size) for f in batch])
    kp_driving = backend.detect_keypoints(frames)
    if kp_filter is not None:
      kp_driving = kp_filter(kp_driving)
    if kp_initial is None:
      kp_initial = {k: v[:1] for k, v in kp_driving.items()}
    yield frames, kp_driving, kp_initial


def animate_faces(model,
                  sources,
                  driving_frames,
                  relative=True,
                  adapt_scale=False,
                  batch_size=8,
                  kp_driving_initial=None,
                  prepare_driving=None,
                  kp_filter=None):
  """Animates F source crops (e.g. the faces of one photo) with the same driving frames; yields (F, S, S, 3).

  Per step the driving frames get one keypoint pass; each source has its own relative-motion transfer (its own
  keypoints against the same driving ones) and all sources are animated by one generator call
  (`Backend.generate_sources`), so the cost per driving frame is one keypoint detection plus F generator
  entries. No generator call has more than `batch_size` entries (frames x sources): a step takes
  max(1, batch_size // F) driving frames, and with more than `batch_size` sources they go in groups of
  `batch_size`, so memory grows neither with F nor with the video's length.

  Args:
    model: a FommModel or an animation Backend.
    sources: (F, S, S, 3) float32 in [0, 1], the model's frame size (e.g. `FaceFraming.sources`).
    driving_frames: any iterable of frames, consumed lazily.
    relative, adapt_scale, kp_driving_initial, kp_filter: as for `animate_with_keypoints`.
    batch_size: the most generator entries per call (frames x sources).
    prepare_driving: (frame, size) -> (S, S, 3); default: the centre crop.

  Yields:
    float32 (F, S, S, 3) for each driving frame, the sources in the order given.
  """
  backend = as_backend(model)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  size = backend.frame_shape[0]
  sources = np.asarray(sources, np.float32)
  if sources.ndim != 4 or sources.shape[0] < 1 or tuple(sources.shape[1:]) != tuple(backend.frame_shape):
    raise ValueError(f"sources: expected (F, {', '.join(map(str, backend.frame_shape))}), got {sources.shape}")
  count = len(sources)
  prepare_driving = prepare_driving or (lambda frame, side: prepare_frame(frame, side, "crop"))
  frames_per_step = max(1, batch_size // count)
  group = max(1, batch_size // frames_per_step)
  # Everything that depends on the sources alone is computed once per video, a group of sources at a time.
  groups = []
  for start in range(0, count, group):
    part = sources[start:start + group]
    groups.append((backend.prepare_sources(part), backend.detect_keypoints(part)))
  for frames, kp_driving, kp_initial in _driving_batches(backend, driving_frames, frames_per_step, size,
                                                         prepare_driving, kp_filter, kp_driving_initial):
    results = []
    for state, kp_sources in groups:
      # Each source's own motion transfer; source-major, as generate_sources takes them.
      norms = []
      for i in range(len(kp_sources["value"])):
        kp_source = {k: v[i:i + 1] for k, v in kp_sources.items()}
        norms.append(
            backend.normalize_kp(kp_source,
                                 kp_driving,
                                 kp_initial,
                                 adapt_movement_scale=adapt_scale,
                                 use_relative_movement=relative,
                                 use_relative_jacobian=relative))
      kp_all = {k: np.concatenate([n[k] for n in norms]) for k in kp_driving}
      prediction = backend.generate_sources(state, kp_sources, kp_all)
      results.append(prediction.reshape((len(norms), len(frames)) + prediction.shape[1:]))
    results = np.concatenate(results)
    for i in range(len(frames)):
      yield results[:, i]


def animate(model,
            source_image,
            driving_frames,
            relative=True,
            adapt_scale=False,
            batch_size=8,
            kp_driving_initial=None,
            fit="crop"):
  """Animates `source_image` with the motion of `driving_frames`, yielding result frames lazily.

  Args:
    model: a FommModel (from `fomm_tf.load_model`) or an animation Backend.
    source_image: (H, W, 3) float in [0, 1] or uint8, any size; made square by
      centre crop (or `fit="pad"`) and resized to the model's frame size.
    driving_frames: any iterable of such frames (a list, or a media.VideoSource
      for streaming); consumed `batch_size` frames at a time.
    relative: relative motion transfer (keypoint and Jacobian deltas from the
      initial driving frame added to the source's), else absolute keypoints.
    adapt_scale: scale relative motion by sqrt(source hull area / initial hull area).
    kp_driving_initial: keypoints of the initial driving frame
      ({'value': (1, K, 2), 'jacobian': (1, K, 2, 2)}); default: the first frame's.
    fit: "crop" or "pad" for non-square inputs.

  Yields:
    float32 (S, S, 3) frames in [0, 1], S the model's frame size.
  """
  for result, _, _ in animate_with_keypoints(model, source_image, driving_frames, relative, adapt_scale, batch_size,
                                             kp_driving_initial, fit):
    yield result

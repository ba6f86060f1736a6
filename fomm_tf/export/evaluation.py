"""Fixed inputs, Keras reference outputs and error measures for exported files.

Every exported signature is run on one fixed input (a source frame and two
driving frames, with the keypoints the Keras model finds on them) and its
outputs are compared with what the Keras model computes from the same input.
"""

import math

import numpy as np
import tensorflow as tf

from fomm_tf.errors import ExportError
from fomm_tf.export import signatures as signatures_lib
from fomm_tf.inference import export_layout as layout

SYNTHETIC_SEED = 0
# PSNR of identical arrays is infinite; this cap keeps the manifest plain JSON.
MAX_PSNR_DB = 200.0


def synthetic_frames(frame_shape, count=3, seed=SYNTHETIC_SEED):
  """`count` deterministic smooth RGB frames in [0, 1]: one random image and shifted copies of it."""
  height, width, channels = frame_shape
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(size=(1, 8, 8, channels)).astype(np.float32)
  image = tf.clip_by_value(tf.image.resize(coarse, (height, width), method="bicubic"), 0.0, 1.0).numpy()[0]
  shift = max(1, height // 32)
  offsets = [(i * shift, -i * shift // 2) for i in range(count)]
  return np.stack([np.roll(image, offset, axis=(0, 1)) for offset in offsets]).astype(np.float32)


def check_frames(frames, frame_shape, what):
  """float32 (N, H, W, C) frames in [0, 1] matching the model, or a one-line ExportError."""
  frames = np.asarray(frames)
  if frames.dtype == np.uint8:
    frames = frames.astype(np.float32) / 255.0
  expected = tuple(frame_shape)
  if frames.ndim != 4 or tuple(frames.shape[1:]) != expected or frames.shape[0] < 1:
    raise ExportError(f"{what}: expected frames of shape (N, {', '.join(map(str, expected))}), "
                      f"got {frames.shape}")
  frames = frames.astype(np.float32)
  if not np.all(np.isfinite(frames)) or frames.min() < 0.0 or frames.max() > 1.0:
    raise ExportError(f"{what}: frame values must be finite and in [0, 1], got range "
                      f"[{np.nanmin(frames):.3g}, {np.nanmax(frames):.3g}]")
  return frames


def _numpy(structure):
  return {k: np.asarray(v) for k, v in structure.items()}


def reference_inputs(functions, frames):
  """Input dict per signature, built from frames[0] (source) and frames[1:3] (driving) with Keras keypoints."""
  source = frames[:1]
  driving = frames[1:3] if len(frames) >= 3 else frames[:2] if len(frames) == 2 else frames[:1]
  kp_source = _numpy(functions.detect_keypoints(tf.constant(source)))
  kp_driving = _numpy(functions.detect_keypoints(tf.constant(driving)))
  kp_initial = {k: v[:1] for k, v in kp_driving.items()}
  flags = {name: np.array(True) for name in signatures_lib.NORMALIZE_FLAGS}
  normalize_inputs = layout.normalize_kp_inputs(kp_source, kp_driving, kp_initial, **flags)
  kp_norm = _numpy(functions.normalize_kp(**{k: tf.constant(v) for k, v in normalize_inputs.items()}))
  state = _numpy(functions.encode_source(tf.constant(source)))
  driven = {
      "kp_source_value": kp_source["value"],
      "kp_source_jacobian": kp_source["jacobian"],
      "kp_driving_value": kp_norm["value"],
      "kp_driving_jacobian": kp_norm["jacobian"]
  }
  return {
      "detect_keypoints": {
          "image": np.concatenate([source, driving])
      },
      "normalize_kp": normalize_inputs,
      "encode_source": {
          "source": source
      },
      "generate_from_state": {
          **state,
          **driven
      },
      "generate": {
          "source": source,
          **driven
      },
      "serving_default": {
          "source": source,
          "driving": driving,
          "kp_driving_initial_value": kp_initial["value"],
          "kp_driving_initial_jacobian": kp_initial["jacobian"],
          "relative": np.array(True),
          "adapt_scale": np.array(False)
      },
  }


def run_keras(functions, name, inputs):
  """Outputs of signature `name` computed by the Keras model."""
  tensors = {k: tf.constant(v) for k, v in inputs.items()}
  return _numpy(functions.function(name)(**tensors))


def calibration_inputs(functions, frames):
  """Representative inputs per TFLite signature for int8 calibration, one sample per frame.

  The generator sees each frame's cached state animated towards the next
  frame's keypoints, alternately absolute and relative to the first frame,
  as animation feeds it.
  """
  samples = {name: [] for name in layout.TFLITE_FILES}
  count = len(frames)
  kp = [_numpy(functions.detect_keypoints(tf.constant(frames[i:i + 1]))) for i in range(count)]
  for i in range(count):
    frame = frames[i:i + 1]
    j = (i + 1) % count
    relative = np.array(i % 2 == 1)
    norm_inputs = {
        "kp_source_value": kp[i]["value"],
        "kp_source_jacobian": kp[i]["jacobian"],
        "kp_driving_value": kp[j]["value"],
        "kp_driving_jacobian": kp[j]["jacobian"],
        "kp_driving_initial_value": kp[0]["value"],
        "kp_driving_initial_jacobian": kp[0]["jacobian"],
        "adapt_movement_scale": np.array(False),
        "use_relative_movement": relative,
        "use_relative_jacobian": relative
    }
    kp_norm = _numpy(functions.normalize_kp(**{k: tf.constant(v) for k, v in norm_inputs.items()}))
    state = _numpy(functions.encode_source(tf.constant(frame)))
    samples["detect_keypoints"].append({"image": frame})
    samples["encode_source"].append({"source": frame})
    samples["normalize_kp"].append(norm_inputs)
    samples["generate_from_state"].append({
        **state, "kp_source_value": kp[i]["value"],
        "kp_source_jacobian": kp[i]["jacobian"],
        "kp_driving_value": kp_norm["value"],
        "kp_driving_jacobian": kp_norm["jacobian"]
    })
  return samples


def psnr(actual, expected, peak=1.0):
  """Peak signal-to-noise ratio in dB (capped at MAX_PSNR_DB for identical arrays)."""
  mse = float(np.mean((np.asarray(actual, np.float64) - np.asarray(expected, np.float64))**2))
  if mse == 0.0:
    return MAX_PSNR_DB
  return min(MAX_PSNR_DB, 10.0 * math.log10(peak * peak / mse))


def compare(actual, expected):
  """{'max_abs_error': {output: e}, 'psnr_db': p (of 'prediction', when there is one)}."""
  missing = sorted(set(expected) - set(actual))
  if missing:
    raise ExportError(f"exported outputs lack {', '.join(missing)} "
                      f"(have {', '.join(sorted(actual))})")
  result = {"max_abs_error": {}}
  for name in sorted(expected):
    a, e = np.asarray(actual[name], np.float64), np.asarray(expected[name], np.float64)
    if a.shape != e.shape:
      raise ExportError(f"exported output {name!r} has shape {a.shape}, Keras gives {e.shape}")
    result["max_abs_error"][name] = float(np.max(np.abs(a - e))) if a.size else 0.0
  if "prediction" in expected:
    result["psnr_db"] = psnr(actual["prediction"], expected["prediction"])
  return result

"""The graph functions that the SavedModel and the TFLite files serve, with their named input specs.

Every function takes and returns flat, named float32 (or bool) tensors, so the
same definitions give the SavedModel signatures (whose input names come from
the TensorSpec names) and the TFLite signatures converted from them. Batch
dimensions are dynamic; height, width, channels and K are fixed by the config.
"""

import dataclasses

import tensorflow as tf

from fomm_tf.errors import ExportError
from fomm_tf.inference import generation
from fomm_tf.ops import normalize_kp as normalize_lib

NORMALIZE_FLAGS = ("adapt_movement_scale", "use_relative_movement", "use_relative_jacobian")


@dataclasses.dataclass(frozen=True)
class Shapes:
  """The fixed sizes of one model's exported tensors."""
  height: int
  width: int
  channels: int
  num_kp: int
  features: tuple  # (h, w, c) of the cached encoder features
  source_small: tuple  # (h, w, c) of the dense-motion copy of the source


class ExportFunctions:
  """The exported computations of one FommModel, as plain functions of named tensors.

  Attributes:
    shapes: the fixed tensor sizes.
    specs: signature name -> list of tf.TensorSpec (named, in argument order).
  """

  def __init__(self, model):
    config = model.config
    if not config.model.estimate_jacobian:
      raise ExportError(f"{config.source}: export needs estimate_jacobian=true (the exported signatures carry "
                        "keypoint Jacobians)")
    policies = {layer.dtype_policy.name for layer in (model.kp_detector, model.generator)}
    if policies != {"float32"}:
      raise ExportError(f"{config.source}: export needs a float32 model, this one was built under the dtype "
                        f"policy {', '.join(sorted(policies))} (quantise with --quantize instead)")
    self.model = model
    height, width, channels = model.frame_shape
    state = model.generator.encode_source(tf.zeros((1, height, width, channels)), training=False)
    if "source_small" not in state:
      raise ExportError(f"{config.source}: export needs a generator with a dense motion network")
    self.shapes = Shapes(height, width, channels, model.num_kp, tuple(state["features"].shape[1:]),
                         tuple(state["source_small"].shape[1:]))
    self.specs = self._make_specs()

  def _make_specs(self):
    s = self.shapes
    frames = lambda name, batch=None: tf.TensorSpec((batch, s.height, s.width, s.channels), tf.float32, name=name)
    value = lambda name, batch=None: tf.TensorSpec((batch, s.num_kp, 2), tf.float32, name=name)
    jacobian = lambda name, batch=None: tf.TensorSpec((batch, s.num_kp, 2, 2), tf.float32, name=name)
    flag = lambda name: tf.TensorSpec((), tf.bool, name=name)
    kp = lambda prefix, batch=None: [value(prefix + "_value", batch), jacobian(prefix + "_jacobian", batch)]
    state = [
        tf.TensorSpec((1,) + s.features, tf.float32, name="features"),
        tf.TensorSpec((1,) + s.source_small, tf.float32, name="source_small")
    ]
    return {
        "detect_keypoints": [frames("image")],
        "normalize_kp":
            (kp("kp_source") + kp("kp_driving") + kp("kp_driving_initial") + [flag(n) for n in NORMALIZE_FLAGS]),
        "generate": [frames("source")] + kp("kp_source") + kp("kp_driving"),
        "encode_source": [frames("source", 1)],
        "generate_from_state":
            state + kp("kp_source", 1) + kp("kp_driving"),
        "serving_default": [
            frames("source", 1),
            frames("driving"), *kp("kp_driving_initial", 1),
            flag("relative"),
            flag("adapt_scale")
        ],
    }

  def function(self, name):
    """The Python function behind signature `name`."""
    return getattr(self, name)

  # Each function's argument names are its signature's input names.

  def detect_keypoints(self, image):
    out = self.model.kp_detector(image, training=False)
    return {"value": out["value"], "jacobian": out["jacobian"]}

  def normalize_kp(self, kp_source_value, kp_source_jacobian, kp_driving_value, kp_driving_jacobian,
                   kp_driving_initial_value, kp_driving_initial_jacobian, adapt_movement_scale, use_relative_movement,
                   use_relative_jacobian):
    out = normalize_lib.normalize_kp({
        "value": kp_source_value,
        "jacobian": kp_source_jacobian
    }, {
        "value": kp_driving_value,
        "jacobian": kp_driving_jacobian
    }, {
        "value": kp_driving_initial_value,
        "jacobian": kp_driving_initial_jacobian
    },
                                     adapt_movement_scale=adapt_movement_scale,
                                     use_relative_movement=use_relative_movement,
                                     use_relative_jacobian=use_relative_jacobian)
    return {"value": out["value"], "jacobian": out["jacobian"]}

  def encode_source(self, source):
    return generation.encode_source(self.model.generator, source)

  def generate_from_state(self, features, source_small, kp_source_value, kp_source_jacobian, kp_driving_value,
                          kp_driving_jacobian):
    prediction = generation.generate_from_state(self.model.generator, {
        "features": features,
        "source_small": source_small
    }, {
        "value": kp_source_value,
        "jacobian": kp_source_jacobian
    }, {
        "value": kp_driving_value,
        "jacobian": kp_driving_jacobian
    })
    return {"prediction": prediction}

  def generate(self, source, kp_source_value, kp_source_jacobian, kp_driving_value, kp_driving_jacobian):
    """Source and source keypoints of batch 1 (shared by every driving entry) or of the driving batch."""
    batch = tf.shape(kp_driving_value)[0]
    source = generation.tile_to(source, batch)
    kp_source = {
        "value": generation.tile_to(kp_source_value, batch),
        "jacobian": generation.tile_to(kp_source_jacobian, batch)
    }
    kp_driving = {"value": kp_driving_value, "jacobian": kp_driving_jacobian}
    out = self.model.generator(source, kp_source, kp_driving, training=False)
    return {"prediction": out["prediction"]}

  def serving_default(self, source, driving, kp_driving_initial_value, kp_driving_initial_jacobian, relative,
                      adapt_scale):
    kp_source = self.detect_keypoints(source)
    kp_driving = self.detect_keypoints(driving)
    kp_norm = self.normalize_kp(kp_source["value"],
                                kp_source["jacobian"],
                                kp_driving["value"],
                                kp_driving["jacobian"],
                                kp_driving_initial_value,
                                kp_driving_initial_jacobian,
                                adapt_movement_scale=adapt_scale,
                                use_relative_movement=relative,
                                use_relative_jacobian=relative)
    state = self.encode_source(source)
    return self.generate_from_state(state["features"], state["source_small"], kp_source["value"], kp_source["jacobian"],
                                    kp_norm["value"], kp_norm["jacobian"])

"""What every fomm-tf layer shares: registration, get_config from its constructor, dtype-following sublayers."""

import keras
import tensorflow as tf

PACKAGE = "fomm_tf"


def register(cls):
  """Registers a layer class for Keras serialization under 'fomm_tf>ClassName'."""
  return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


class Layer(keras.layers.Layer):
  """A Keras layer whose get_config is its constructor arguments, recorded once by `_record(locals())`.

  So a constructor argument added to a layer (and to its config section) reaches
  get_config and from_config without a second list to keep in step.
  """

  def _record(self, arguments):
    self._constructor_args = {k: v for k, v in arguments.items() if k not in ("self", "kwargs", "__class__")}

  def sublayer(self, layer_class, *args, **kwargs):
    """A sublayer computing in this layer's dtype policy (mixed precision reaches every leaf)."""
    return layer_class(*args, dtype=self.dtype_policy, **kwargs)

  def get_config(self):
    return {**super().get_config(), **_plain(self._constructor_args)}

  def example_inputs(self, input_shape):
    """Positional call arguments of the given (first-input) shape, to build a rebuilt layer by calling it."""
    return (_zeros(input_shape),)

  def build(self, input_shape=None):
    # Nothing to create here: the sublayers create their variables in this layer's first call. Without a build
    # method Keras would first trace call() symbolically to build them (as long again as the call itself: about
    # half of building a model), then run it.
    del input_shape

  def build_from_config(self, config):
    # A composite layer's sublayers are built by its first call, so a deserialized layer is built by
    # calling it once on zeros of the recorded shape (Keras' default would only mark it built).
    shape = (config or {}).get("input_shape")
    if shape is not None and not self.built:
      self(*self.example_inputs(shape))


def _zeros(shape):
  if isinstance(shape, dict):
    return {k: _zeros(v) for k, v in shape.items()}
  return tf.zeros([1 if d is None else d for d in shape])


def example_keypoints(num_kp, batch=1):
  """Keypoints at the centre with identity Jacobians, for building layers that take keypoints."""
  return {"value": tf.zeros((batch, num_kp, 2)), "jacobian": tf.eye(2, batch_shape=(batch, num_kp))}


def _plain(value):
  """Keras' tracked dicts and lists back to plain ones, for serialization."""
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  return value

"""Every fomm-tf layer as keras-hub checks its layers: registered, serializable, and right in every precision.

One shared check (`LayerCase.run_layer_checks`): the layer is serialized with
keras.saving.serialize_keras_object and rebuilt with deserialize_keras_object
(same config, same outputs once it has the same weights), and it runs under
float32, mixed_bfloat16 and mixed_float16 with the output dtypes it promises
(keypoints, masks, flows and predictions stay float32; features follow the
compute dtype) -- without changing Keras' global dtype policy.
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from fomm_tf.layers import anti_alias
from fomm_tf.layers import base
from fomm_tf.layers import batch_norm
from fomm_tf.layers import conv_blocks
from fomm_tf.layers import hourglass
from fomm_tf.layers import initializers
from fomm_tf.layers import separable
from fomm_tf.layers import spectral_norm_conv
from fomm_tf.losses import vgg19
from fomm_tf.models import dense_motion
from fomm_tf.models import discriminator
from fomm_tf.models import fomm_model
from fomm_tf.models import generator
from fomm_tf.models import keypoint_detector
from tests import testing

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def _kp(batch=1, num_kp=10, seed=0):
  rng = np.random.default_rng(seed)
  value = rng.uniform(-0.5, 0.5, (batch, num_kp, 2)).astype(np.float32)
  jacobian = np.tile(np.eye(2, dtype=np.float32), (batch, num_kp, 1, 1))
  return {"value": tf.constant(value), "jacobian": tf.constant(jacobian)}


def _frames(shape, seed=0):
  return tf.constant(np.random.default_rng(seed).random(shape).astype(np.float32))


def _leaves(value):
  if isinstance(value, dict):
    for v in value.values():
      yield from _leaves(v)
  elif isinstance(value, (list, tuple)):
    for v in value:
      yield from _leaves(v)
  else:
    yield value


# (name, factory(dtype) -> layer, call(layer) -> outputs, float32 outputs: which leaves stay float32).
def _cases():
  # Shallower still than the tiny config (each network is built and called eagerly five times): every kind of block
  # is there, fewer times.
  shallower = dict(kp_num_blocks=2, dm_num_blocks=2, gen_num_bottleneck_blocks=1)
  cfg = testing.tiny_config().replace(**shallower)
  lite = testing.tiny_lite_config().replace(**shallower)
  frames = lambda: _frames((1, 64, 64, 3))
  feat = lambda: _frames((1, 8, 8, 4))
  return [
      ("DownBlock2d", lambda d: conv_blocks.DownBlock2d(8, dtype=d), lambda l: l(feat()), None),
      ("UpBlock2d", lambda d: conv_blocks.UpBlock2d(8, dtype=d), lambda l: l(feat()), None),
      ("SameBlock2d", lambda d: conv_blocks.SameBlock2d(8, kernel_size=7, dtype=d), lambda l: l(feat()), None),
      ("ResBlock2d", lambda d: conv_blocks.ResBlock2d(4, dtype=d), lambda l: l(feat()), None),
      ("Hourglass", lambda d: hourglass.Hourglass(4, in_features=4, num_blocks=2, max_features=16, dtype=d),
       lambda l: l(feat()), None),
      ("BatchNorm", lambda d: batch_norm.BatchNorm(dtype=d), lambda l: l(feat()), None),
      ("Conv2D", lambda d: initializers.Conv2D(3, 3, padding="same", dtype=d), lambda l: l(feat()), None),
      ("SpectralNormConv2D", lambda d: spectral_norm_conv.SpectralNormConv2D(4, 3, dtype=d), lambda l: l(feat()), None),
      ("AntiAliasDownsample", lambda d: anti_alias.AntiAliasDownsample(0.25, dtype=d), lambda l: l(frames()), None),
      ("KeypointDetector", lambda d: keypoint_detector.KeypointDetector(dtype=d, **cfg.kp_detector_kwargs()),
       lambda l: l(frames()), "all"),
      ("DenseMotionNetwork", lambda d: dense_motion.DenseMotionNetwork(
          num_kp=10, num_channels=3, estimate_occlusion_map=True, dtype=d, **cfg.dense_motion_kwargs()),
       lambda l: l(frames(), _kp(), _kp(seed=1)), {"mask", "occlusion_map", "deformation"}),
      ("OcclusionAwareGenerator", lambda d: generator.OcclusionAwareGenerator(dtype=d, **cfg.generator_kwargs()),
       lambda l: l(frames(), _kp(), _kp(seed=1)), {"prediction", "mask", "occlusion_map", "deformation"}),
      ("MultiScaleDiscriminator",
       lambda d: discriminator.MultiScaleDiscriminator(dtype=d, **cfg.discriminator_kwargs()),
       lambda l: l({"prediction_1": frames()}), None),
      # The lite networks: depthwise-separable blocks and 3x3 heads.
      ("SeparableConv2D", lambda d: separable.SeparableConv2D(6, 3, dtype=d), lambda l: l(feat()), None),
      ("LiteResBlock2d", lambda d: conv_blocks.ResBlock2d(4, separable=True, dtype=d), lambda l: l(feat()), None),
      ("LiteHourglass",
       lambda d: hourglass.Hourglass(4, in_features=4, num_blocks=2, max_features=16, separable=True, dtype=d),
       lambda l: l(feat()), None),
      ("LiteKeypointDetector", lambda d: keypoint_detector.KeypointDetector(dtype=d, **lite.kp_detector_kwargs()),
       lambda l: l(frames()), "all"),
      ("LiteDenseMotionNetwork", lambda d: dense_motion.DenseMotionNetwork(
          num_kp=10, num_channels=3, estimate_occlusion_map=True, dtype=d, **lite.dense_motion_kwargs()),
       lambda l: l(frames(), _kp(), _kp(seed=1)), {"mask", "occlusion_map", "deformation"}),
      # With the output blended with the warped source, as the built-in models run.
      ("LiteOcclusionAwareGenerator",
       lambda d: generator.OcclusionAwareGenerator(dtype=d, **lite.replace(gen_blend_deformed=True).generator_kwargs()),
       lambda l: l(frames(), _kp(), _kp(seed=1)), {"prediction", "mask", "occlusion_map", "deformation"}),
      ("VGG19Features", lambda d: vgg19.VGG19Features(dtype=d), lambda l: l(_frames((1, 32, 32, 3))), "all"),
  ]


CASES = _cases()


class LayerCase(parameterized.TestCase):
  """The shared layer checks."""

  def run_layer_checks(self, factory, call, float32_outputs):
    layer = factory(None)
    self.assertTrue(
        keras.saving.get_registered_name(type(layer)).startswith(base.PACKAGE + ">"),
        f"{type(layer).__name__} is not registered")
    outputs = call(layer)
    # Serialization round trip: same config, and the same function once given the same weights.
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    self.assertIs(type(clone), type(layer))
    self.assertEqual(clone.get_config(), layer.get_config())
    call(clone)
    clone.set_weights(layer.get_weights())
    for a, b in zip(_leaves(call(clone)), _leaves(outputs)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    # Precisions: outputs in the promised dtypes, and the global policy untouched.
    for policy in POLICIES:
      layer = factory(policy)
      out = call(layer)
      compute = keras.DTypePolicy(policy).compute_dtype
      if isinstance(out, dict):
        for name, value in out.items():
          keep32 = float32_outputs == "all" or (float32_outputs is not None and name in float32_outputs)
          expected = "float32" if keep32 else compute
          for leaf in _leaves(value):
            self.assertEqual(leaf.dtype.name, expected, f"{type(layer).__name__} {policy} {name}")
      else:
        for leaf in _leaves(out):
          self.assertEqual(leaf.dtype.name, "float32" if float32_outputs == "all" else compute,
                           f"{type(layer).__name__} {policy}")
      for variable in layer.weights:
        self.assertEqual(variable.dtype, "float32", f"{variable.path} under {policy}")
      self.assertEqual(keras.mixed_precision.global_policy().name, "float32")


class LayersTest(LayerCase):

  @parameterized.named_parameters(*[(name, factory, call, f32) for name, factory, call, f32 in CASES])
  def test_layer(self, factory, call, float32_outputs):
    self.run_layer_checks(factory, call, float32_outputs)

  def test_fomm_model_round_trips_through_its_config(self):
    model = fomm_model.FommModel(testing.tiny_config(), dtype="bfloat16")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    self.assertEqual(clone.config.flat(), model.config.flat())
    self.assertEqual(clone.dtype_policy.name, "mixed_bfloat16")
    self.assertIsNone(clone.discriminator)
    self.assertEqual(keras.mixed_precision.global_policy().name, "float32")

  def test_lite_model_round_trips_through_its_config(self):
    model = fomm_model.FommModel(testing.tiny_lite_config())
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    self.assertEqual(clone.config.flat(), model.config.flat())
    self.assertTrue(clone.generator.get_config()["separable"])
    self.assertIsInstance(clone.generator.bottleneck[0].conv1, separable.SeparableConv2D)
    self.assertEqual(clone.kp_detector.kp.kernel_size, (3, 3))

  def test_every_layer_class_is_covered(self):
    covered = {name for name, *_ in CASES} | {"FommModel", "DiscriminatorBlock", "Discriminator"}
    registered = {
        name.split(">", 1)[1] for name in keras.saving.get_custom_objects() if name.startswith(base.PACKAGE + ">")
    }
    layer_names = {
        n for n in registered if isinstance(keras.saving.get_registered_object(f"{base.PACKAGE}>{n}"), type) and
        issubclass(keras.saving.get_registered_object(f"{base.PACKAGE}>{n}"), keras.layers.Layer)
    }
    self.assertEqual(sorted(layer_names - covered), [])


class UpsampleGradientTest(absltest.TestCase):

  def test_the_training_upsample_has_the_resizes_gradient_and_compiles_with_xla(self):
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5, 4)), tf.float32)
    weights = tf.constant(np.random.default_rng(1).normal(size=(2, 6, 10, 4)), tf.float32)

    def gradient(upsample):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = upsample(x)
        loss = tf.reduce_sum(y * weights)
      return y, tape.gradient(loss, x)

    y, want = gradient(conv_blocks.upsample_nearest_2x)
    y_trained, got = gradient(conv_blocks.upsample_nearest_2x_for_training)
    np.testing.assert_array_equal(y_trained.numpy(), y.numpy())
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    # The plain resize's gradient has no XLA kernel; a block in training mode compiles.
    block = conv_blocks.UpBlock2d(4)
    block(x, training=True)

    @tf.function(jit_compile=True)
    def compiled():
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(x, training=True))
      return tape.gradient(loss, block.trainable_variables)

    self.assertTrue(all(np.all(np.isfinite(g.numpy())) for g in compiled()))


if __name__ == "__main__":
  absltest.main()

"""The official trainer's conventions: PyTorch initialisation, unbiased running variance, torchvision VGG19, Adam."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest

import fomm_tf
from fomm_tf.layers import batch_norm
from fomm_tf.layers import initializers
from fomm_tf.layers import spectral_norm_conv
from fomm_tf.losses import perceptual
from fomm_tf.losses import vgg19
from fomm_tf.training import state as state_lib
from tests import testing
from tests import torch_writer


def _convs(layer):
  """Every convolution of a layer tree: (Keras) Conv2D and spectral-norm convolutions."""
  found = []
  for sub in layer._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
    if isinstance(sub, (initializers.Conv2D, spectral_norm_conv.SpectralNormConv2D)):
      found.append(sub)
  return found


class InitializationTest(testing.TestCase):

  def test_every_conv_of_a_fresh_vox256_has_pytorchs_default_spread(self):
    model = fomm_tf.load_model("vox-256", build_discriminator=True)
    convs = [c for net in model.networks().values() for c in _convs(net)]
    # Keypoint detector 12, generator 30 (dense motion 12), discriminator 5.
    self.assertLen(convs, 47)
    for conv in convs:
      kernel, bias = conv.kernel.numpy(), conv.bias.numpy()
      kh, kw, cin, _ = kernel.shape
      bound = 1.0 / np.sqrt(cin * kh * kw)
      if conv.path == "kp_detector/jacobian":
        # The one initialisation the official code overrides: zero kernel, identity bias.
        np.testing.assert_array_equal(kernel, 0.0)
        np.testing.assert_array_equal(bias, np.tile([1.0, 0.0, 0.0, 1.0], len(bias) // 4))
        continue
      # U(-b, b): std b / sqrt(3), and nothing outside the bound.
      for name, values in (("kernel", kernel), ("bias", bias)):
        self.assertLessEqual(np.abs(values).max(), bound * (1 + 1e-6), f"{conv.path} {name}")
        if values.size >= 4096:
          # Standard error of the std of n uniform draws ~ std / sqrt(1.25 n); 5% is far beyond it.
          self.assertAlmostEqual(values.std() / (bound / np.sqrt(3)), 1.0, delta=0.05, msg=f"{conv.path} {name}")
          self.assertAlmostEqual(values.mean() / bound, 0.0, delta=0.03, msg=f"{conv.path} {name}")
    for layer in model.kp_detector._flatten_layers(recursive=True):  # pylint: disable=protected-access
      if isinstance(layer, batch_norm.BatchNorm):
        np.testing.assert_array_equal(layer.gamma.numpy(), 1.0)
        np.testing.assert_array_equal(layer.beta.numpy(), 0.0)
        np.testing.assert_array_equal(layer.moving_mean.numpy(), 0.0)
        np.testing.assert_array_equal(layer.moving_variance.numpy(), 1.0)
        self.assertEqual((layer.epsilon, layer.momentum), (1e-5, 0.9))


class BatchNormTest(testing.TestCase):

  def test_running_variance_uses_the_unbiased_batch_variance_like_pytorch(self):
    layer = batch_norm.BatchNorm()
    x = np.random.default_rng(0).normal(2.0, 3.0, (2, 3, 5, 4)).astype(np.float32)
    y = layer(x, training=True).numpy()
    n = 2 * 3 * 5
    flat = x.reshape(n, 4)
    # PyTorch: running = 0.9 running + 0.1 batch, the batch variance unbiased (n - 1) for the running value...
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * flat.var(axis=0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * flat.mean(axis=0), rtol=1e-5, atol=1e-6)
    # ... and the batch normalised with the biased one.
    expected = (flat - flat.mean(axis=0)) / np.sqrt(flat.var(axis=0) + 1e-5)
    np.testing.assert_allclose(y.reshape(n, 4), expected, atol=1e-4)
    # Inference uses the running statistics.
    inference = layer(x, training=False).numpy().reshape(n, 4)
    running = (flat - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + 1e-5)
    np.testing.assert_allclose(inference, running, atol=1e-4)

  def test_two_replicas_count_the_global_batch_and_backpropagate_through_it(self):
    # Logical CPU devices must be split before TensorFlow starts, so this runs in its own process.
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from fomm_tf.layers import batch_norm
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                                  cross_device_ops=tf.distribute.ReductionToOneDevice())
        with strategy.scope():
          layer = batch_norm.BatchNorm()
          layer.build((None, 3, 3, 2))
        assert layer.synchronized
        rng = np.random.default_rng(1)
        x = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
        weights = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
        batches = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, weights)).unbatch().batch(4))
        batch, batch_weights = next(iter(batches))
        strategy.run(lambda b: layer(b, training=True), args=(batch,))
        flat = x.reshape(-1, 2)
        np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * flat.var(axis=0, ddof=1), rtol=1e-4)

        # The gradients of the replicas' summed loss, traced as training traces its step, are those of one
        # device on the whole batch: each replica's statistics depend on the other's frames.
        def gradients(layer, frames, frame_weights):
          with tf.GradientTape() as tape:
            tape.watch(frames)
            loss = tf.reduce_sum(layer(frames, training=True) * frame_weights)
          return tape.gradient(loss, [frames, layer.gamma, layer.beta])
        per_replica = tf.function(lambda b, w: strategy.run(gradients, args=(layer, b, w)))(batch, batch_weights)
        local = [strategy.experimental_local_results(g) for g in per_replica]
        single = batch_norm.BatchNorm(synchronized=False)
        expected = [g.numpy() for g in gradients(single, tf.constant(x), tf.constant(weights))]
        np.testing.assert_allclose(np.concatenate(local[0]), expected[0], atol=1e-5)
        for summed, full in zip(local[1:], expected[1:]):
          np.testing.assert_allclose(summed[0] + summed[1], full, atol=1e-5)
        print("ok")
        """)
    proc = subprocess.run([sys.executable, "-c", script],
                          capture_output=True,
                          text=True,
                          cwd=testing.REPO_ROOT,
                          timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertEqual(proc.stdout.strip(), "ok")


def _adam_run(optimizer, initial, gradients, rates):
  """The variables and the optimizer's variables (by checkpoint name) after one update per gradient list, the
  learning rate set to rates[i] before update i (as a milestone does), the first update eager, the rest traced."""
  variables = [keras.Variable(value, name=f"w{i}") for i, value in enumerate(initial)]
  optimizer.build(variables)
  traced = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)), autograph=False)
  for index, (grads, rate) in enumerate(zip(gradients, rates)):
    optimizer.learning_rate = rate
    if index == 0:
      optimizer.apply_gradients(zip(grads, variables))
    else:
      traced(grads)
  slots = {path.split("/", 1)[-1]: v.numpy() for path, v in ((v.path, v) for v in optimizer.variables)}
  return [v.numpy() for v in variables], slots


class FusedAdamTest(testing.TestCase):

  def test_it_updates_like_keras_adam_and_checkpoints_the_same_variables(self):
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=shape).astype(np.float32) for shape in ((3, 3, 4, 8), (8,))]
    gradients = [[rng.normal(size=w.shape).astype(np.float32) * scale for w in initial] for scale in (1.0, 1e-3, 5.0)]
    rates = (2e-4, 2e-4, 2e-5)
    fused, fused_slots = _adam_run(state_lib.adam(1.0), initial, gradients, rates)
    keras_adam = keras.optimizers.Adam(learning_rate=1.0, **state_lib.ADAM)
    expected, expected_slots = _adam_run(keras_adam, initial, gradients, rates)
    self.assertIsInstance(state_lib.adam(1e-3), state_lib.FusedAdam)
    for got, want, start in zip(fused, expected, initial):
      self.assertFalse(np.array_equal(got, start))
      np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    self.assertEqual(sorted(fused_slots), sorted(expected_slots))
    self.assertEqual(int(fused_slots["iteration"]), 3)
    for name, want in expected_slots.items():
      # The fused kernel takes (1 - beta_2) from beta_2 in float32: 0.00099998713 for 0.001, so the velocities are
      # 1.3e-5 smaller, relatively (the steps 6.4e-6 larger).
      rtol = 1.4e-5 if name.endswith("velocity") else 1e-6
      np.testing.assert_allclose(fused_slots[name], want, rtol=rtol, atol=1e-12, err_msg=name)


class TorchvisionVGG19Test(testing.TestCase):

  def test_a_torchvision_state_dict_loads_with_its_own_input_convention(self):
    weights = vgg19.random_weights(seed=3)
    state = {}
    for name, index in vgg19.CONVS:
      kernel, bias = weights[name]
      state[f"features.{index}.weight"] = np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))
      state[f"features.{index}.bias"] = bias + np.float32(0.01)
    state["classifier.0.weight"] = np.zeros((4, 4), np.float32)  # The head is ignored.
    path = self.tmp_path("vgg19-test.pth")
    torch_writer.write_torch_checkpoint(path, state)
    features = vgg19.make_vgg19_features(path)
    self.assertEqual(features.convention, "torch")
    for name, index in vgg19.CONVS:
      kernel, bias = features.convs[name].get_weights()
      np.testing.assert_array_equal(np.transpose(kernel, (3, 2, 0, 1)), state[f"features.{index}.weight"])
      np.testing.assert_array_equal(bias, state[f"features.{index}.bias"])
    # relu1_1 of an image is the first conv of the torchvision-normalised RGB image. 32 pixels, so that every one
    # of VGG's four poolings has a pixel to pool: oneDNN's MaxPool (AVX512 builds) refuses an empty output.
    image = np.random.default_rng(4).random((1, 32, 32, 3)).astype(np.float32)
    normalised = (image - np.array(vgg19.TORCH_MEAN, np.float32)) / np.array(vgg19.TORCH_STD, np.float32)
    conv = tf.nn.conv2d(normalised, weights["block1_conv1"][0], 1, "SAME") + state["features.0.bias"]
    np.testing.assert_allclose(features(image)[0].numpy(), tf.nn.relu(conv).numpy(), atol=1e-5)

  def test_a_file_that_is_not_vgg19_is_refused(self):
    path = self.tmp_path("other.pth")
    torch_writer.write_torch_checkpoint(path, {"features.0.weight": np.zeros((8, 3, 3, 3), np.float32)})
    with self.assertRaisesRegex(fomm_tf.FommError, r"features\.0\.weight has shape \[8, 3, 3, 3\], VGG19 has "
                                r"\[64, 3, 3, 3\]"):
      vgg19.make_vgg19_features(path)
    with self.assertRaisesRegex(fomm_tf.FommError, "no such file"):
      vgg19.make_vgg19_features(self.tmp_path("missing.pth"))

  def test_random_weights_keep_feature_magnitudes_at_every_layer(self):
    # He init (kaiming normal, fan_in, ReLU gain): features neither vanish nor explode through the 13 layers.
    features = vgg19.make_vgg19_features("random")
    image = np.random.default_rng(5).random((1, 64, 64, 3)).astype(np.float32)
    means = [float(np.abs(f.numpy()).mean()) for f in features(image)]
    for mean in means:
      self.assertBetween(mean, 0.05, 20.0)
    self.assertLess(max(means) / min(means), 5.0)

  def test_a_shallower_loss_stops_vgg_early_with_the_same_features(self):
    features = vgg19.make_vgg19_features("random")
    image = np.random.default_rng(6).random((1, 32, 32, 3)).astype(np.float32)
    full = features(image)
    first_two = features(image, depth=2)
    self.assertLen(first_two, 2)
    for a, b in zip(first_two, full):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
    pyramid = {"prediction_1": tf.constant(image)}
    real = {"prediction_1": tf.constant(image[:, ::-1])}
    expected = sum(w * float(tf.reduce_mean(tf.abs(g - r)))
                   for w, g, r in zip((1.0, 2.0), features(pyramid["prediction_1"]), features(real["prediction_1"])))
    loss = perceptual.perceptual_loss(features, real, pyramid, [1.0], [1.0, 2.0, 0.0, 0.0, 0.0])
    self.assertAlmostEqual(float(loss), expected, places=4)


if __name__ == "__main__":
  absltest.main()

"""Network structure: official parameter counts, the full vox-256 key list, get_config, variants."""

import os
import re

import numpy as np
import tensorflow as tf
from absl.testing import absltest

import fomm_tf
from fomm_tf import errors
from fomm_tf.checkpoint import official_mapping
from fomm_tf.inference import generation
from fomm_tf.layers import spectral_norm_conv
from tests import testing

_VOX = None


def vox_model():
  global _VOX
  if _VOX is None:
    _VOX = fomm_tf.load_model("vox-256", build_discriminator=True)
  return _VOX


def reference_keys():
  """{network: {key: shape}} parsed from ../shared/reference/vox-256-state-dict-keys.txt."""
  out = {}
  with open(os.path.join(testing.REFERENCE_DIR, "vox-256-state-dict-keys.txt")) as f:
    for line in f:
      if not line.strip() or line.startswith("#"):
        continue
      key, shape = line.split("\t")[:2]
      network, name = key.split(".", 1)
      out.setdefault(network, {})[name] = tuple(int(x) for x in re.findall(r"\d+", shape))
  return out


class ModelsTest(tf.test.TestCase):

  def test_vox256_parameter_counts_are_official(self):
    self.assertEqual(vox_model().parameter_counts(), {
        "kp_detector": 14215368,
        "generator": 45575391,
        "discriminator": 2758849
    })
    dense = sum(int(np.prod(v.shape)) for v in vox_model().generator.dense_motion_network.trainable_weights)
    self.assertEqual(dense, 37730268)

  def test_vox256_state_dict_maps_completely(self):
    keys = reference_keys()
    self.assertEqual(sum(len(v) for v in keys.values()), 297)
    entries = official_mapping.model_entries(vox_model())
    for network, expected in keys.items():
      ours = {k: e.torch_shape for k, e in entries[network].items()}
      self.assertEqual(ours, expected, network)
      # A state dict with exactly these keys and shapes passes the loader's full check.
      state = {k: np.zeros(s, np.float32) for k, s in expected.items()}
      if network == "kp_detector":
        state["down.weight"] = np.broadcast_to(vox_model().kp_detector.down.kernel.numpy(), expected["down.weight"])
      if network == "generator":
        state["dense_motion_network.down.weight"] = np.broadcast_to(
            vox_model().generator.dense_motion_network.down.kernel.numpy(),
            expected["dense_motion_network.down.weight"])
      official_mapping.check_state_dict(entries[network], state, network, "reference")

  def test_output_shapes(self):
    model = fomm_tf.load_model(testing.fixture_config())
    frames = np.random.default_rng(0).random((2, 256, 256, 3)).astype(np.float32)
    kp = model.detect_keypoints(frames)
    self.assertEqual(kp["value"].shape, (2, 10, 2))
    self.assertEqual(kp["jacobian"].shape, (2, 10, 2, 2))
    out = model.generate(frames[:1], {k: v[:1] for k, v in kp.items()}, kp)
    self.assertEqual(out["prediction"].shape, (2, 256, 256, 3))
    self.assertEqual(out["mask"].shape, (2, 64, 64, 11))
    self.assertEqual(out["occlusion_map"].shape, (2, 64, 64, 1))
    self.assertEqual(out["sparse_deformed"].shape, (2, 11, 64, 64, 3))
    self.assertEqual(out["deformation"].shape, (2, 64, 64, 2))
    self.assertEqual(out["deformed"].shape, (2, 256, 256, 3))
    self.assertAllClose(tf.reduce_sum(out["mask"], -1), np.ones((2, 64, 64)), atol=1e-5)

  def test_blend_deformed_shows_the_warped_source_where_the_occlusion_map_says_it_is_visible(self):
    plain = fomm_tf.load_model(testing.tiny_config(), build_discriminator=False)
    blended = fomm_tf.load_model(testing.tiny_config().replace(gen_blend_deformed=True), build_discriminator=False)
    self.assertEqual(len(blended.generator.weights), len(plain.generator.weights))  # No weights of its own.
    for a, b in zip(plain.generator.weights + plain.kp_detector.weights,
                    blended.generator.weights + blended.kp_detector.weights):
      b.assign(a)
    frames = np.random.default_rng(2).random((2, 64, 64, 3)).astype(np.float32)
    kp = plain.detect_keypoints(frames)
    source, kp_source = frames[:1], {k: v[:1] for k, v in kp.items()}
    want, got = plain.generate(source, kp_source, kp), blended.generate(source, kp_source, kp)
    visible = tf.image.resize(want["occlusion_map"], (64, 64)).numpy()
    self.assertAllClose(got["prediction"], visible * want["deformed"] + (1 - visible) * want["prediction"], atol=1e-6)
    for key in ("occlusion_map", "deformation", "deformed"):
      self.assertAllClose(got[key], want[key], atol=1e-6)
    # From a prepared source, as the backends and exports animate: the state carries the full-size source.
    state = generation.encode_source(blended.generator, source)
    self.assertEqual(state["source_small"].shape, (1, 64, 64, 3))
    self.assertAllClose(generation.generate_from_state(blended.generator, state, kp_source, kp),
                        got["prediction"],
                        atol=1e-5)
    with self.assertRaisesRegex(errors.ConfigError, "gen_blend_deformed needs gen_estimate_occlusion_map"):
      testing.tiny_config().replace(gen_blend_deformed=True, gen_estimate_occlusion_map=False)

  def test_fresh_jacobians_are_identity(self):
    model = fomm_tf.load_model(testing.fixture_config())
    kp = model.detect_keypoints(np.random.default_rng(1).random((1, 256, 256, 3)))
    self.assertAllClose(kp["jacobian"], np.broadcast_to(np.eye(2), (1, 10, 2, 2)), atol=1e-6)

  def test_single_jacobian_map_variant(self):
    cfg = testing.fixture_config().replace(kp_single_jacobian_map=True)
    model = fomm_tf.load_model(cfg)
    self.assertEqual(model.kp_detector.jacobian.kernel.shape[-1], 4)
    kp = model.detect_keypoints(np.random.default_rng(1).random((1, 256, 256, 3)))
    self.assertEqual(kp["jacobian"].shape, (1, 10, 2, 2))
    self.assertEqual(
        official_mapping.kp_detector_entries(model.kp_detector)["jacobian.weight"].torch_shape, (4, 11, 7, 7))

  def test_use_kp_discriminator_takes_heatmaps(self):
    cfg = testing.fixture_config().replace(disc_use_kp=True, disc_sn=False)
    model = fomm_tf.load_model(cfg, build_discriminator=True)
    frames = np.zeros((1, 256, 256, 3), np.float32)
    kp = model.detect_keypoints(frames)
    out = model.discriminator({"prediction_1": frames}, kp)
    self.assertEqual(model.discriminator.discs["1"].down_blocks[0].conv.kernel.shape, (4, 4, 13, 16))
    self.assertLen(out["feature_maps_1"], 4)
    with self.assertRaisesRegex(ValueError, "use_kp is on"):
      model.discriminator({"prediction_1": frames})

  def test_spectral_norm_training_step_normalises(self):
    layer = spectral_norm_conv.SpectralNormConv2D(4, 3)
    x = tf.random.normal((1, 8, 8, 2))
    layer(x)
    for _ in range(30):
      layer(x, training=True)
    sigma = np.linalg.svd(layer.weight_matrix().numpy(), compute_uv=False)[0]
    normalised = layer.normalized_kernel().numpy()
    w = np.transpose(normalised, (3, 2, 0, 1)).reshape(4, -1)
    self.assertAllClose(np.linalg.svd(w, compute_uv=False)[0], 1.0, atol=1e-3)
    self.assertGreater(sigma, 0)


if __name__ == "__main__":
  absltest.main()

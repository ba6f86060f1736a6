"""Parity with the official PyTorch implementation on the shared golden fixtures."""

import functools

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

import fomm_tf
from fomm_tf.ops import antialias
from fomm_tf.ops import transform as transform_lib
from tests import testing

KP_TOL = 1e-5
MAP_TOL = 1e-5
WARP_TOL = 1e-4
# Discriminator activations are unbounded (~40 here), where float32 summation
# order alone moves the last digits: errors are measured against the array's
# largest magnitude.
DISC_RTOL = 5e-6

CASES = [
    ("zip_ac1", testing.CHECKPOINT, True),
    ("zip_ac0", testing.CHECKPOINT, False),
    ("legacy_ac1", testing.LEGACY_CHECKPOINT, True),
    ("legacy_ac0", testing.LEGACY_CHECKPOINT, False),
]


@functools.lru_cache(maxsize=None)
def _model(checkpoint, align_corners):
  return fomm_tf.load_model(testing.fixture_config(align_corners),
                            checkpoint=checkpoint,
                            align_corners=align_corners,
                            build_discriminator=True)


def _kp(prefix):
  a = testing.arrays()
  return {"value": a[prefix + "_value"], "jacobian": a[prefix + "_jacobian"]}


class ParityTest(tf.test.TestCase, parameterized.TestCase):

  def assertClose(self, actual, expected, tol, what):
    actual = np.asarray(actual)
    self.assertEqual(actual.shape, expected.shape, what)
    err = float(np.max(np.abs(actual - expected)))
    self.assertLessEqual(err, tol, f"{what}: max abs error {err:.3g} > {tol}")

  @parameterized.named_parameters(*CASES)
  def test_keypoint_detector(self, checkpoint, align_corners):
    a = testing.arrays()
    model = _model(checkpoint, align_corners)
    for name in ("source", "driving"):
      frames = testing.nchw_to_nhwc(a[name])
      out = model.kp_detector(frames, return_internals=True)
      self.assertClose(out["value"], a[f"kp_{name}_value"], KP_TOL, f"kp_{name}_value")
      self.assertClose(out["jacobian"], a[f"kp_{name}_jacobian"], KP_TOL, f"kp_{name}_jacobian")
      self.assertClose(out["logits"], testing.nchw_to_nhwc(a[f"kp_{name}_logits"]), 1e-4, f"kp_{name}_logits")
      if name == "source":
        self.assertClose(out["downsampled"], testing.nchw_to_nhwc(a["kp_source_downsampled"]), 1e-6, "downsampled")
      api = model.detect_keypoints(frames)
      self.assertClose(api["value"], a[f"kp_{name}_value"], KP_TOL, "detect_keypoints value")

  @parameterized.named_parameters(*CASES)
  def test_generator(self, checkpoint, align_corners):
    a = testing.arrays()
    model = _model(checkpoint, align_corners)
    source = testing.nchw_to_nhwc(a["source"])
    suffix = "_ac1" if align_corners else ""
    for mode in ("rel", "abs"):
      out = model.generate(source, _kp("kp_source"), _kp(f"kp_norm_{mode}"))
      prefix = f"gen_{mode}{suffix}_"
      self.assertClose(out["prediction"], testing.nchw_to_nhwc(a[prefix + "prediction"]), MAP_TOL,
                       prefix + "prediction")
      self.assertClose(out["mask"], testing.nchw_to_nhwc(a[prefix + "mask"]), MAP_TOL, prefix + "mask")
      self.assertClose(out["occlusion_map"], testing.nchw_to_nhwc(a[prefix + "occlusion_map"]), MAP_TOL,
                       prefix + "occlusion_map")
      self.assertClose(out["deformation"], a[prefix + "deformation"], MAP_TOL, prefix + "deformation")
      self.assertClose(out["sparse_deformed"], testing.nchw_to_nhwc(a[prefix + "sparse_deformed"]), WARP_TOL,
                       prefix + "sparse_deformed")
      self.assertClose(out["deformed"], testing.nchw_to_nhwc(a[prefix + "deformed"]), WARP_TOL, prefix + "deformed")

  @parameterized.named_parameters(*CASES[:2])
  def test_discriminator(self, checkpoint, align_corners):
    a = testing.arrays()
    model = _model(checkpoint, align_corners)
    frame = testing.nchw_to_nhwc(a["driving"][:1])
    out = model.discriminator({"prediction_1": frame})
    for i in range(4):
      self.assertClose(out["feature_maps_1"][i], testing.nchw_to_nhwc(a[f"disc_feature_maps_1_{i}"]),
                       DISC_RTOL * np.abs(a[f"disc_feature_maps_1_{i}"]).max(), f"disc feature map {i}")
    self.assertClose(out["prediction_map_1"], testing.nchw_to_nhwc(a["disc_prediction_map_1"]),
                     DISC_RTOL * np.abs(a["disc_prediction_map_1"]).max(), "disc prediction")

  def test_normalize_kp(self):
    a = testing.arrays()
    kp_s, kp_d = _kp("kp_source"), _kp("kp_driving")
    kp_d0 = {k: v[:1] for k, v in kp_d.items()}
    rel = fomm_tf.normalize_kp(kp_s,
                               kp_d,
                               kp_d0,
                               adapt_movement_scale=True,
                               use_relative_movement=True,
                               use_relative_jacobian=True)
    self.assertClose(rel["value"], a["kp_norm_rel_value"], KP_TOL, "kp_norm_rel_value")
    self.assertClose(rel["jacobian"], a["kp_norm_rel_jacobian"], KP_TOL, "kp_norm_rel_jacobian")
    absolute = fomm_tf.normalize_kp(kp_s, kp_d, kp_d0)
    self.assertClose(absolute["value"], a["kp_norm_abs_value"], KP_TOL, "kp_norm_abs_value")
    self.assertClose(absolute["jacobian"], a["kp_norm_abs_jacobian"], KP_TOL, "kp_norm_abs_jacobian")
    from fomm_tf.ops import normalize_kp as normalize_lib
    scale = normalize_lib.movement_scale(kp_s["value"], kp_d0["value"])
    self.assertClose(scale, np.reshape(a["adapt_movement_scale"], (1,)).astype(np.float32), 1e-6, "scale")

  def test_pyramid(self):
    a = testing.arrays()
    pyramid = antialias.image_pyramid(testing.nchw_to_nhwc(a["source"]), [1, 0.5, 0.25, 0.125])
    for key, name in (("1", "1"), ("0.5", "0_5"), ("0.25", "0_25"), ("0.125", "0_125")):
      self.assertClose(pyramid["prediction_" + key], testing.nchw_to_nhwc(a["pyramid_prediction_" + name]), 1e-6,
                       "pyramid " + key)

  @parameterized.named_parameters(*CASES[:2])
  def test_equivariance_transform(self, checkpoint, align_corners):
    a = testing.arrays()
    model = _model(checkpoint, align_corners)
    transform = transform_lib.RandomTransform(a["tps_theta"], np.reshape(a["tps_control_points"], (-1, 2)),
                                              a["tps_control_params"])
    frame = testing.nchw_to_nhwc(a["driving"][:1])
    transformed = transform.transform_frame(frame, align_corners=align_corners)
    expected = a["tps_transformed_frame_ac1" if align_corners else "tps_transformed_frame"]
    self.assertClose(transformed, testing.nchw_to_nhwc(expected), WARP_TOL, "transformed frame")
    if align_corners:
      return
    kp_t = model.detect_keypoints(transformed)
    self.assertClose(kp_t["value"], a["tps_kp_transformed_value"], KP_TOL, "kp of transformed frame")
    self.assertClose(kp_t["jacobian"], a["tps_kp_transformed_jacobian"], KP_TOL, "jacobian of transformed frame")
    kp_fixture = a["tps_kp_transformed_value"]
    self.assertClose(transform.warp_coordinates(tf.constant(kp_fixture)), a["tps_warped_kp"], KP_TOL, "warped kp")
    self.assertClose(transform.jacobian(tf.constant(kp_fixture)), a["tps_jacobian_at_kp"], KP_TOL, "transform jacobian")
    from fomm_tf.losses import equivariance
    kp_d0 = _kp("kp_driving0")
    kp_t_fixture = _kp("tps_kp_transformed")
    value_loss = equivariance.equivariance_value_loss(kp_d0, kp_t_fixture, transform)
    jac_loss = equivariance.equivariance_jacobian_loss(kp_d0, kp_t_fixture, transform)
    self.assertClose(value_loss, a["loss_equivariance_value_unweighted"].astype(np.float32), 1e-6, "value loss")
    self.assertClose(jac_loss, a["loss_equivariance_jacobian_unweighted"].astype(np.float32), 1e-6, "jacobian loss")


if __name__ == "__main__":
  absltest.main()

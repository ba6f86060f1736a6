"""Largest absolute error of every output against the official golden fixtures.

  python tools/parity_report.py [--fixtures_dir=../shared/fixtures]

Runs the fixtures' small-channel model from both checkpoint formats with both
align_corners settings and prints one row per output.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "fixtures_dir",
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "fixtures"),
    "Folder with small-official-* files.")


def nhwc(a):
  return np.moveaxis(a, -3, -1)


def main(argv):
  del argv
  import fomm_tf
  from fomm_tf import config as config_lib
  from fomm_tf.losses import equivariance
  from fomm_tf.ops import antialias
  from fomm_tf.ops import transform as transform_lib
  d = FLAGS.fixtures_dir
  a = dict(np.load(os.path.join(d, "small-official-io.npz")))
  with open(os.path.join(d, "small-official-config.json")) as f:
    official = json.load(f)
  worst = {}

  def record(name, actual, expected):
    err = float(np.max(np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))))
    worst[name] = max(worst.get(name, 0.0), err)

  kp = lambda p: {"value": a[p + "_value"], "jacobian": a[p + "_jacobian"]}
  for fmt in ("small-official.pth.tar", "small-official-legacy.pth.tar"):
    for ac in (True, False):
      cfg = config_lib.config_from_official(official).replace(align_corners=ac)
      model = fomm_tf.load_model(cfg, checkpoint=os.path.join(d, fmt), align_corners=ac, build_discriminator=True)
      for name in ("source", "driving"):
        out = model.kp_detector(nhwc(a[name]), return_internals=True)
        record("keypoint value", out["value"], a[f"kp_{name}_value"])
        record("keypoint jacobian", out["jacobian"], a[f"kp_{name}_jacobian"])
        record("keypoint logits", out["logits"], nhwc(a[f"kp_{name}_logits"]))
        if name == "source":
          record("downsampled input", out["downsampled"], nhwc(a["kp_source_downsampled"]))
      suffix = "_ac1" if ac else ""
      for mode in ("rel", "abs"):
        out = model.generate(nhwc(a["source"]), kp("kp_source"), kp(f"kp_norm_{mode}"))
        for key in ("prediction", "mask", "occlusion_map", "sparse_deformed", "deformed"):
          record(f"generator {key}", out[key], nhwc(a[f"gen_{mode}{suffix}_{key}"]))
        record("generator deformation", out["deformation"], a[f"gen_{mode}{suffix}_deformation"])
      maps = model.discriminator({"prediction_1": nhwc(a["driving"][:1])})
      for i in range(4):
        record("discriminator feature maps (relative to max |x|)",
               maps["feature_maps_1"][i] / np.abs(a[f"disc_feature_maps_1_{i}"]).max(),
               nhwc(a[f"disc_feature_maps_1_{i}"]) / np.abs(a[f"disc_feature_maps_1_{i}"]).max())
      record("discriminator prediction map", maps["prediction_map_1"], nhwc(a["disc_prediction_map_1"]))
      transform = transform_lib.RandomTransform(a["tps_theta"], a["tps_control_points"].reshape(-1, 2),
                                                a["tps_control_params"])
      frame = transform.transform_frame(nhwc(a["driving"][:1]), align_corners=ac)
      record("TPS transformed frame", frame, nhwc(a["tps_transformed_frame" + suffix]))
      record("TPS warped keypoints", transform.warp_coordinates(a["tps_kp_transformed_value"]), a["tps_warped_kp"])
      record("TPS jacobian", transform.jacobian(a["tps_kp_transformed_value"]), a["tps_jacobian_at_kp"])
      record("equivariance value loss",
             equivariance.equivariance_value_loss(kp("kp_driving0"), kp("tps_kp_transformed"), transform),
             a["loss_equivariance_value_unweighted"])
      record("equivariance jacobian loss",
             equivariance.equivariance_jacobian_loss(kp("kp_driving0"), kp("tps_kp_transformed"), transform),
             a["loss_equivariance_jacobian_unweighted"])
  d0 = {k: v[:1] for k, v in kp("kp_driving").items()}
  rel = fomm_tf.normalize_kp(kp("kp_source"), kp("kp_driving"), d0, True, True, True)
  record("normalize_kp relative value", rel["value"], a["kp_norm_rel_value"])
  record("normalize_kp relative jacobian", rel["jacobian"], a["kp_norm_rel_jacobian"])
  absolute = fomm_tf.normalize_kp(kp("kp_source"), kp("kp_driving"), d0)
  record("normalize_kp absolute value", absolute["value"], a["kp_norm_abs_value"])
  pyramid = antialias.image_pyramid(nhwc(a["source"]), [1, 0.5, 0.25, 0.125])
  for scale, name in ((0.5, "0_5"), (0.25, "0_25"), (0.125, "0_125")):
    record("image pyramid", pyramid[antialias.pyramid_key(scale)], nhwc(a["pyramid_prediction_" + name]))
  print(f"\n{'output':52s} {'max abs error':>14s}")
  for name, err in worst.items():
    print(f"{name:52s} {err:14.3g}")


if __name__ == "__main__":
  app.run(main)

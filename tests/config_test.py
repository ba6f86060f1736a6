"""The flagfile configs: every official config loads with the reference table's values; bad files fail clearly."""

import os

from absl.testing import absltest
from absl.testing import parameterized

from fomm_tf import config as config_lib

# (epochs, num_repeats, milestones, batch, generator_gan, sn, use_kp, id_sampling) from the reference table.
REFERENCE = {
    "vox-256": (100, 75, [60, 90], 40, 0, True, False, True),
    "vox-adv-256": (150, 75, [], 36, 1, False, True, True),
    "taichi-256": (100, 150, [60, 90], 30, 0, True, False, True),
    "taichi-adv-256": (150, 150, [], 27, 1, False, True, True),
    "bair-256": (20, 1, [12, 18], 36, 1, True, False, False),
    "nemo-256": (100, 8, [60, 90], 36, 1, True, False, False),
    "mgif-256": (100, 25, [60, 90], 36, 1, True, False, False),
    "fashion-256": (100, 50, [60, 90], 27, 1, False, False, False),
}


class ConfigTest(parameterized.TestCase):

  @parameterized.parameters(*REFERENCE)
  def test_official_configs_match_reference(self, name):
    cfg = config_lib.load_config(name)
    epochs, repeats, milestones, batch, gan, sn, use_kp, id_sampling = REFERENCE[name]
    self.assertEqual(cfg.train.num_epochs, epochs)
    self.assertEqual(cfg.train.num_repeats, repeats)
    self.assertEqual(cfg.train.epoch_milestones, tuple(milestones))
    self.assertEqual(cfg.train.batch_size, batch)
    self.assertEqual(cfg.train.loss_generator_gan, gan)
    self.assertEqual(cfg.discriminator.sn, sn)
    self.assertEqual(cfg.discriminator.use_kp, use_kp)
    self.assertEqual(cfg.dataset.id_sampling, id_sampling)
    # Shared parameters of all official configs.
    self.assertEqual(cfg.model.frame_shape, (256, 256, 3))
    self.assertEqual(cfg.model.num_kp, 10)
    self.assertEqual(cfg.train.perceptual_scales, (1.0, 0.5, 0.25, 0.125))
    self.assertEqual(cfg.train.loss_perceptual, (10.0,) * 5)
    self.assertEqual((cfg.train.sigma_affine, cfg.train.sigma_tps, cfg.train.points_tps), (0.05, 0.005, 5))
    self.assertEqual(cfg.train.lr_kp_detector, 0.0 if name == "taichi-adv-256" else 2e-4)
    self.assertEqual(cfg.kp_detector.single_jacobian_map, name == "mgif-256")
    self.assertTrue(cfg.animation.use_relative_movement and cfg.animation.use_relative_jacobian)
    self.assertFalse(cfg.animation.adapt_movement_scale)

  def test_mgif_augmentation(self):
    cfg = config_lib.load_config("mgif-256")
    self.assertEqual(cfg.dataset.resize_ratio, (0.9, 1.1))
    self.assertEqual(cfg.dataset.crop_size, (256, 256))
    self.assertEqual(cfg.dataset.jitter_hue, 0.5)

  def test_path_and_overrides(self):
    path = os.path.join(config_lib.CONFIG_DIR, "vox-256.flags")
    cfg = config_lib.load_config(path, num_kp=5)
    self.assertEqual(cfg.model.num_kp, 5)
    self.assertEqual(cfg.source, path)

  def test_official_model_params(self):
    cfg = config_lib.config_from_official({
        "model_params": {
            "common_params": {
                "num_kp": 4
            },
            "kp_detector_params": {
                "block_expansion": 8
            },
            "generator_params": {
                "dense_motion_params": {
                    "num_blocks": 3
                }
            },
            "discriminator_params": {
                "scales": [1, 0.5]
            }
        }
    })
    self.assertEqual((cfg.model.num_kp, cfg.kp_detector.block_expansion, cfg.dense_motion.num_blocks), (4, 8, 3))
    self.assertEqual(cfg.discriminator.scales, (1.0, 0.5))

  def test_unknown_flag_in_file(self):
    path = self.create_tempfile("bad.flags", "--num_kp=10\n--no_such_parameter=3\n").full_path
    with self.assertRaisesRegex(config_lib.ConfigError, r"bad\.flags.*no_such_parameter"):
      config_lib.load_config(path)

  def test_bad_list_value(self):
    path = self.create_tempfile("bad.flags", "--epoch_milestones=60,ninety\n").full_path
    with self.assertRaisesRegex(config_lib.ConfigError, r"epoch_milestones.*integers"):
      config_lib.load_config(path)

  def test_unknown_name_lists_known(self):
    with self.assertRaisesRegex(config_lib.ConfigError, r"unknown config 'vox-512'.*vox-256"):
      config_lib.load_config("vox-512")

  def test_missing_file(self):
    with self.assertRaisesRegex(config_lib.ConfigError, r"config file not found: /nope/x\.flags"):
      config_lib.load_config("/nope/x.flags")

  def test_invalid_values(self):
    with self.assertRaisesRegex(config_lib.ConfigError, r"kp_scale_factor must be 1 or 1/n, got 0.3"):
      config_lib.load_config("vox-256", kp_scale_factor=0.3)
    with self.assertRaisesRegex(config_lib.ConfigError, r"unknown config parameter\(s\): nope"):
      config_lib.load_config("vox-256", nope=1)

  def test_same_networks_looks_at_the_networks_alone(self):
    teacher = config_lib.load_config("synthetic-128")
    self.assertTrue(teacher.same_networks(teacher.replace(num_epochs=3, crop="face", id_sampling=True)))
    self.assertFalse(teacher.same_networks(teacher.replace(gen_num_bottleneck_blocks=2)))
    self.assertFalse(teacher.same_networks(teacher.replace(align_corners=False)))
    self.assertFalse(teacher.same_networks(config_lib.load_config("synthetic-128-lite")))

  @parameterized.parameters("vox-256-lite", "synthetic-128-lite", "bair-256-lite", "fashion-256-lite", "mgif-256-lite",
                            "nemo-256-lite", "taichi-256-lite")
  def test_lite_configs_keep_their_teachers_interface(self, name):
    lite = config_lib.load_config(name)
    teacher = config_lib.load_config(name[:-len("-lite")])
    self.assertTrue(lite.kp_detector.separable and lite.dense_motion.separable and lite.generator.separable)
    self.assertEqual(
        (lite.kp_detector.head_kernel_size, lite.dense_motion.head_kernel_size, lite.generator.head_kernel_size),
        (3, 3, 3))
    # What a distillation pairs must match (keypoints, Jacobians, occlusion, frame size), and what the student is
    # used with (animation settings, the output blend); its training schedule is its own.
    for get in (lambda c: c.model, lambda c: c.generator.estimate_occlusion_map, lambda c: c.generator.blend_deformed,
                lambda c: c.animation):
      self.assertEqual(get(lite), get(teacher))
    # The lite fields reach the flags and the networks' constructor arguments.
    self.assertTrue(lite.flat()["gen_separable"])
    self.assertEqual(lite.kp_detector_kwargs()["head_kernel_size"], 3)
    self.assertEqual(lite.generator_kwargs()["dense_motion_params"]["separable"], True)
    # Official YAML configs do not have them: importing one keeps the paper's networks.
    official = config_lib.config_from_official({"model_params": {"common_params": {"num_kp": 10}}})
    self.assertFalse(official.generator.separable)
    self.assertEqual(official.generator.head_kernel_size, 7)

  def test_every_official_lite_config_is_its_teacher_with_vox_256_lite_networks(self):
    # The lite change is the same for every official config whose training starts from scratch (the -adv configs
    # fine-tune a trained model: distil their teachers into the lite config of the same data instead).
    vox, vox_lite = config_lib.load_config("vox-256").flat(), config_lib.load_config("vox-256-lite").flat()
    change = {name: value for name, value in vox_lite.items() if value != vox[name]}
    self.assertIn("gen_separable", change)
    lite_names = [n for n in config_lib.known_configs() if n.endswith("-lite") and not n.startswith("synthetic")]
    teachers = [n for n in config_lib.known_configs() if n + "-lite" in lite_names]
    self.assertEqual(sorted(teachers), ["bair-256", "fashion-256", "mgif-256", "nemo-256", "taichi-256", "vox-256"])
    for teacher in teachers:
      self.assertEqual(
          config_lib.load_config(teacher + "-lite").flat(),
          config_lib.load_config(teacher, **change).flat(), teacher)

  @parameterized.parameters(
      ("--gen_block_expansion=1000000\n", r"gen_block_expansion must be in \[1, 4096\], got 1000000"),
      ("--dm_max_features=99999\n", r"dm_max_features must be in \[1, 4096\], got 99999"),
      ("--kp_num_blocks=40\n", r"kp_num_blocks must be in \[1, 8\], got 40"),
      ("--gen_num_bottleneck_blocks=100000\n", r"gen_num_bottleneck_blocks must be in \[0, 64\]"),
      ("--num_kp=100000\n", r"num_kp must be in \[1, 256\]"),
      ("--gen_head_kernel_size=4\n", r"gen_head_kernel_size must be 1, 3, 5 or 7, got 4"),
      ("--kp_head_kernel_size=3\n--kp_pad=3\n", r"kp_pad must be 0 or 1 \(kp_head_kernel_size 3\), got 3"),
  )
  def test_hostile_lite_flagfile_is_refused_before_any_network(self, lines, pattern):
    path = self.create_tempfile(
        "hostile.flags", f"--flagfile={os.path.join(config_lib.CONFIG_DIR, 'vox-256-lite.flags')}\n{lines}").full_path
    with self.assertRaisesRegex(config_lib.ConfigError, pattern):
      config_lib.load_config(path)


if __name__ == "__main__":
  absltest.main()

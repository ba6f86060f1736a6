"""`python -m fomm_tf.evaluate` end to end on real media files, with a tiny model and a saved checkpoint."""

import csv
import json
import os
import shutil
import tempfile

import numpy as np
from absl import flags
from absl.testing import absltest
from PIL import Image

import fomm_tf
from fomm_tf import errors
from fomm_tf.inference import pipeline
from fomm_tf.checkpoint import loading as checkpoint_loading
from fomm_tf.io import media
from fomm_tf.evaluation import animation_pairs
from fomm_tf.evaluation import cli
from fomm_tf.evaluation import figures
from fomm_tf.evaluation import staging
from fomm_tf.errors import EvaluationError
from tests import testing

SIZE = 64
# Pixels per unit of [-1, 1] keypoint coordinates in a 64-pixel frame.
PIXELS_PER_UNIT = (SIZE - 1) / 2.0


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def read_json(path):
  with open(path) as f:
    return json.load(f)


def read_png(path):
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


class EvaluateTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    os.makedirs(absltest.get_default_test_tmpdir(), exist_ok=True)
    cls.dir = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.flagfile = testing.write_tiny_flagfile(cls.dir)
    cls.model = fomm_tf.load_model(cls.flagfile, build_discriminator=False)
    cls.checkpoint = checkpoint_loading.save_weights(cls.model, os.path.join(cls.dir, "ckpt", "tiny"))

    cls.root = os.path.join(cls.dir, "dataset")
    test_dir = os.path.join(cls.root, "test")
    os.makedirs(test_dir)
    testing.write_video(os.path.join(test_dir, "moving.mp4"), testing.textured_square_frames(8, SIZE, SIZE))
    still_dir = os.path.join(test_dir, "still")
    os.makedirs(still_dir)
    still = testing.textured_square_frames(1, SIZE, SIZE, seed=2)[0]
    for i in range(5):
      testing.write_image(os.path.join(still_dir, f"{i:04d}.png"), still)
    testing.write_video(os.path.join(test_dir, "wide.gif"), testing.textured_square_frames(6, 48, SIZE, seed=3))
    with open(os.path.join(test_dir, "dataset_notes.json"), "w") as f:
      f.write("{}")
    # Ground truth = our own detector's keypoints on the real frames, so the fitted map is the identity.
    moving = cls.prepared_frames(os.path.join(test_dir, "moving.mp4"))
    cls.moving_real_kp = cls.model.detect_keypoints(moving)["value"].numpy()
    np.save(os.path.join(test_dir, "moving.keypoints.npy"), cls.moving_real_kp)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir, ignore_errors=True)
    super().tearDownClass()

  @staticmethod
  def prepared_frames(path):
    return np.stack([pipeline.prepare_frame(f, SIZE, "crop") for f in media.read_video_frames(path)])

  def run_cli(self, *args, checkpoint=True, root=None):
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    argv = ["evaluate", f"--flagfile={self.flagfile}", f"--dataset_root={root or self.root}", *args]
    if checkpoint:
      argv.append(f"--checkpoint={self.checkpoint}")
    flag_values(argv)
    return cli.run(flag_values)

  def expected_reconstruction(self, name):
    """Per-frame L1 and predictions, computed with the model's own generate() (not the streaming backend)."""
    path = os.path.join(self.root, "test", name)
    frames = self.prepared_frames(path)
    source = frames[:1]
    kp_source = self.model.detect_keypoints(source)
    kp_driving = self.model.detect_keypoints(frames)
    prediction = self.model.generate(source, kp_source, kp_driving)["prediction"].numpy()
    return np.abs(prediction - frames).mean(axis=(1, 2, 3)), prediction

  def test_reconstruction_scores(self):
    out = self.create_tempdir().full_path
    self.run_cli(f"--output_dir={out}", "--batch_size=3", "--save_videos")
    self.assertEqual(sorted(os.listdir(out)), ["reconstruction", "reconstruction.csv", "reconstruction.json"])
    self.assertEqual(sorted(os.listdir(os.path.join(out, "reconstruction"))), ["moving.mp4", "still.mp4", "wide.mp4"])
    count, _, _, size = testing.probe(os.path.join(out, "reconstruction", "moving.mp4"))
    self.assertEqual((count, size), (8, (SIZE, 3 * SIZE)))  # source | driving | prediction.
    rows = read_csv(os.path.join(out, "reconstruction.csv"))
    result = read_json(os.path.join(out, "reconstruction.json"))
    self.assertEqual([r["video"] for r in rows], ["moving", "still", "wide"])
    self.assertEqual([int(r["frames"]) for r in rows], [8, 5, 6])
    by_name = {v["video"]: v for v in result["videos"]}
    for row in rows:
      self.assertAlmostEqual(float(row["l1"]), by_name[row["video"]]["l1"], places=7)

    for name, file_name in (("moving", "moving.mp4"), ("wide", "wide.gif")):
      per_frame, _ = self.expected_reconstruction(file_name)
      self.assertAlmostEqual(by_name[name]["l1"], per_frame.mean(), delta=1e-5)

    # Every frame of `still` is frame 0, so its L1 is that of reconstructing the source from itself.
    source = self.prepared_frames(os.path.join(self.root, "test", "still"))[:1]
    kp = self.model.detect_keypoints(source)
    self_reconstruction = self.model.generate(source, kp, kp)["prediction"].numpy()
    self.assertAlmostEqual(by_name["still"]["l1"], np.abs(self_reconstruction - source).mean(), delta=1e-5)

    frames = np.array([8, 5, 6])
    l1s = np.array([by_name[n]["l1"] for n in ("moving", "still", "wide")])
    self.assertAlmostEqual(result["l1"], (frames * l1s).sum() / frames.sum(), places=9)
    self.assertAlmostEqual(result["l1_mean_of_videos"], l1s.mean(), places=9)
    self.assertIn("all frames", result["l1_averaging"])
    self.assertEqual((result["num_videos"], result["num_frames"]), (3, 19))

    # AKD: ground truth is the detector on the real frames, so the map is the identity and
    # AKD is the pixel distance between the detector's keypoints on generated and real frames.
    _, prediction = self.expected_reconstruction("moving.mp4")
    generated_kp = self.model.detect_keypoints(prediction)["value"].numpy()
    expected_akd = np.linalg.norm(generated_kp - self.moving_real_kp, axis=-1).mean() * PIXELS_PER_UNIT
    self.assertAlmostEqual(by_name["moving"]["akd"], expected_akd, delta=1e-3)
    self.assertAlmostEqual(by_name["moving"]["akd_real"], 0.0, delta=1e-3)
    self.assertAlmostEqual(float(rows[0]["akd"]), expected_akd, delta=1e-3)
    self.assertEqual(result["num_videos_with_keypoints"], 1)
    self.assertAlmostEqual(result["akd"], by_name["moving"]["akd"], places=9)
    self.assertIsNone(by_name["still"]["akd"])
    self.assertEqual(rows[1]["akd"], "")

  def test_animation_pairs(self):
    out = self.create_tempdir().full_path
    result = self.run_cli(f"--output_dir={out}", "--mode=animation", "--num_pairs=4", "--seed=3")
    rows = read_csv(os.path.join(out, "animation.csv"))
    self.assertLen(rows, 4)
    expected_pairs = animation_pairs.choose_pairs(3, 4, seed=3)
    names = ["moving", "still", "wide"]
    self.assertEqual([(r["source"], r["driving"]) for r in rows], [(names[s], names[d]) for s, d in expected_pairs])
    frame_counts = {"moving": 8, "still": 5, "wide": 6}
    for row in rows:
      self.assertNotEqual(row["source"], row["driving"])
      self.assertEqual(row["file"], os.path.join("animation", f"{row['source']}__{row['driving']}.mp4"))
      count, _, _, size = testing.probe(os.path.join(out, row["file"]))
      self.assertEqual(count, frame_counts[row["driving"]])
      self.assertEqual(int(row["frames"]), count)
      self.assertEqual(size, (SIZE, 3 * SIZE))
    self.assertLen(os.listdir(os.path.join(out, "animation")), 4)
    self.assertTrue(result["relative"])

  def test_pair_choice_is_seeded_and_covers_distinct_videos(self):
    everything = animation_pairs.choose_pairs(4, 100, seed=0)
    self.assertLen(everything, 12)
    self.assertLen(set(everything), 12)
    self.assertTrue(all(s != d for s, d in everything))
    self.assertEqual(animation_pairs.choose_pairs(4, 5, seed=1), animation_pairs.choose_pairs(4, 5, seed=1))
    self.assertNotEqual(animation_pairs.choose_pairs(4, 12, seed=1), animation_pairs.choose_pairs(4, 12, seed=2))
    with self.assertRaisesRegex(EvaluationError, "at least 2 test videos"):
      animation_pairs.choose_pairs(1, 5)

  def test_visualize_figures(self):
    out = self.create_tempdir().full_path
    self.run_cli(f"--output_dir={out}", "--mode=visualize", "--max_videos=2", "--num_frames=3")
    keypoints_png = read_png(os.path.join(out, "visualize", "keypoints.png"))
    occlusion_png = read_png(os.path.join(out, "visualize", "occlusion.png"))
    self.assertEqual(keypoints_png.shape, (2 * SIZE, 3 * SIZE, 3))
    self.assertEqual(figures.header_height(SIZE), 16)
    self.assertEqual(occlusion_png.shape, (16 + 3 * SIZE, 5 * SIZE, 3))

    # The saved grid is the drawn frames pixel for pixel (outside the text labels in the top-left corners).
    rows = []
    for name in ("moving.mp4", "still"):
      picked = figures.select_frames(os.path.join(self.root, "test", name), 3, SIZE)
      kp = self.model.detect_keypoints([frame for _, frame in picked])["value"].numpy()
      rows.append([(frame, kp[i]) for i, (_, frame) in enumerate(picked)])
    self.assertEqual([index for index, _ in picked], [0, 2, 4])
    expected = np.round(figures.keypoint_grid(rows) * 255)
    lower_halves = np.concatenate([keypoints_png[r * SIZE + SIZE // 2:(r + 1) * SIZE] for r in range(2)])
    expected_lower = np.concatenate([expected[r * SIZE + SIZE // 2:(r + 1) * SIZE] for r in range(2)])
    self.assertLessEqual(np.abs(lower_halves.astype(np.float64) - expected_lower).max(), 1.0)

    # The prediction column of the occlusion figure is the generator's output for those frames.
    moving = self.prepared_frames(os.path.join(self.root, "test", "moving.mp4"))
    _, prediction = self.expected_reconstruction("moving.mp4")
    for row, index in enumerate([0, 4, 7]):
      cell = occlusion_png[16 + row * SIZE + 1:16 + (row + 1) * SIZE - 1, 4 * SIZE + 1:5 * SIZE - 1]
      self.assertLessEqual(np.abs(cell - prediction[index, 1:-1, 1:-1] * 255).max(), 2.0)
    self.assertEqual(len(moving), 8)

  def test_external_keypoints_mode(self):
    keypoint_dir = self.create_tempdir().full_path
    gt = np.zeros((2, 3, 2))
    pred = gt + [6.0, 8.0]
    pred[1, 2] = np.nan
    np.save(os.path.join(keypoint_dir, "clip_gt.npy"), gt)
    np.save(os.path.join(keypoint_dir, "clip_pred.npy"), pred)
    out = os.path.join(self.create_tempdir().full_path, "new", "dir")
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    flag_values(["evaluate", "--mode=keypoints", f"--external_keypoints_dir={keypoint_dir}", f"--output_dir={out}"])
    cli.run(flag_values)
    rows = read_csv(os.path.join(out, "keypoints.csv"))
    self.assertEqual(rows, [{
        "video": "clip",
        "frames": "2",
        "num_keypoints": "3",
        "akd": "10",
        "mkr": "0.166666667",
        "num_gt_found": "6",
        "num_matched": "5",
        "num_missing": "1"
    }])
    result = read_json(os.path.join(out, "keypoints.json"))
    self.assertEqual(result["akd"], 10.0)
    self.assertAlmostEqual(result["mkr"], 1 / 6, places=12)

  def assert_fails_cleanly(self, message, *args, output_dir, **kwargs):
    before = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else None
    with self.assertRaises(errors.FommError) as context:
      self.run_cli(f"--output_dir={output_dir}", *args, **kwargs)
    self.assertIn(message, str(context.exception))
    self.assertNotIn("\n", str(context.exception))
    after = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else None
    self.assertEqual(after, before)

  def test_bad_dataset_roots(self):
    out = os.path.join(self.create_tempdir().full_path, "out")
    self.assert_fails_cleanly("does not exist", output_dir=out, root=os.path.join(self.dir, "missing"))
    empty = self.create_tempdir()
    os.makedirs(os.path.join(empty.full_path, "test"))
    np.save(os.path.join(empty.full_path, "test", "a.keypoints.npy"), np.zeros((2, 3, 2)))
    empty.create_file(os.path.join("test", "dataset.json"), "{}")
    self.assert_fails_cleanly("no test videos in", output_dir=out, root=empty.full_path)
    self.assertFalse(os.path.exists(out))

  def test_unwritable_output_dir(self):
    blocker = self.create_tempdir().create_file("a_file").full_path
    self.assert_fails_cleanly("is not writable", output_dir=os.path.join(blocker, "out"))
    self.assert_fails_cleanly("exists and is not a directory", output_dir=blocker)

  def test_checkpoint_mismatch(self):
    other = fomm_tf.load_model(fomm_tf.load_config(self.flagfile, num_kp=5), build_discriminator=False)
    prefix = checkpoint_loading.save_weights(other, os.path.join(self.create_tempdir().full_path, "other"))
    out = self.create_tempdir().full_path
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    flag_values([
        "evaluate", f"--flagfile={self.flagfile}", f"--dataset_root={self.root}", f"--output_dir={out}",
        f"--checkpoint={prefix}"
    ])
    with self.assertRaisesRegex(errors.CheckpointError, "does not fit this config"):
      cli.run(flag_values)
    self.assertEqual(os.listdir(out), [])

  def test_failure_midway_leaves_previous_results_untouched(self):
    root = self.create_tempdir().full_path
    os.makedirs(os.path.join(root, "test"))
    shutil.copy(os.path.join(self.root, "test", "moving.mp4"), os.path.join(root, "test", "a.mp4"))
    np.save(os.path.join(root, "test", "a.keypoints.npy"), np.zeros((8, 3, 2)))
    shutil.copy(os.path.join(self.root, "test", "moving.mp4"), os.path.join(root, "test", "b.mp4"))
    np.save(os.path.join(root, "test", "b.keypoints.npy"), np.zeros((7, 3, 2)))  # one frame short.
    out = self.create_tempdir()
    out.create_file("reconstruction.csv", "old results\n")
    self.assert_fails_cleanly("b.keypoints.npy: has 7 frames of keypoints but",
                              "--save_videos",
                              output_dir=out.full_path,
                              root=root)
    with open(os.path.join(out.full_path, "reconstruction.csv")) as f:
      self.assertEqual(f.read(), "old results\n")
    self.assertFalse(any(n.startswith(staging.StagedOutput.PREFIX) for n in os.listdir(out.full_path)))

  def test_command_line_error_is_one_line_and_comes_before_tensorflow_loads(self):
    missing = os.path.join(self.dir, "missing")
    process = testing.run_module_listing_tf("fomm_tf.evaluate", f"--flagfile={self.flagfile}",
                                            f"--dataset_root={missing}",
                                            f"--output_dir={self.create_tempdir().full_path}")
    self.assertEqual(process.returncode, 1)
    self.assertEqual(process.stderr.strip().splitlines()[-1],
                     f"error: dataset root {missing} does not exist or is not a directory")
    self.assertEqual(process.stdout.strip().splitlines()[-1], "loaded: []")


if __name__ == "__main__":
  absltest.main()

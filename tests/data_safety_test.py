"""A user's own mistakes and hostile inputs: refused with one `error:` line, and no input is ever overwritten.

Every command that writes is tried with an output that is (or holds) one of its
inputs, spelled plainly, as `./x/../name` and through a symlink; the input's bytes
must be unchanged afterwards. Flags that used to do the wrong thing quietly
(an empty --checkpoint, --fps=1e-4, --output_size=100000, zero sizes) and broken
files of this project's own formats (.npz weights, TF checkpoints) are refused
before any work, as one line.
"""

import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import av
import numpy as np
from absl.testing import absltest

from fomm_tf.animation import cli as animate_cli
from fomm_tf.checkpoint import loading
from fomm_tf.checkpoint import npz_weights
from fomm_tf.data import synthetic
from fomm_tf.errors import CheckpointError
from fomm_tf.errors import FommError
from fomm_tf.evaluation import cli as evaluate_cli
from fomm_tf.io import media
from fomm_tf.training import cli as train_cli
from tests import testing


def digest(path):
  with open(path, "rb") as f:
    return f.read()


def png_claiming_size(path, width, height):
  """A small PNG whose header claims width x height pixels (its pixel data is one tiny IDAT)."""

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

  header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) +
            chunk(b"IEND", b""))
  return path


class AnimateRefusesToOverwriteInputsTest(testing.AnimateFixtures, testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.gif = testing.write_video(os.path.join(cls.dir, "source.gif"), cls.frames[:2], fps=25)

  def animate(self, *args, source=None, driving=None):
    return testing.run_cli(animate_cli, f"--flagfile={self.flagfile}", f"--source_image={source or self.source_png}",
                           f"--driving_video={driving or self.driving_mp4}", *args)

  def test_result_equal_to_the_driving_video_however_spelled(self):
    before = digest(self.driving_mp4)
    link = os.path.join(self.tmp_dir(), "link.mp4")
    os.symlink(self.driving_mp4, link)
    hard = os.path.join(self.tmp_dir(), "hard.mp4")
    os.link(self.driving_mp4, hard)
    dotted = os.path.join(self.dir, "sub", "..", "driving.mp4")
    os.makedirs(os.path.join(self.dir, "sub"), exist_ok=True)
    relative = os.path.relpath(self.driving_mp4)
    for spelling in (self.driving_mp4, dotted, link, hard, relative):
      with self.subTest(spelling=spelling):
        self.assertErrorLine(self.animate(f"--result_video={spelling}"),
                             r"--result_video=.* is the same file as --driving_video=.*refusing to overwrite")
        self.assertEqual(digest(self.driving_mp4), before)

  def test_result_equal_to_the_source_gif(self):
    before = digest(self.gif)
    self.assertErrorLine(self.animate(f"--result_video={self.gif}", source=self.gif),
                         r"--result_video=.*source\.gif is the same file as --source_image=")
    self.assertEqual(digest(self.gif), before)

  def test_a_driving_video_symlinked_to_the_result(self):
    # The driving flag names a link; the result names the real file.
    link = os.path.join(self.tmp_dir(), "drive-link.mp4")
    os.symlink(self.driving_mp4, link)
    before = digest(self.driving_mp4)
    self.assertErrorLine(self.animate(f"--result_video={self.driving_mp4}", driving=link),
                         r"--result_video=.* is the same file as --driving_video=")
    self.assertEqual(digest(self.driving_mp4), before)

  def test_empty_checkpoint_is_an_error_not_random_weights(self):
    out = self.tmp_path("out.mp4")
    self.assertErrorLine(self.animate("--checkpoint=", f"--result_video={out}"), r"--checkpoint is empty")
    self.assertFalse(os.path.exists(out))

  def test_frame_rate_and_output_size_are_checked_before_the_model_loads(self):
    out = self.tmp_path("out.mp4")
    # A checkpoint that does not exist: the flag checks must come first, so its error never shows.
    missing = f"--checkpoint={self.tmp_path('missing.pth.tar')}"
    for args, pattern in ((("--fps=1e-4",), r"--fps is 0\.0001 fps, outside 0\.1 to 1000"),
                          (("--fps=nan",), r"--fps is nan fps, outside"), (("--output_size=100000",),
                                                                           r"--output_size.*at most"),
                          (("--output_size=0",), r"--output_size"), (("--batch_size=0",),
                                                                     r"--batch_size must be >= 1")):
      with self.subTest(args=args):
        self.assertErrorLine(self.animate(*args, missing, f"--result_video={out}"), pattern)
        self.assertFalse(os.path.exists(out))

  def test_a_picture_above_the_pixel_limit_is_refused_before_decoding(self):
    for side in (14_000, 9_000):
      self.check_big_picture(side)

  def check_big_picture(self, side):
    big = png_claiming_size(self.tmp_path("big.png"), side, side)
    self.assertLess(os.path.getsize(big), 1000)
    with self.assertRaisesRegex(FommError, r"big\.png: .*megapixels"):
      media.read_image(big)
    out = self.tmp_path("out.mp4")
    self.assertErrorLine(self.animate(f"--result_video={out}", source=big), r".*big\.png: .*megapixels")
    self.assertFalse(os.path.exists(out))

  def test_a_truncated_driving_video_ends_the_progress_line_before_the_error(self):
    folder = self.tmp_dir()
    frames = testing.textured_square_frames(120, height=64, width=64)
    # The index goes first (faststart), so the cut file opens and fails part-way, after the bar has started.
    whole = testing.write_video(os.path.join(folder, "whole.mp4"),
                                frames,
                                fps=25,
                                container_options={"movflags": "+faststart"})
    with av.open(whole) as container:
      end = container.streams.video[0].index_entries[90].pos
    cut = os.path.join(folder, "cut.mp4")
    with open(cut, "wb") as f:
      f.write(digest(whole)[:end])
    out = os.path.join(folder, "out.mp4")
    code, _, stderr = self.animate(f"--result_video={out}", driving=cut)
    self.assertErrorLine((code, "", stderr), r".*cut\.mp4: frame \d+ could not be decoded: the file ends early")
    self.assertIn("animating [", stderr)
    at = stderr.rindex("error: ")
    self.assertTrue(at == 0 or stderr[at - 1] == "\n", repr(stderr[max(0, at - 80):at + 40]))
    self.assertFalse(os.path.exists(out))
    self.assertEqual(sorted(os.listdir(folder)), ["cut.mp4", "whole.mp4"])

  def test_flag_parsing_mistakes_end_with_an_error_line(self):
    out = self.tmp_path("out.mp4")
    for args, pattern in (((f"--result_video={out}", "stray.mp4"),
                           r"unexpected arguments: stray\.mp4"), (("--flagfile=/nonexistent/x.flags",), r".*x\.flags"),
                          (("--batch_size=abc",), r".*batch_size.*abc"), (("--no_such_flag=1",), r".*no_such_flag")):
      with self.subTest(args=args):
        code, _, stderr = testing.run_cli(animate_cli, *args)
        self.assertErrorLine((code, "", stderr), pattern)
        self.assertNotIn("Pass --helpshort", stderr.strip().splitlines()[-1])
    self.assertFalse(os.path.exists(out))


class TrainAndEvaluateRefuseToWriteOverInputsTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = testing.make_class_dir("data_safety_train_")
    cls.flagfile = testing.write_tiny_flagfile(cls.dir)
    cls.dataset = os.path.join(cls.dir, "data")
    synthetic.write_dataset(cls.dataset, num_train=2, num_test=1, num_frames=4, frame_size=64, seed=0, fmt="mp4")

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()

  def test_train_size_flags_must_be_positive(self):
    model_dir = self.tmp_path("run")
    for args, pattern in ((("--batch_size=0",), r"--batch_size must be >= 1, got 0"),
                          (("--max_steps=0",), r"--max_steps must be >= 1, got 0"),
                          (("--max_steps=-3",), r"--max_steps must be >= 1, got -3"), (("--batch_size=abc",),
                                                                                       r".*batch_size.*abc")):
      with self.subTest(args=args):
        self.assertErrorLine(
            testing.run_cli(train_cli, f"--flagfile={self.flagfile}", f"--dataset_root={self.dataset}",
                            f"--model_dir={model_dir}", *args), pattern)
    self.assertFalse(os.path.exists(model_dir))

  def test_train_model_dir_holding_the_init_checkpoint(self):
    model_dir = self.tmp_dir()
    init = os.path.join(model_dir, "init.npz")
    npz_weights.save_npz_weights(testing.tiny_model(), init)
    before = digest(init)
    self.assertErrorLine(
        testing.run_cli(train_cli, f"--flagfile={self.flagfile}", f"--dataset_root={self.dataset}",
                        f"--model_dir={model_dir}", f"--init_checkpoint={init}", "--max_steps=1"),
        r"--model_dir=.* holds --init_checkpoint=.*init\.npz: refusing")
    self.assertEqual(digest(init), before)
    self.assertEqual(os.listdir(model_dir), ["init.npz"])

  def test_train_model_dir_inside_the_dataset(self):
    inside = os.path.join(self.dataset, "train", "run")
    self.assertErrorLine(
        testing.run_cli(train_cli, f"--flagfile={self.flagfile}", f"--dataset_root={self.dataset}",
                        f"--model_dir={inside}", "--max_steps=1"),
        r"--model_dir=.* is inside --dataset_root=.*refusing to write into an input folder")
    self.assertFalse(os.path.exists(inside))

  def test_evaluate_output_dir_inside_or_holding_the_dataset(self):
    listing = sorted(os.listdir(os.path.join(self.dataset, "test")))
    for output_dir, pattern in ((os.path.join(self.dataset, "test"), r"--output_dir=.* is inside --dataset_root="),
                                (self.dir, r"--output_dir=.* holds --dataset_root="),
                                (os.path.join(self.dataset, "out"), r"--output_dir=.* is inside --dataset_root=")):
      with self.subTest(output_dir=output_dir):
        self.assertErrorLine(
            testing.run_cli(evaluate_cli, f"--flagfile={self.flagfile}", f"--dataset_root={self.dataset}",
                            f"--output_dir={output_dir}"), pattern)
    self.assertEqual(sorted(os.listdir(os.path.join(self.dataset, "test"))), listing)
    self.assertFalse(os.path.exists(os.path.join(self.dataset, "out")))


class BrokenOwnFormatsTest(testing.TestCase):
  """This project's own weight files, damaged: one-line CheckpointErrors, the model's weights untouched."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = testing.make_class_dir("data_safety_formats_")
    cls.model = testing.tiny_model()
    cls.npz = npz_weights.save_npz_weights(cls.model, os.path.join(cls.dir, "weights.npz"))
    cls.prefix = loading.save_weights(cls.model, os.path.join(cls.dir, "ckpt", "ckpt-1"))

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()

  def assertRefused(self, path, pattern):
    before = [v.numpy() for v in self.model.inference_variables().values()]
    with self.assertRaisesRegex(CheckpointError, pattern) as caught:
      loading.load_weights(self.model, path)
    self.assertNotIn("\n", str(caught.exception))
    for old, variable in zip(before, self.model.inference_variables().values()):
      np.testing.assert_array_equal(old, variable.numpy())

  def test_truncated_npz(self):
    data = digest(self.npz)
    for cut in (len(data) // 2, len(data) - 30, 100):
      with self.subTest(cut=cut):
        path = self.tmp_path("cut.npz")
        with open(path, "wb") as f:
          f.write(data[:cut])
        self.assertRefused(path, r"cut\.npz: not a readable weights \.npz file")

  def test_npz_member_claiming_a_trillion_elements_or_holding_objects(self):
    name = next(iter(self.model.inference_variables()))
    arrays = {k: v.numpy() for k, v in self.model.inference_variables().items()}
    huge = self.tmp_path("huge.npz")
    np.savez(huge, **arrays)
    # Rewrite one member so that its header claims 10^12 float32 values over a few bytes of data.
    import zipfile  # pylint: disable=import-outside-toplevel
    header = {"descr": "<f4", "fortran_order": False, "shape": (1_000_000, 1_000_000)}
    member = self.tmp_path("member.npy")
    with open(member, "wb") as f:
      np.lib.format.write_array_header_1_0(f, header)
      f.write(b"\0" * 16)
    rebuilt = self.tmp_path("rebuilt.npz")
    with zipfile.ZipFile(huge) as src, zipfile.ZipFile(rebuilt, "w") as dst:
      for info in src.infolist():
        dst.writestr(info.filename, digest(member) if info.filename == name + ".npy" else src.read(info))
    self.assertRefused(rebuilt, r"has shape \[1000000, 1000000\], the model expects")
    objects = self.tmp_path("objects.npz")
    np.savez(
        objects, **{
            **arrays, name:
                np.array([object()] * int(np.prod(arrays[name].shape)), dtype=object).reshape(arrays[name].shape)
        })
    self.assertRefused(objects, r"holds object values, not numbers")

  def test_tf_checkpoint_with_truncated_data_or_garbage_index(self):
    data_file = [f for f in os.listdir(os.path.dirname(self.prefix)) if ".data-" in f][0]
    for damage in ("truncate", "index"):
      with self.subTest(damage=damage):
        copy = os.path.join(self.tmp_dir(), "ckpt")
        shutil.copytree(os.path.dirname(self.prefix), copy)
        prefix = os.path.join(copy, os.path.basename(self.prefix))
        if damage == "truncate":
          target = os.path.join(copy, data_file)
          size = os.path.getsize(target)
          with open(target, "r+b") as f:
            f.truncate(size // 3)
        else:
          with open(prefix + ".index", "wb") as f:
            f.write(os.urandom(300))
        self.assertRefused(prefix, r".")

  def test_train_refuses_to_resume_from_a_damaged_checkpoint(self):
    model_dir = os.path.join(self.tmp_dir(), "run")
    shutil.copytree(testing.tiny_training_run(), model_dir)
    data_file = [f for f in os.listdir(model_dir) if f.startswith("ckpt-6.data-")][0]
    with open(os.path.join(model_dir, data_file), "r+b") as f:
      f.truncate(os.path.getsize(os.path.join(model_dir, data_file)) // 2)
    listing = sorted(os.listdir(model_dir))
    self.assertErrorLine(
        testing.run_cli(train_cli, *testing.train_args(model_dir, *testing.TINY_RUN_ARGS[1:], "--max_steps=7")),
        r"cannot resume from .*ckpt-6: .*damaged")
    self.assertEqual(sorted(os.listdir(model_dir)), listing)


class CommandProcessTestCase(testing.TestCase):
  """The tiny model's flagfile, a photo and a driving video long enough to interrupt a command in the middle."""

  NUM_FRAMES = 400

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = testing.make_class_dir(f"data_safety_{cls.__name__}_")
    cls.flagfile = testing.write_tiny_flagfile(cls.dir)
    frames = testing.textured_square_frames(cls.NUM_FRAMES, height=64, width=64)
    cls.source_png = testing.write_image(os.path.join(cls.dir, "source.png"), frames[0])
    cls.driving = testing.write_video(os.path.join(cls.dir, "driving.mp4"), frames, fps=25)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()


class SignalsTest(CommandProcessTestCase):
  """SIGTERM (timeout, a scheduler, a container stop) and SIGINT (Ctrl-C) while a command writes."""

  def interrupt_when_staged(self, module, args, watch, signum):
    """Starts `python -m module args`, sends `signum` once a hidden staging entry appears in `watch`."""
    env = dict(os.environ, PYTHONPATH=testing.REPO_ROOT)
    process = subprocess.Popen([sys.executable, "-m", module, *args],
                               cwd=testing.REPO_ROOT,
                               env=env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               text=True)
    try:
      deadline = time.monotonic() + 300
      while not any(name.startswith(".") for name in os.listdir(watch)):
        self.assertIsNone(process.poll(), "the command ended before staging anything")
        self.assertLess(time.monotonic(), deadline, "nothing was staged within 300 s")
        time.sleep(0.05)
      process.send_signal(signum)
      _, stderr = process.communicate(timeout=300)
    finally:
      if process.poll() is None:
        process.kill()
        process.wait()
    return process.returncode, stderr

  def test_sigterm_and_sigint_while_animating_leave_nothing(self):
    for signum in (signal.SIGTERM, signal.SIGINT):
      with self.subTest(signal=signum.name):
        out_dir = self.tmp_dir()
        code, stderr = self.interrupt_when_staged("fomm_tf.animate", [
            f"--flagfile={self.flagfile}", f"--source_image={self.source_png}", f"--driving_video={self.driving}",
            f"--result_video={out_dir}/result.mp4", "--batch_size=1"
        ], out_dir, signum)
        self.assertEqual(code, 128 + signum, stderr[-2000:])
        self.assertRegex(stderr.strip().splitlines()[-1], rf"^interrupted: .*signal {int(signum)}")
        self.assertNotIn("Traceback", stderr)
        self.assertEqual(os.listdir(out_dir), [])

  def test_sigterm_while_exporting_leaves_nothing(self):
    out_dir = self.tmp_dir()
    code, stderr = self.interrupt_when_staged(
        "fomm_tf.export", [f"--flagfile={self.flagfile}", f"--output_dir={out_dir}/export", "--formats=saved_model"],
        out_dir, signal.SIGTERM)
    self.assertEqual(code, 128 + signal.SIGTERM, stderr[-2000:])
    self.assertRegex(stderr.strip().splitlines()[-1], r"^interrupted: ")
    self.assertNotIn("Traceback", stderr)
    self.assertEqual(os.listdir(out_dir), [])


def run_on_a_small_disk(test, size_kb, mount_point, command):
  """Runs `command` with a `size_kb` tmpfs mounted on `mount_point` (in a private mount namespace, so no root
  is needed): (exit code, stderr, the paths left on the small disk afterwards, sorted)."""
  script = ('mount -t tmpfs -o size="$1"k fomm-full "$2" || exit 90; shift 2; "$@" 2>"$TMP_STDERR"; code=$?; '
            'find "$MOUNT_POINT" -mindepth 1 -printf "%P\\n"; exit $code')
  errors_file = os.path.join(test.enterContext(tempfile.TemporaryDirectory(prefix="small_disk_")), "stderr.txt")
  env = dict(os.environ, PYTHONPATH=testing.REPO_ROOT, TMP_STDERR=errors_file, MOUNT_POINT=mount_point)
  done = subprocess.run(
      ["unshare", "--map-root-user", "--mount", "sh", "-c", script, "sh",
       str(size_kb), mount_point, *command],
      cwd=testing.REPO_ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=600)
  test.assertNotEqual(done.returncode, 90, f"cannot mount a small tmpfs in a user namespace: {done.stderr}")
  with open(errors_file) as f:
    stderr = f.read()
  return done.returncode, stderr, sorted(done.stdout.split())


class DiskFullTest(CommandProcessTestCase):
  """ENOSPC while writing a video or an export: one line, and no partial file or staging folder is left."""

  NUM_FRAMES = 200

  def test_a_full_disk_while_animating(self):
    disk = self.tmp_dir()
    code, stderr, left = run_on_a_small_disk(self, 8, disk, [
        sys.executable, "-m", "fomm_tf.animate", f"--flagfile={self.flagfile}", f"--source_image={self.source_png}",
        f"--driving_video={self.driving}", f"--result_video={disk}/result.mp4", "--output_size=512"
    ])
    self.assertEqual(code, 1, stderr[-2000:])
    self.assertRegex(stderr.strip().splitlines()[-1], r"^error: .*result\.mp4.*no space left on device")
    self.assertNotIn("Traceback", stderr)
    self.assertEqual(left, [])

  def test_a_full_disk_while_exporting(self):
    disk = self.tmp_dir()
    code, stderr, left = run_on_a_small_disk(self, 64, disk, [
        sys.executable, "-m", "fomm_tf.export", f"--flagfile={self.flagfile}", f"--output_dir={disk}/export",
        "--formats=saved_model"
    ])
    self.assertEqual(code, 1, stderr[-2000:])
    self.assertRegex(stderr.strip().splitlines()[-1], r"^error: .*no space left on device")
    self.assertNotIn("Traceback", stderr)
    self.assertEqual(left, [])


if __name__ == "__main__":
  absltest.main()

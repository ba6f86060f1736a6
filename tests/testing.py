"""What the tests share: paths, per-test temp folders, real media files, small models, in-process CLI runs.

Tests derive from `testing.TestCase`. Every test gets its own temp folder
(`self.tmp_dir()`), so parallel pytest workers never write the same file;
class-level data goes into `make_class_dir()`, and `AnimateFixtures` writes the
tiny flagfile, a photo and a driving video that the command tests share.
Expensive objects (models, fixture arrays) are cached per process with
`functools.cache`; expensive files (exports, a trained tiny run) are made once
per test run for all pytest workers with `shared_artifact`. Media are real
files written with PyAV and Pillow.
"""

import atexit
import contextlib
import fcntl
import functools
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import av
import numpy as np
from absl import flags
from absl.testing import absltest
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
FIXTURES_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "fixtures")
REFERENCE_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "reference")
CHECKPOINT = os.path.join(FIXTURES_DIR, "small-official.pth.tar")
LEGACY_CHECKPOINT = os.path.join(FIXTURES_DIR, "small-official-legacy.pth.tar")

# A tiny random config with the vox-256 structure: fast end-to-end tests.
TINY_FLAGS = """--flagfile={root}/configs/vox-256.flags
--frame_shape=64,64,3
--kp_block_expansion=8
--kp_max_features=32
--kp_num_blocks=3
--gen_block_expansion=8
--gen_max_features=32
--dm_block_expansion=8
--dm_max_features=32
--dm_num_blocks=3
--crop=center
"""


def make_temp_dir(test_case, prefix):
  """A temp folder removed after the test."""
  return test_case.enterContext(tempfile.TemporaryDirectory(prefix=prefix))


def make_class_dir(prefix):
  """A fresh temp folder for data a whole test class shares (remove it in tearDownClass)."""
  return tempfile.mkdtemp(prefix=prefix)


@functools.cache
def _shared_root():
  """The run's shared folder (conftest.py makes it before the workers start), or this process's own."""
  root = os.environ.get("FOMM_TEST_SHARED_DIR")
  if root is None:  # Not under pytest (a test module run as a script): shared within this process only.
    root = tempfile.mkdtemp(prefix="fomm_test_shared_")
    atexit.register(shutil.rmtree, root, True)
  return root


def shared_artifact(name, make):
  """The folder `name`, made by `make(folder)` once per test run and shared by every pytest worker.

  The first caller makes it while holding a file lock (a second caller waits for it rather than making it
  again); a `make` that fails leaves nothing, so the next caller tries again. Users only read it: a test that
  changes files copies them first.
  """
  root = _shared_root()
  path = os.path.join(root, name)
  with open(os.path.join(root, name + ".lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.isdir(path):
      staging = tempfile.mkdtemp(prefix=name + ".making.", dir=root)
      try:
        make(staging)
      except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
      os.rename(staging, path)
  return path


def write_tiny_flagfile(directory):
  path = os.path.join(directory, "tiny.flags")
  with open(path, "w") as f:
    f.write(TINY_FLAGS.format(root=REPO_ROOT))
  return path


@functools.cache
def tiny_config():
  from fomm_tf import config as config_lib  # pylint: disable=import-outside-toplevel
  directory = make_class_dir("tiny_config_")
  try:
    return config_lib.load_config(write_tiny_flagfile(directory)).with_source("tiny")
  finally:
    shutil.rmtree(directory)


# The lite layers (depthwise-separable blocks, 3x3 heads) on the tiny config.
LITE_OVERRIDES = {
    "kp_separable": True,
    "kp_head_kernel_size": 3,
    "dm_separable": True,
    "dm_head_kernel_size": 3,
    "gen_separable": True,
    "gen_head_kernel_size": 3,
    "gen_num_bottleneck_blocks": 2
}


@functools.cache
def tiny_lite_config():
  return tiny_config().replace(**LITE_OVERRIDES).with_source("tiny-lite")


@functools.cache
def tiny_model(seed=0):
  """The tiny model with seeded random weights (the same in every run), cached per process."""
  import keras  # pylint: disable=import-outside-toplevel
  import fomm_tf  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(seed)
  return fomm_tf.load_model(tiny_config())


def fixture_config(align_corners=True):
  from fomm_tf import config as config_lib  # pylint: disable=import-outside-toplevel
  with open(os.path.join(FIXTURES_DIR, "small-official-config.json")) as f:
    params = json.load(f)
  return config_lib.config_from_official(params).replace(align_corners=align_corners)


@functools.cache
def fixture_model(align_corners=True):
  """The small official fixture model, without discriminator, cached per process."""
  import fomm_tf  # pylint: disable=import-outside-toplevel
  return fomm_tf.load_model(fixture_config(align_corners), checkpoint=CHECKPOINT)


@functools.cache
def arrays():
  """The official fixtures' arrays (PyTorch layouts; see nchw_to_nhwc), cached per process."""
  return dict(np.load(os.path.join(FIXTURES_DIR, "small-official-io.npz")))


def nchw_to_nhwc(a):
  return np.moveaxis(a, -3, -1)


def write_fixture_flagfile(directory, align_corners=True):
  """A flagfile for the fixtures' small-channel model (vox-256 structure, fewer channels)."""
  flat = fixture_config(align_corners).flat()
  names = [n for n in flat if n.startswith(("kp_", "gen_", "dm_", "disc_"))] + ["align_corners"]
  path = os.path.join(directory, "small-official.flags")
  with open(path, "w") as f:
    f.write(f"--flagfile={os.path.join(REPO_ROOT, 'configs', 'vox-256.flags')}\n")
    for name in names:
      value = flat[name]
      if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
      elif isinstance(value, bool):
        value = str(value).lower()
      f.write(f"--{name}={value}\n")
  return path


def _export_structures(folder):
  from fomm_tf.export import op_inventory  # pylint: disable=import-outside-toplevel
  found, configs, exports = op_inventory.inventory(folder, report=lambda line: None)
  with open(os.path.join(folder, "inventory.json"), "w") as f:
    json.dump(
        {
            "found": {
                key: sorted(ops) for key, ops in found.items()
            },
            "configs": configs,
            "exports": {
                name: os.path.basename(directory) for names, _, directory in exports for name in names
            }
        }, f)


def structure_exports():
  """op_inventory.inventory's exports of every official structure (shrunk, seeded, every quantisation), shared:
  (found: {kind: set of op types}, config names, {config name: its structure's export directory})."""
  folder = shared_artifact("structure_exports", _export_structures)
  with open(os.path.join(folder, "inventory.json")) as f:
    data = json.load(f)
  found = {key: set(ops) for key, ops in data["found"].items()}
  return found, data["configs"], {name: os.path.join(folder, sub) for name, sub in data["exports"].items()}


# ----------------------------------------------------------------------------
# Training: one small dataset and one short run of the tiny model, shared by the whole test run.

# The training fields of in-process training tests: batches of 2, one epoch, the VGG loss at one scale, no
# sampling by identity, no colour jitter (each test adds its repeats, loss weights and networks).
TINY_TRAINING = dict(train_batch_size=2,
                     num_epochs=1,
                     perceptual_scales=[1.0],
                     id_sampling=False,
                     jitter_brightness=0.0,
                     jitter_contrast=0.0,
                     jitter_saturation=0.0,
                     jitter_hue=0.0)
# A shallower tiny network and a pixel loss instead of VGG: a training step traces in seconds (the distributed runs,
# which trace one graph per replica, use it too).
SMALL_NET = ("--loss_perceptual=0,0,0,0,0", "--loss_pixel=1", "--gen_num_bottleneck_blocks=1", "--kp_num_blocks=1",
             "--dm_num_blocks=1")
# The shared run: six steps of SMALL_NET at batch 2, a checkpoint after every step, all kept, every step's losses
# in TensorBoard.
TINY_RUN_ARGS = ("--max_steps=6", "--batch_size=2", "--checkpoint_every=1", "--keep_checkpoints=0", *SMALL_NET)


def _write_tiny_dataset(folder):
  from fomm_tf.data import synthetic  # pylint: disable=import-outside-toplevel
  write_tiny_flagfile(folder)
  synthetic.write_dataset(os.path.join(folder, "data"),
                          num_train=4,
                          num_test=2,
                          num_frames=8,
                          frame_size=64,
                          seed=0,
                          fmt="mp4",
                          videos_per_identity=2)


def tiny_dataset():
  """(tiny flagfile, synthetic dataset root: 4 training and 2 test videos of 8 frames at 64x64), shared."""
  folder = shared_artifact("tiny_dataset", _write_tiny_dataset)
  return os.path.join(folder, "tiny.flags"), os.path.join(folder, "data")


def train_args(model_dir, *extra):
  """The arguments of `python -m fomm_tf.train` for the tiny model on tiny_dataset() (random VGG, one scale)."""
  flagfile, dataset = tiny_dataset()
  return (f"--flagfile={flagfile}", f"--dataset_root={dataset}", f"--model_dir={model_dir}", "--vgg19_weights=random",
          "--loss_perceptual=1,0,0,0,0", "--perceptual_scales=1", "--noid_sampling", "--num_repeats=4",
          "--image_every=0", *extra)


def _train_tiny_run(folder):
  from fomm_tf.training import cli as train_cli  # pylint: disable=import-outside-toplevel
  code, _, stderr = run_cli(train_cli, *train_args(os.path.join(folder, "run"), "--summary_every=1", *TINY_RUN_ARGS))
  if code != 0:
    raise AssertionError(f"the shared tiny training run failed:\n{stderr[-3000:]}")


def copy_checkpoint(model_dir, step, destination):
  """Copies checkpoint `step` of the run in `model_dir` into the folder `destination`, as the newest checkpoint
  of a run stopped after that step: its files and the index a CheckpointManager writes."""
  from fomm_tf.training import checkpoints  # pylint: disable=import-outside-toplevel
  for path in glob.glob(os.path.join(model_dir, f"{checkpoints.PREFIX}-{step}.*")):
    shutil.copy(path, destination)
  with open(os.path.join(destination, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "{checkpoints.PREFIX}-{step}"\n')


def tiny_training_run():
  """The model_dir of `python -m fomm_tf.train` with train_args() and TINY_RUN_ARGS: checkpoints ckpt-1 to
  ckpt-6 and TensorBoard losses at every step. Shared: read it, or copy it to change it."""
  return os.path.join(shared_artifact("tiny_training_run", _train_tiny_run), "run")


# ----------------------------------------------------------------------------
# Real media.


def textured_square_frames(num_frames, height=48, width=64, seed=0):
  """uint8 frames of a textured square moving over a gradient background."""
  rng = np.random.default_rng(seed)
  texture = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
  background = np.zeros((height, width, 3), np.uint8)
  background[..., 0] = np.linspace(0, 200, width)[None, :]
  background[..., 2] = np.linspace(50, 150, height)[:, None]
  frames = []
  for t in range(num_frames):
    frame = background.copy()
    y, x = 4 + (t * 2) % (height - 20), 4 + (t * 3) % (width - 20)
    frame[y:y + 16, x:x + 16] = texture
    frames.append(frame)
  return frames


def moving_square_frames(count, height=32, width=48):
  """uint8 frames: a light square moving right over a coloured ramp."""
  rows = np.linspace(30, 120, height, dtype=np.float32)[:, None]
  base = np.zeros((height, width, 3), np.uint8)
  base[..., 0] = rows
  base[..., 1] = 90
  base[..., 2] = 150
  frames = []
  for index in range(count):
    frame = base.copy()
    left = (2 * index) % max(1, width - 12)
    frame[8:20, left:left + 12] = (230, 220, 60)
    frames.append(frame)
  return frames


def as_float(frames):
  return [np.asarray(frame, np.float32) / 255.0 for frame in frames]


def mean_abs_error(frames_a, frames_b):
  return float(
      np.mean(
          [np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() for a, b in zip(frames_a, frames_b)]))


def write_video(path,
                frames,
                fps=25,
                codec=None,
                audio_seconds=None,
                audio_layout="mono",
                audio_amplitude=0.3,
                rotation=None,
                container_options=None):
  """Writes uint8 frames with PyAV: H.264 (mp4/mov/mkv), GIF by extension or `codec`; optionally a 440 Hz tone."""
  height, width = frames[0].shape[:2]
  gif = os.path.splitext(path)[1].lower() == ".gif"
  codec = codec or ("gif" if gif else "libx264")
  with av.open(path, "w", container_options=container_options) as container:
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = {"libx264": "yuv420p", "gif": "rgb8"}.get(codec, "rgb24")
    if rotation is not None:
      stream.set_display_rotation(rotation)
    audio = None
    if audio_seconds is not None:
      audio = container.add_stream("aac", rate=44100, layout=audio_layout)
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)
    if audio is not None:
      channels = 2 if audio_layout == "stereo" else 1
      total = int(audio_seconds * 44100)
      tone = audio_amplitude * np.sin(2 * np.pi * 440 * np.arange(total) / 44100)
      for start in range(0, total, 1024):
        chunk = np.repeat(tone[start:start + 1024].astype(np.float32)[None], channels, axis=0)
        audio_frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=audio_layout)
        audio_frame.sample_rate = 44100
        audio_frame.pts = start
        for packet in audio.encode(audio_frame):
          container.mux(packet)
      for packet in audio.encode(None):
        container.mux(packet)
  return path


def write_y4m(path, frames, fps=25):
  """uint8 frames as a raw yuv4mpeg clip (what Chromium's fake webcam plays)."""
  height, width = frames[0].shape[:2]
  with av.open(path, "w", format="yuv4mpegpipe") as container:
    stream = container.add_stream("rawvideo", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)
  return path


def gradio_file(path):
  """A file argument for gradio_client."""
  from gradio_client import handle_file  # pylint: disable=import-outside-toplevel
  return handle_file(path)


def write_image(path, array):
  Image.fromarray(np.asarray(array)).save(path)
  return path


def probe(path):
  """(num_frames, fps, has_audio, (h, w)) of a written video, decoded for real."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    fps = float(stream.average_rate) if stream.average_rate else None
    has_audio = bool(container.streams.audio)
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
  return len(frames), fps, has_audio, frames[0].shape[:2]


def tensorboard_events(model_dir):
  """[(tag, step, value or image array)] of a run's TensorBoard event files (model_dir/train), read back."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  out = []
  for path in glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        out.append((value.tag, event.step, tf.make_ndarray(value.tensor)))
  return out


# ----------------------------------------------------------------------------
# Commands.


@contextlib.contextmanager
def captured_output():
  """Captures what is printed to stdout and stderr (Python-level writes)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    yield out, err


def run_cli(cli_module, *args, handle_signals=True):
  """Runs a command module (define_flags + run) in this process on fresh flags: (exit code, stdout, stderr)."""
  from fomm_tf import cli  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  code = 0
  with captured_output() as (out, err):
    try:
      cli.invoke(cli_module.define_flags, cli_module.run, ["fomm", *args], flag_values, handle_signals)
    except SystemExit as exit_:
      code = exit_.code if isinstance(exit_.code, int) else 1
  return code, out.getvalue(), err.getvalue()


def run_module(module, *args, cwd=None, env=None, timeout=600):
  """`python -m module args` in a subprocess with the checkout importable: CompletedProcess (text)."""
  return _run_python(["-m", module, *args], cwd, env, timeout)


def run_python(code, *args, cwd=None, env=None, timeout=600):
  """`python -c code args` in a subprocess with the checkout importable: CompletedProcess (text)."""
  return _run_python(["-c", code, *args], cwd, env, timeout)


# `python -c` code that hides the top-level packages named in argv[1] (comma-separated, maybe none) as if they were
# not installed, runs the module argv[2] as `python -m` with the arguments after it, then prints (whatever
# happened) which of TensorFlow and Keras the command imported, as its last line of output.
_RUN_MODULE = textwrap.dedent("""
    import runpy, sys
    hidden = set(filter(None, sys.argv[1].split(",")))
    class Hide:
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
          raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
    sys.meta_path.insert(0, Hide())
    module = sys.argv[2]
    sys.argv = [module] + sys.argv[3:]
    try:
      runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
      print("loaded:", sorted({"tensorflow", "keras"} & set(sys.modules)))
""")


def run_module_without(packages, module, *args):
  """`python -m module args` in a subprocess where the packages `packages` (comma-separated) cannot be imported,
  as on a machine without an optional extra: CompletedProcess (text), whose last stdout line is `loaded: [...]`
  (see run_module_listing_tf)."""
  return run_python(_RUN_MODULE, packages, module, *args)


def run_module_listing_tf(module, *args):
  """`python -m module args` in a subprocess whose last stdout line is `loaded: [...]`, the names of tensorflow and
  keras if it imported them: CompletedProcess (text)."""
  return run_python(_RUN_MODULE, "", module, *args)


def _run_python(argv, cwd, env, timeout):
  env = dict(os.environ if env is None else env)
  env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  return subprocess.run([sys.executable, *argv],
                        capture_output=True,
                        text=True,
                        cwd=cwd or REPO_ROOT,
                        env=env,
                        timeout=timeout)


class TestMixin:
  """Per-test temp folders (removed after the test) and error-line assertions, for any TestCase."""

  def tmp_dir(self):
    """A fresh folder for this test alone."""
    return self.enterContext(tempfile.TemporaryDirectory(prefix=type(self).__name__ + "_"))

  def tmp_path(self, name):
    return os.path.join(self.tmp_dir(), name)

  def assertErrorLine(self, result, pattern, code=1):
    """A (code, stdout, stderr) run failed with `code` and its last stderr line is `error: <pattern>`."""
    got_code, _, stderr = result
    self.assertEqual(got_code, code, stderr[-2000:])
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    self.assertRegex(last, r"^error: " + pattern)
    self.assertNotIn("Traceback", stderr)


class TestCase(TestMixin, absltest.TestCase):
  """The base of the project's tests (tf.test.TestCase-based ones mix in TestMixin)."""


class AnimateFixtures:
  """Class-wide real files for tests of the animation commands: `dir`, the tiny model's `flagfile`, a
  `source_png` and a `driving_mp4` (a textured square moving over DRIVING_FRAMES frames at DRIVING_FPS).

  Mix in before the TestCase; removed after the class.
  """
  DRIVING_FRAMES = 6
  DRIVING_FPS = 25

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = make_class_dir(cls.__name__ + "_")
    cls.flagfile = write_tiny_flagfile(cls.dir)
    cls.frames = textured_square_frames(cls.DRIVING_FRAMES)
    cls.source_png = write_image(os.path.join(cls.dir, "source.png"), cls.frames[0])
    cls.driving_mp4 = write_video(os.path.join(cls.dir, "driving.mp4"), cls.frames, fps=cls.DRIVING_FPS)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()

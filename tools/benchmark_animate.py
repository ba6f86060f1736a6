"""Benchmarks animation backends (Keras, SavedModel, TFLite, ONNX Runtime, OpenVINO) against the machine's limit.

  .venv/bin/python tools/benchmark_animate.py --config=vox-256 --num_frames=8 --batch_sizes=8 \
      --backends=keras,tflite_float32,tflite_int8,onnx_float32,onnx_int8,openvino_float32,openvino_int8 \
      --work_dir=/tmp/bench

The parent process builds the model (random weights, seed 0), saves them, exports
what the backends need and computes the Keras float32 reference frames; it also
exports the official fixtures' small model (tests' ../shared/fixtures) the same
way, for the PSNR column. It measures the machine's convolution rate in the same
run (issue 20's reference: a 3x3 convolution of 256 to 256 channels on 64x64, batch 1, TensorFlow, all cores).

Every time is per further driving frame: the clock runs from the end of the
first batch (which also encodes the source) to the last frame, over
--num_frames frames, so start-up and source preparation are not counted (the
driving frames cycle through a few synthetic frames). Per (backend, batch size):
  API       `fomm_tf.animate` in a fresh worker process (fastest of --repeats);
  command   `python -m fomm_tf.animate` on the same frames as an H.264 video and
            a PNG (--crop=center as the API's framing; decoding, framing and
            encoding included), timed from its progress lines (frames written),
            fastest of --repeats runs.
Columns: GFLOPs per further frame (counted from the graph, fomm_tf/export/flops.py),
ms/frame through the API and the command, GFLOP/s achieved through the API and
its % of the convolution rate, the API worker's peak RSS, and the PSNR of the
backend's frames against Keras float32 on the fixtures' trained model (3 frames).
On a shared machine compare rows from one run only: other processes' load moves
every row, which is why the convolution rate is measured in the same run.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from tools import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

BACKENDS = ("keras", "keras_bfloat16", "saved_model", "tflite_float32", "tflite_float16", "tflite_dynamic_int8",
            "tflite_int8", "onnx_float32", "onnx_int8", "openvino_float32", "openvino_int8")
# The benchmark names of the exported engines (engine_quantisation); openvino runs the ONNX files.
EXPORTED = ("tflite_", "onnx_", "openvino_")
# Distinct synthetic driving frames (cycled to any length).
DISTINCT_FRAMES = 8
# The reference convolution whose rate the "% conv" column compares with: 3x3, CONV_CHANNELS -> CONV_CHANNELS on
# CONV_SIZE x CONV_SIZE (conv_rate_gflops).
CONV_SIZE = 64
CONV_CHANNELS = 256
SEED = 0

flags.DEFINE_string("config", "vox-256", "Config name or flagfile of the (random-weight) model.")
flags.DEFINE_integer(
    "num_frames", 8, "Driving frames timed after the first batch (a multiple of the batch "
    "size counts whole batches).")
flags.DEFINE_list("backends", list(BACKENDS), f"Backends to run, from: {', '.join(BACKENDS)}.")
flags.DEFINE_list("batch_sizes", ["8"], "Driving frames per backend call.")
flags.DEFINE_enum("batch_mode", "loop", ["loop", "resize"],
                  "TFLite, ONNX and OpenVINO batch handling (see TFLiteBackend).")
flags.DEFINE_integer("repeats", 2, "Timed passes per measurement; the fastest counts (the machine may be shared).")
flags.DEFINE_boolean("command", True, "Also time `python -m fomm_tf.animate` (the command's column).")
flags.DEFINE_boolean("psnr", True, "Export the fixtures' trained model too, for the PSNR column.")
flags.DEFINE_integer("num_threads", None, "TFLite interpreter threads (default: all cores).")
flags.DEFINE_string(
    "work_dir", None, "Where to keep the weights, export and frames (default: a temp dir); "
    "a work dir prepared before for the same config, frames and backends is reused.")
# Worker mode (set by the parent).
flags.DEFINE_string("worker", None, "Internal: run one backend and print its measurements as JSON.")
flags.DEFINE_integer("worker_batch_size", 1, "Internal.")
flags.DEFINE_string("worker_batch_mode", "loop", "Internal.")
flags.DEFINE_string("worker_flagfile", None, "Internal: the fixture model's flagfile (PSNR).")

FLAGS = flags.FLAGS


def _peak_rss_mb():
  """This process's peak resident memory.

  /proc's VmHWM belongs to the process image itself; getrusage's ru_maxrss
  also counts the parent's memory that a forked-then-exec'd worker briefly
  shared, so it is only the fallback where /proc is missing.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0  # kB
  except OSError:
    pass
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB elsewhere


def _quantization(backend_name):
  if backend_name.startswith(EXPORTED):
    return backend_name.split("_", 1)[1]
  return "bfloat16" if backend_name == "keras_bfloat16" else "float32"


def _engine(backend_name):
  """The --backend value of the command for a benchmark backend name."""
  if backend_name.startswith(EXPORTED):
    return backend_name.split("_", 1)[0]
  return backend_name.replace("_bfloat16", "")


def conv_rate_gflops(seconds=3.0):
  """GFLOP/s of the reference 3x3 convolution (CONV_CHANNELS on CONV_SIZE x CONV_SIZE, batch 1), all cores.

  The reference is issue 20's, which set the "% of the convolution rate" target (3x3, 256 -> 256 on 64x64), also
  the shape of vox-256's residual blocks, two thirds of a frame's work. Until 2026-12-05 this tool measured 128 ->
  128 on 128x128 (the same FLOPs): on the AVX512 machine 478-488 against 411-412 GFLOP/s for the reference, so
  earlier "% conv" figures in docs/cpu-speed.md are against a rate about 17% higher there.
  """
  import tensorflow as tf
  size, channels = CONV_SIZE, CONV_CHANNELS
  x = tf.random.uniform((1, size, size, channels))
  w = tf.random.uniform((3, 3, channels, channels))
  conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
  conv(x, w).numpy()
  flop = 2.0 * size * size * channels * channels * 9
  best = float("inf")
  deadline = time.perf_counter() + seconds
  while time.perf_counter() < deadline:
    start = time.perf_counter()
    conv(x, w).numpy()
    best = min(best, time.perf_counter() - start)
  return flop / best / 1e9


def _export_formats(backend_names):
  formats = []
  if "saved_model" in backend_names:
    formats.append("saved_model")
  quantizations = [_quantization(b) for b in backend_names if b.startswith(EXPORTED)]
  if any(b.startswith("tflite_") for b in backend_names):
    formats.append("tflite")
  if any(b.startswith(("onnx_", "openvino_")) for b in backend_names):
    formats.append("onnx")
  return formats, sorted(set(quantizations))


def prepare_fixture(work_dir, backend_names):
  """Exports the fixtures' trained model and its Keras float32 frames (the PSNR column)."""
  import numpy as np
  from tests import export_test_util as util
  from tests import testing
  from fomm_tf.export import exporter
  from fomm_tf.inference import pipeline
  directory = os.path.join(work_dir, "fixture")
  os.makedirs(directory, exist_ok=True)
  frames = util.fixture_frames()
  testing.write_fixture_flagfile(directory)
  reference = np.stack(
      list(pipeline.animate(util.fixture_model(), frames[0], list(frames[1:]) + [frames[0]], batch_size=3)))
  np.save(os.path.join(directory, "reference.npy"), reference)
  formats, quantizations = _export_formats(backend_names)
  if formats:
    exporter.export_model(util.fixture_model(),
                          os.path.join(directory, "export"),
                          formats=formats,
                          quantizations=quantizations or ["float32"],
                          overwrite=True,
                          representative_frames=frames)


def driving_frames(frames, count):
  """`count` driving frames cycling through frames[1:] (frames[0] is the source)."""
  return [frames[1 + i % (len(frames) - 1)] for i in range(count)]


def write_driving_video(work_dir, count):
  """WORK_DIR/driving_<count>.mp4 (written once): the driving frames the API times, as the command reads them."""
  import numpy as np
  from fomm_tf.io import video_writer
  path = os.path.join(work_dir, f"driving_{count}.mp4")
  if not os.path.isfile(path):
    frames = np.load(os.path.join(work_dir, "frames.npy"))
    with video_writer.VideoWriter(path, 25) as writer:
      for frame in driving_frames(frames, count):
        writer.write(frame)
  return path


def prepare(work_dir, backend_names):
  """Writes the weights, frames, reference frames and exports into `work_dir`."""
  import keras
  import numpy as np
  import fomm_tf
  from fomm_tf.checkpoint import loading as checkpoint_loading
  from fomm_tf.export import evaluation
  from fomm_tf.export import exporter

  keras.utils.set_random_seed(SEED)
  model = fomm_tf.load_model(FLAGS.config)
  checkpoint_loading.save_weights(model, os.path.join(work_dir, "weights", "ckpt"))
  frames = evaluation.synthetic_frames(model.frame_shape, count=DISTINCT_FRAMES + 1)
  np.save(os.path.join(work_dir, "frames.npy"), frames)
  from PIL import Image
  Image.fromarray((frames[0] * 255).round().astype(np.uint8)).save(os.path.join(work_dir, "source.png"))
  from fomm_tf.export import flops
  with open(os.path.join(work_dir, "gflops.json"), "w") as f:
    json.dump(flops.animation_gflops(model), f)
  formats, quantizations = _export_formats(backend_names)
  if formats:
    start = time.time()
    exporter.export_model(model,
                          os.path.join(work_dir, "export"),
                          formats=formats,
                          quantizations=quantizations or ["float32"],
                          overwrite=True,
                          representative_frames=frames)
    print(f"exported {', '.join(formats)} {', '.join(quantizations)} in {time.time() - start:.0f} s", flush=True)


def make_backend(name, config, checkpoint, export_dir, batch_mode):
  """The backend `name`, built from the files `prepare` wrote."""
  if name in ("keras", "keras_bfloat16"):
    import fomm_tf
    from fomm_tf.inference import keras_backend
    model = fomm_tf.load_model(config, checkpoint=checkpoint, dtype="bfloat16" if name == "keras_bfloat16" else None)
    return keras_backend.KerasBackend(model)
  from fomm_tf.inference import exported_backends as backends
  if name == "saved_model":
    return backends.SavedModelBackend(export_dir)
  return backends.VARIANT_BACKENDS[_engine(name)](export_dir,
                                                  quantize=_quantization(name),
                                                  num_threads=FLAGS.num_threads,
                                                  batch_mode=batch_mode)


def run_worker(name, work_dir, batch_size, batch_mode, repeats):
  """Times `fomm_tf.animate` per further frame; then (peak RSS taken) the PSNR on the fixture model."""
  import numpy as np
  from fomm_tf.inference import pipeline
  from fomm_tf.export import evaluation
  frames = np.load(os.path.join(work_dir, "frames.npy"))
  start = time.time()
  backend = make_backend(name, FLAGS.config, os.path.join(work_dir, "weights", "ckpt"),
                         os.path.join(work_dir, "export"), batch_mode)
  load_s = time.time() - start
  driving = driving_frames(frames, batch_size + FLAGS.num_frames)
  # Warm-up pass: traces tf.functions and sizes the interpreters for both the full and the last batch.
  list(pipeline.animate(backend, frames[0], driving, batch_size=batch_size))
  best = float("inf")
  for _ in range(repeats):
    for i, _ in enumerate(pipeline.animate(backend, frames[0], driving, batch_size=batch_size)):
      if i == batch_size - 1:
        start = time.perf_counter()
    best = min(best, time.perf_counter() - start)
  row = {"ms_per_frame": 1000.0 * best / FLAGS.num_frames, "peak_rss_mb": _peak_rss_mb(), "load_s": load_s}
  if FLAGS.worker_flagfile:
    fixture = os.path.dirname(FLAGS.worker_flagfile)
    from tests import export_test_util as util
    from tests import testing
    backend = make_backend(name, FLAGS.worker_flagfile, testing.CHECKPOINT, os.path.join(fixture, "export"), batch_mode)
    test_frames = util.fixture_frames()
    out = np.stack(
        list(pipeline.animate(backend, test_frames[0], list(test_frames[1:]) + [test_frames[0]], batch_size=3)))
    row["psnr_db"] = evaluation.psnr(out, np.load(os.path.join(fixture, "reference.npy")))
  print(json.dumps(row))


def time_command(name, work_dir, batch_size, repeats):
  """ms per further frame of `python -m fomm_tf.animate` (the difference of a long and a short run)."""
  engine = _engine(name)
  args = [
      f"--backend={engine}", f"--source_image={os.path.join(work_dir, 'source.png')}", "--crop=center",
      f"--batch_size={batch_size}"
  ]
  if engine == "keras":
    args += [f"--config={FLAGS.config}", f"--checkpoint={os.path.join(work_dir, 'weights', 'ckpt')}"]
    if name == "keras_bfloat16":
      args.append("--mixed_precision=bfloat16")
  else:
    args += [f"--export_dir={os.path.join(work_dir, 'export')}", f"--quantize={_quantization(name)}"]
  # Unbuffered: the progress bar redraws with carriage returns, which a piped stderr would hold back.
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO_ROOT, "PYTHONUNBUFFERED": "1"}
  total = batch_size + FLAGS.num_frames
  video = write_driving_video(work_dir, total)
  result_video = os.path.join(work_dir, "result.mp4")
  command = [
      sys.executable, "-m", "fomm_tf.animate", *args, f"--driving_video={video}", f"--result_video={result_video}"
  ]
  best = float("inf")
  for _ in range(repeats):
    seen = _progress_times(command, env)
    if "error" in seen:
      return seen
    if batch_size not in seen or total not in seen:
      return {"error": f"the command's progress lines did not show frames {batch_size} and {total}"}
    os.remove(result_video)
    best = min(best, seen[total] - seen[batch_size])
  return {"command_ms_per_frame": 1000.0 * best / FLAGS.num_frames}


def _progress_times(command, env):
  """{frames done: time first reported} from the command's progress bar (on stderr, redrawn with carriage returns)."""
  import re
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT)
  seen, line, last_lines = {}, b"", []
  # A bar line ends with its ETA and is followed by the next line's carriage return only when the next frame
  # is written, so a line is read as soon as its ETA is complete.
  complete = re.compile(rb"(\d+)/\d+ frames .* ETA \d\d:\d\d$")
  while True:
    char = process.stderr.read(1)
    if not char:
      break
    if char in (b"\r", b"\n"):
      if line.strip() and not complete.search(line):
        last_lines = (last_lines + [line.decode(errors="replace")])[-3:]
      line = b""
      continue
    line += char
    if char.isdigit():
      match = complete.search(line)
      if match:
        seen.setdefault(int(match.group(1)), time.perf_counter())
  if process.wait() != 0:
    return {"error": (last_lines[-1:] or ["(no output)"])[0][:200]}
  return seen


def _run_in_worker(name, work_dir, batch_size, batch_mode):
  command = [
      sys.executable,
      os.path.abspath(__file__), f"--worker={name}", f"--work_dir={work_dir}", f"--worker_batch_size={batch_size}",
      f"--worker_batch_mode={batch_mode}", f"--config={FLAGS.config}", f"--repeats={FLAGS.repeats}"
  ]
  if FLAGS.psnr:
    command.append(f"--worker_flagfile={os.path.join(work_dir, 'fixture', 'small-official.flags')}")
  if FLAGS.num_threads:
    command.append(f"--num_threads={FLAGS.num_threads}")
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  result = subprocess.run(command, capture_output=True, text=True, env=env)
  if result.returncode != 0:
    tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
    return {"error": tail[0][:200]}
  return json.loads(result.stdout.strip().splitlines()[-1])


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _covers(prepared, wanted):
  """Whether an earlier preparation has everything `wanted` needs."""
  return (prepared["config"] == wanted["config"] and set(wanted["backends"]) <= set(prepared["backends"]) and
          prepared.get("psnr", False) >= wanted["psnr"])


def _check_flags():
  unknown = [b for b in FLAGS.backends if b not in BACKENDS]
  if unknown:
    raise app.UsageError(f"--backends: unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
  try:
    sizes = [int(b) for b in FLAGS.batch_sizes]
  except ValueError:
    raise app.UsageError(f"--batch_sizes must be integers, got {','.join(FLAGS.batch_sizes)}") from None
  if not sizes or min(sizes) < 1:
    raise app.UsageError(f"--batch_sizes must be >= 1, got {','.join(FLAGS.batch_sizes)}")
  if FLAGS.num_frames < 1:
    raise app.UsageError(f"--num_frames must be >= 1, got {FLAGS.num_frames}")
  if FLAGS.repeats < 1:
    raise app.UsageError(f"--repeats must be >= 1, got {FLAGS.repeats}")
  return sizes


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.worker:
    run_worker(FLAGS.worker, FLAGS.work_dir, FLAGS.worker_batch_size, FLAGS.worker_batch_mode, FLAGS.repeats)
    return
  sizes = _check_flags()
  with tempfile.TemporaryDirectory(prefix="benchmark_animate_") as scratch:
    work_dir = os.path.abspath(FLAGS.work_dir or scratch)
    os.makedirs(work_dir, exist_ok=True)
    preparation = {"config": FLAGS.config, "backends": sorted(FLAGS.backends), "psnr": FLAGS.psnr}
    marker = os.path.join(work_dir, "prepared.json")
    if not (os.path.isfile(marker) and _covers(_read_json(marker), preparation)):
      prepare(work_dir, FLAGS.backends)
      if FLAGS.psnr:
        prepare_fixture(work_dir, FLAGS.backends)
      with open(marker, "w") as f:
        json.dump(preparation, f)
    gflops = _read_json(os.path.join(work_dir, "gflops.json"))["further_frame"]
    conv_rate = conv_rate_gflops()
    header = (f"{'backend':<8} {'quantisation':<13} {'batch':>5} {'GFLOP/frame':>11} {'API ms':>7} "
              f"{'command ms':>10} {'GFLOP/s':>8} {'% conv':>6} {'peak RSS MB':>11} {'PSNR dB':>8}")
    print(f"{FLAGS.config}, random weights (seed {SEED}); {machine.describe()}; "
          f"per further frame ({FLAGS.num_frames} frames after the first batch), fastest of "
          f"{FLAGS.repeats}; 3x3 convolution ({CONV_CHANNELS} -> {CONV_CHANNELS} on {CONV_SIZE}x{CONV_SIZE}) rate in "
          f"this run: {conv_rate:.0f} GFLOP/s; "
          "PSNR against Keras float32 "
          "on the fixtures' trained model")
    print(header)
    print("-" * len(header))
    for name in FLAGS.backends:
      mode = FLAGS.batch_mode if name.startswith(EXPORTED) else "loop"
      for batch_size in sizes:
        row = _run_in_worker(name, work_dir, batch_size, mode)
        if "error" not in row and FLAGS.command:
          row.update(time_command(name, work_dir, batch_size, FLAGS.repeats))
        prefix = f"{_engine(name):<8} {_quantization(name):<13} {batch_size:>5} {gflops:>11.1f}"
        if "error" in row:
          print(f"{prefix} failed: {row['error']}", flush=True)
          continue
        rate = gflops / (row["ms_per_frame"] / 1000.0)
        command_ms = f"{row['command_ms_per_frame']:>10.0f}" if "command_ms_per_frame" in row else f"{'-':>10}"
        psnr = f"{row['psnr_db']:>8.1f}" if "psnr_db" in row else f"{'-':>8}"
        print(
            f"{prefix} {row['ms_per_frame']:>7.0f} {command_ms} {rate:>8.0f} {100 * rate / conv_rate:>6.0f} "
            f"{row['peak_rss_mb']:>11.0f} {psnr}",
            flush=True)
    print(f"3x3 convolution rate at the end of the run: {conv_rate_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
  app.run(main)

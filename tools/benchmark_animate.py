"""Benchmarks animation backends (Keras, SavedModel, TFLite variants) on one random-weight model.

  .venv/bin/python tools/benchmark_animate.py --config=vox-256 --num_frames=16 \
      --backends=keras,keras_bfloat16,saved_model,tflite_float32,tflite_float16,tflite_dynamic_int8,tflite_int8

The parent process builds the model (random weights, seed 0), saves them, exports
what the backends need and computes the Keras float32 reference frames. Each
(backend, batch size) then runs in a fresh worker process, so that its peak RSS
is its own: it animates the driving frames once to warm up, then --repeats
times timed (`fomm_tf.animation.pipeline.animate`, source preparation
included), keeping the fastest pass. The table gives the networks' GFLOPs
per driving frame (first frame and further frames, counted from the graph by
fomm_tf/models/flops.py), the time per driving frame, frames per second, the
worker's peak RSS and the PSNR of its frames against the Keras float32 frames.
On a shared machine, compare rows measured with --num_threads=1: with more
threads, other processes' load can halve the speed of any row.
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

BACKENDS = ("keras", "keras_bfloat16", "saved_model", "tflite_float32", "tflite_float16", "tflite_dynamic_int8",
            "tflite_int8")
SEED = 0

flags.DEFINE_string("config", "vox-256", "Config name or flagfile of the (random-weight) model.")
flags.DEFINE_integer("num_frames", 16, "Driving frames animated per timed pass.")
flags.DEFINE_list("backends", list(BACKENDS), f"Backends to run, from: {', '.join(BACKENDS)}.")
flags.DEFINE_list("batch_sizes", ["1", "8"], "Driving frames per backend call.")
flags.DEFINE_list("tflite_batch_modes", ["loop"], "TFLite batch handling to compare: loop, resize.")
flags.DEFINE_integer("repeats", 3, "Timed passes per measurement; the fastest counts (the machine may be shared).")
flags.DEFINE_integer("num_threads", None, "TFLite interpreter threads (default: all cores).")
flags.DEFINE_string("work_dir", None, "Where to keep the weights, export and frames (default: a temp dir); "
                    "a work dir prepared before for the same config, frames and backends is reused.")
# Worker mode (set by the parent).
flags.DEFINE_string("worker", None, "Internal: run one backend and print its measurements as JSON.")
flags.DEFINE_integer("worker_batch_size", 1, "Internal.")
flags.DEFINE_string("worker_batch_mode", "loop", "Internal.")

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
  if backend_name.startswith("tflite_"):
    return backend_name[len("tflite_"):]
  return "bfloat16" if backend_name == "keras_bfloat16" else "float32"


def gflops(work_dir):
  """(first frame, further frame) GFLOPs of the config, counted once per work dir."""
  path = os.path.join(work_dir, "gflops.json")
  if not os.path.isfile(path):
    import fomm_tf
    from fomm_tf.models import flops
    count = flops.frame_gflops(fomm_tf.load_model(FLAGS.config))
    with open(path, "w") as f:
      json.dump({"first_frame": count.first_frame, "further_frame": count.further_frame}, f)
  data = _read_json(path)
  return data["first_frame"], data["further_frame"]


def prepare(work_dir, backend_names, num_frames):
  """Writes the weights, frames, reference frames and exports into `work_dir`."""
  import keras
  import numpy as np
  import fomm_tf
  from fomm_tf.inference import pipeline
  from fomm_tf.checkpoint import loading as checkpoint_loading
  from fomm_tf.export import evaluation
  from fomm_tf.export import exporter

  keras.utils.set_random_seed(SEED)
  model = fomm_tf.load_model(FLAGS.config)
  checkpoint_loading.save_weights(model, os.path.join(work_dir, "weights", "ckpt"))
  frames = evaluation.synthetic_frames(model.frame_shape, count=num_frames + 1)
  np.save(os.path.join(work_dir, "frames.npy"), frames)
  reference = np.stack(list(pipeline.animate(model, frames[0], list(frames[1:]), batch_size=8)))
  np.save(os.path.join(work_dir, "reference.npy"), reference)
  formats = []
  if "saved_model" in backend_names:
    formats.append("saved_model")
  quantizations = [_quantization(b) for b in backend_names if b.startswith("tflite_")]
  if quantizations:
    formats.append("tflite")
  if formats:
    start = time.time()
    exporter.export_model(model, os.path.join(work_dir, "export"), formats=formats,
                          quantizations=quantizations or ["float32"], overwrite=True, representative_frames=frames)
    print(f"exported {', '.join(formats)} {', '.join(quantizations)} in {time.time() - start:.0f} s", flush=True)


def make_backend(name, work_dir, batch_mode):
  """The backend `name`, built from the files `prepare` wrote."""
  export_dir = os.path.join(work_dir, "export")
  if name in ("keras", "keras_bfloat16"):
    import fomm_tf
    from fomm_tf.inference import keras_backend
    model = fomm_tf.load_model(FLAGS.config, checkpoint=os.path.join(work_dir, "weights", "ckpt"),
                               dtype="bfloat16" if name == "keras_bfloat16" else None)
    return keras_backend.KerasBackend(model)
  from fomm_tf.inference import exported_backends as backends
  if name == "saved_model":
    return backends.SavedModelBackend(export_dir)
  return backends.TFLiteBackend(export_dir, quantize=_quantization(name), num_threads=FLAGS.num_threads,
                                batch_mode=batch_mode)


def run_worker(name, work_dir, batch_size, batch_mode, repeats):
  import numpy as np
  from fomm_tf.inference import pipeline
  from fomm_tf.export import evaluation
  frames = np.load(os.path.join(work_dir, "frames.npy"))
  reference = np.load(os.path.join(work_dir, "reference.npy"))
  start = time.time()
  backend = make_backend(name, work_dir, batch_mode)
  load_s = time.time() - start
  driving = list(frames[1:])
  # Warm-up pass: traces tf.functions and sizes the interpreters for both the full and the last batch.
  list(pipeline.animate(backend, frames[0], driving, batch_size=batch_size))
  elapsed = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    result = np.stack(list(pipeline.animate(backend, frames[0], driving, batch_size=batch_size)))
    elapsed = min(elapsed, time.perf_counter() - start)
  print(json.dumps({"ms_per_frame": 1000.0 * elapsed / len(driving), "fps": len(driving) / elapsed,
                    "peak_rss_mb": _peak_rss_mb(), "psnr_db": evaluation.psnr(result, reference),
                    "load_s": load_s}))


def _run_in_worker(name, work_dir, batch_size, batch_mode):
  command = [sys.executable, os.path.abspath(__file__), f"--worker={name}", f"--work_dir={work_dir}",
             f"--worker_batch_size={batch_size}", f"--worker_batch_mode={batch_mode}", f"--config={FLAGS.config}",
             f"--repeats={FLAGS.repeats}"]
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
  return (prepared["config"] == wanted["config"] and prepared["num_frames"] == wanted["num_frames"]
          and set(wanted["backends"]) <= set(prepared["backends"]))


def _check_flags():
  unknown = [b for b in FLAGS.backends if b not in BACKENDS]
  if unknown:
    raise app.UsageError(f"--backends: unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
  bad_modes = [m for m in FLAGS.tflite_batch_modes if m not in ("loop", "resize")]
  if bad_modes:
    raise app.UsageError(f"--tflite_batch_modes: unknown mode {bad_modes[0]!r}; choose from loop, resize")
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
    work_dir = FLAGS.work_dir or scratch
    os.makedirs(work_dir, exist_ok=True)
    preparation = {"config": FLAGS.config, "num_frames": FLAGS.num_frames, "backends": sorted(FLAGS.backends)}
    marker = os.path.join(work_dir, "prepared.json")
    if not (os.path.isfile(marker) and _covers(_read_json(marker), preparation)):
      prepare(work_dir, FLAGS.backends, FLAGS.num_frames)
      with open(marker, "w") as f:
        json.dump(preparation, f)
    first, further = gflops(work_dir)
    header = (f"{'backend':<14} {'quantisation':<13} {'batch mode':<10} {'batch':>5} {'GFLOPs 1st':>10} "
              f"{'GFLOPs/frame':>12} {'ms/frame':>9} {'fps':>7} {'peak RSS MB':>11} {'PSNR dB':>8}")
    print(f"{FLAGS.config}, random weights (seed {SEED}), {FLAGS.num_frames} driving frames, "
          f"{os.cpu_count()} CPU cores, fastest of {FLAGS.repeats} passes; PSNR against Keras float32")
    print(f"GFLOPs (graph): {first:.2f} for the first driving frame (source work included), {further:.2f} for "
          "each further one")
    print(header)
    print("-" * len(header))
    for name in FLAGS.backends:
      modes = FLAGS.tflite_batch_modes if name.startswith("tflite_") else ["-"]
      for mode in modes:
        for batch_size in sizes:
          row = _run_in_worker(name, work_dir, batch_size, mode if mode != "-" else "loop")
          backend = name.split("_")[0] if name.startswith("tflite_") else name.replace("_bfloat16", "")
          prefix = f"{backend:<14} {_quantization(name):<13} {mode:<10} {batch_size:>5} {first:>10.2f} {further:>12.2f}"
          if "error" in row:
            print(f"{prefix} failed: {row['error']}", flush=True)
          else:
            print(f"{prefix} {row['ms_per_frame']:>9.1f} {row['fps']:>7.2f} {row['peak_rss_mb']:>11.0f} "
                  f"{row['psnr_db']:>8.1f}", flush=True)


if __name__ == "__main__":
  app.run(main)

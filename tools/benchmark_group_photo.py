"""Group photos (`--faces`): time per driving frame for 1, 2 and 4 faces, batched and one call per face; peak memory.

  python tools/benchmark_group_photo.py                    # the built-in model (128 px)
  python tools/benchmark_group_photo.py --config=vox-256   # vox-256's networks (random weights: same cost)
  python tools/benchmark_group_photo.py --memory_frames=50,400

Speed: `pipeline.animate_faces` on F face crops of the astronaut, driven by
the astronaut moved under a fixed crop; "batched" is the Keras backend (one
generator call for every face), "per face" the generic Backend path (one
generator call per face, as the exported backends run it). The fastest of
--repeats passes counts (the machine may be shared).
Memory: peak resident memory (ru_maxrss) of `python -m fomm_tf.animate
--crop=face --faces=all` in a fresh process, on a real group photo (two
astronaut heads on the coffee photo), for each driving video length: the
frames are streamed, so it should not grow with the length.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top

from tools import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("config", None, "Config name or flagfile (default: the built-in model).", **kw)
  flags.DEFINE_list("faces", ["1", "2", "4"], "Face counts to time.", **kw)
  flags.DEFINE_integer("frames", 16, "Driving frames per timed pass.", **kw)
  flags.DEFINE_integer("batch_size", 8, "--batch_size (generator entries per call).", **kw)
  flags.DEFINE_integer("repeats", 3, "Timed passes per measurement; the fastest counts.", **kw)
  flags.DEFINE_list("memory_frames", ["50", "400"], "Driving video lengths for the memory runs (empty: none).", **kw)


def _speed_rows(flag_values):
  import numpy as np  # pylint: disable=import-outside-toplevel
  import skimage.data  # pylint: disable=import-outside-toplevel
  from fomm_tf import builtin  # pylint: disable=import-outside-toplevel
  from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
  from fomm_tf.config import flagfiles  # pylint: disable=import-outside-toplevel
  from fomm_tf.faces import crop  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import backend as backend_lib  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import keras_backend  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import pipeline  # pylint: disable=import-outside-toplevel

  class PerFace(keras_backend.KerasBackend):
    """The same networks through the generic Backend path: one generator call per face."""
    prepare_sources = backend_lib.Backend.prepare_sources
    generate_sources = backend_lib.Backend.generate_sources

  if flag_values.config:
    model = loading.load_model(flagfiles.load_config(flag_values.config))
  else:
    model = builtin.load_builtin_model()
  size = model.frame_shape[0]
  photo = skimage.data.astronaut()
  driving = [photo[32 + t % 9:480 + t % 9, 32:480] for t in range(flag_values.frames)]
  rows = []
  for count in (int(c) for c in flag_values.faces):
    sources = np.stack([crop.crop_square(photo, (130 + 4 * i, 40, 220), size)[0] for i in range(count)])
    for name, backend in (("batched", keras_backend.KerasBackend(model)), ("per face", PerFace(model))):
      best = float("inf")
      for _ in range(flag_values.repeats + 1):  # The first pass traces the graphs.
        start = time.perf_counter()
        for _ in pipeline.animate_faces(backend, sources, driving, batch_size=flag_values.batch_size):
          pass
        best = min(best, time.perf_counter() - start)
      rows.append((count, name, 1000.0 * best / len(driving)))
  return size, rows


def _memory_rows(flag_values, work):
  import numpy as np  # pylint: disable=import-outside-toplevel
  import skimage.data  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import media  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import video_writer  # pylint: disable=import-outside-toplevel
  head = skimage.data.astronaut().astype(np.float32)[40:260, 110:330] / 255
  canvas = media.resize_frame(skimage.data.coffee().astype(np.float32) / 255, (288, 512))
  canvas[20:210, 4:194] = media.resize_frame(head, (190, 190))
  canvas[20:152, 224:356] = media.resize_frame(head, (132, 132))
  group = os.path.join(work, "group.png")
  Image.fromarray((canvas * 255 + 0.5).astype(np.uint8)).save(group)
  photo = skimage.data.astronaut()
  rows = []
  for count in (int(c) for c in flag_values.memory_frames):
    video = os.path.join(work, f"driving-{count}.mp4")
    with video_writer.VideoWriter(video, 25) as writer:
      for t in range(count):
        writer.write(photo[32 + t % 9:288 + t % 9, 32:288])
    cmd = [
        sys.executable, "-m", "fomm_tf.animate", "--crop=face", "--faces=all", f"--source_image={group}",
        f"--driving_video={video}", f"--result_video={os.path.join(work, f'result-{count}.mp4')}",
        f"--batch_size={flag_values.batch_size}"
    ]
    if flag_values.config:
      cmd.append(f"--config={flag_values.config}")
    script = ("import resource, subprocess, sys, time; t = time.time(); "
              "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.time() - t)")
    out = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True, text=True, check=True, cwd=REPO)
    mb, seconds = out.stdout.split()
    rows.append((count, float(mb), float(seconds)))
  return rows


def run(flag_values):
  size, rows = _speed_rows(flag_values)
  print(f"machine: {machine.describe()}; model {flag_values.config or 'built-in'} ({size} px), "
        f"batch_size {flag_values.batch_size}, {flag_values.frames} driving frames, best of {flag_values.repeats}")
  print("| faces | generator calls | ms per driving frame |")
  print("|---|---|---|")
  for count, name, ms in rows:
    print(f"| {count} | {name} | {ms:.1f} |")
  if flag_values.memory_frames:
    rows = _memory_rows(flag_values, tempfile.mkdtemp(prefix="benchmark-group-photo-"))
    print("\n| driving frames | peak RSS MB | seconds |")
    print("|---|---|---|")
    for count, mb, seconds in rows:
      print(f"| {count} | {mb:.0f} | {seconds:.1f} |")


def main():
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  flag_values(sys.argv)
  run(flag_values)


if __name__ == "__main__":
  main()

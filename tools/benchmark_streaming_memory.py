"""Peak memory of `python -m fomm_tf.animate` for a short and a long driving video.

  python tools/benchmark_streaming_memory.py [--frames=100,2000] [--size=128]

Each run is a separate process animating a synthetic driving video with the
built-in model; the table shows its peak resident memory (ru_maxrss). Frames
are streamed (decode -> animate in batches -> encode), so the peak should not
grow with the video's length.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list("frames", ["100", "2000"], "Driving video lengths to compare.")
flags.DEFINE_integer("batch_size", 8, "Animation batch size.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_driving(path, num_frames):
  from fomm_tf import builtin
  from fomm_tf.io import media
  from fomm_tf.io import video_writer
  sample = media.read_video_frames(builtin.SAMPLE_DRIVING)
  cycle = sample + sample[::-1]
  with video_writer.VideoWriter(path, 25) as writer:
    for i in range(num_frames):
      writer.write(cycle[i % len(cycle)])


def peak_rss_mb(cmd):
  """Runs cmd in a fresh child and returns (peak RSS MB, seconds) of that child alone."""
  script = ("import resource, subprocess, sys, time; t = time.time(); "
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.time() - t)")
  out = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True, text=True, check=True, cwd=REPO)
  mb, seconds = out.stdout.split()
  return float(mb), float(seconds)


def main(argv):
  del argv
  from fomm_tf import builtin
  work = tempfile.mkdtemp(prefix="bench-memory-")
  rows = []
  for count in (int(f) for f in FLAGS.frames):
    video = os.path.join(work, f"driving-{count}.mp4")
    make_driving(video, count)
    cmd = [
        sys.executable, "-m", "fomm_tf.animate", f"--source_image={builtin.SAMPLE_SOURCE}", f"--driving_video={video}",
        f"--result_video={os.path.join(work, f'result-{count}.mp4')}", f"--batch_size={FLAGS.batch_size}"
    ]
    mb, seconds = peak_rss_mb(cmd)
    rows.append((count, mb, seconds))
  print(f"\n{'frames':>7s} {'peak RSS MB':>12s} {'seconds':>8s} {'fps':>6s}")
  for count, mb, seconds in rows:
    print(f"{count:7d} {mb:12.1f} {seconds:8.1f} {count / seconds:6.1f}")
  base = rows[0][1]
  for count, mb, _ in rows[1:]:
    print(f"peak memory at {count} frames is {100 * (mb / base - 1):+.1f}% of the {rows[0][0]}-frame run")


if __name__ == "__main__":
  app.run(main)

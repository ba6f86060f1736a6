"""The web app under load: jobs per minute and p95 wait for 1, 4 and 24 gradio_client clients at once.

  python tools/benchmark_app_load.py [--clients=1,4,24] [--jobs_per_client=3] [--frames=8] [--concurrency=1]

Starts `python -m fomm_tf.app` (the built-in model) in a subprocess, and runs each number of clients, every
client submitting `jobs_per_client` animations of the built-in sample (`frames` driving frames) one after the
other; a job refused because the queue is full (--max_queue) is submitted again after a second. Prints one row
per client count: jobs finished, refusals, jobs per minute, median and p95 wait (submission to result), and the
server's peak RSS, with the machine it ran on. tests/app_load_test.py uses the same helpers.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=wrong-import-position
from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from tools import machine  # pylint: disable=wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL_LINE = re.compile(r"fomm-tf web app on (http://\S+)")


class Server:
  """`python -m fomm_tf.app` in a subprocess with its own TMPDIR (so its work folder can be inspected)."""

  def __init__(self, *args, timeout=180):
    self.tmp = tempfile.mkdtemp(prefix="app_load_")
    env = dict(os.environ, TMPDIR=self.tmp, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    self.process = subprocess.Popen([sys.executable, "-m", "fomm_tf.app", "--port=0", *args],
                                    cwd=REPO_ROOT,
                                    env=env,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT,
                                    text=True)
    self.output = []
    self.url = None
    ready = threading.Event()

    def read():
      for line in self.process.stdout:
        self.output.append(line)
        match = URL_LINE.search(line)
        if match:
          self.url = match.group(1)
          ready.set()
      ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or self.url is None:
      self.close()
      raise RuntimeError("the app did not start:\n" + "".join(self.output[-40:]))

  def peak_rss_mb(self):
    """The server's peak resident memory so far (VmHWM), in MB."""
    with open(f"/proc/{self.process.pid}/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")

  def work_folders(self):
    """The server's work folder(s) (fomm_tf.app.sessions.WorkFolders), in its TMPDIR."""
    return [os.path.join(self.tmp, n) for n in os.listdir(self.tmp) if n.startswith("fomm-tf-app-")]

  def work_files(self):
    """Every file in the server's work folder(s) (not TensorFlow's own temp files beside it)."""
    return [os.path.join(d, n) for top in self.work_folders() for d, _, names in os.walk(top) for n in names]

  def close(self):
    if self.process.poll() is None:
      self.process.terminate()
      try:
        self.process.wait(30)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    shutil.rmtree(self.tmp, ignore_errors=True)


def sample_media(directory, frames):
  """The built-in sample photo and its first `frames` driving frames as an .mp4 in `directory`."""
  from fomm_tf import builtin  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import media  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import video_writer  # pylint: disable=import-outside-toplevel
  path = os.path.join(directory, "driving.mp4")
  with video_writer.VideoWriter(path, fps=25) as writer:
    for frame in media.read_video_frames(builtin.SAMPLE_DRIVING, max_frames=frames):
      writer.write(frame)
  return builtin.SAMPLE_SOURCE, path


def submit(client, source, driving):
  """Submits one animation; returns the gradio_client Job."""
  from gradio_client import handle_file  # pylint: disable=import-outside-toplevel
  return client.submit(handle_file(source), handle_file(driving), api_name="/animate")


def is_busy(error):
  """Whether `error` is the queue's refusal (queue full: try again later)."""
  return "Queue is full" in str(error) or type(error).__name__ == "QueueError"


def run_clients(url, num_clients, jobs_per_client, source, driving, download_dir):
  """Each client runs its jobs in turn (retrying refusals after 1 s); returns (waits, refusals, seconds)."""
  from gradio_client import Client  # pylint: disable=import-outside-toplevel
  waits, refusals, lock = [], [0], threading.Lock()
  clients = [Client(url, verbose=False, download_files=download_dir) for _ in range(num_clients)]
  barrier = threading.Barrier(num_clients)

  def work(client):
    barrier.wait()
    for _ in range(jobs_per_client):
      while True:
        start = time.monotonic()
        try:
          submit(client, source, driving).result(timeout=600)
        except Exception as error:  # pylint: disable=broad-except
          if not is_busy(error):
            raise
          with lock:
            refusals[0] += 1
          time.sleep(1.0)
          continue
        with lock:
          waits.append(time.monotonic() - start)
        break

  start = time.monotonic()
  threads = [threading.Thread(target=work, args=(c,)) for c in clients]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  return waits, refusals[0], time.monotonic() - start


FLAGS = flags.FLAGS
flags.DEFINE_list("clients", ["1", "4", "24"], "Numbers of clients at once.")
flags.DEFINE_integer("jobs_per_client", 3, "Animations each client runs, one after the other.")
flags.DEFINE_integer("frames", 8, "Driving frames per animation.")
flags.DEFINE_integer("concurrency", 1, "The server's --concurrency.")
flags.DEFINE_integer("max_queue", 8, "The server's --max_queue.")


def main(argv):
  del argv
  import logging  # pylint: disable=import-outside-toplevel
  logging.getLogger("httpx").setLevel(logging.WARNING)  # One line per request of every client: noise here.
  with tempfile.TemporaryDirectory(prefix="benchmark_app_load_") as scratch:
    source, driving = sample_media(scratch, FLAGS.frames)
    server = Server(f"--concurrency={FLAGS.concurrency}", f"--max_queue={FLAGS.max_queue}")
    try:
      run_clients(server.url, 1, 1, source, driving, scratch)  # Warm-up: the model is loaded on first use.
      rows = []
      for count in [int(c) for c in FLAGS.clients]:
        waits, refusals, seconds = run_clients(server.url, count, FLAGS.jobs_per_client, source, driving, scratch)
        rows.append((count, len(waits), refusals, 60 * len(waits) / seconds, np.median(waits), np.percentile(waits, 95),
                     server.peak_rss_mb()))
    finally:
      server.close()
  print(f"machine: {machine.describe()}")
  print(f"built-in model, {FLAGS.frames} driving frames per job, --concurrency={FLAGS.concurrency} "
        f"--max_queue={FLAGS.max_queue}, {FLAGS.jobs_per_client} jobs per client")
  print(f"{'clients':>7} {'jobs':>5} {'refused':>7} {'jobs/min':>8} {'p50 wait s':>10} {'p95 wait s':>10} "
        f"{'peak RSS MB':>11}")
  for count, jobs, refusals, rate, p50, p95, rss in rows:
    print(f"{count:>7} {jobs:>5} {refusals:>7} {rate:>8.1f} {p50:>10.2f} {p95:>10.2f} {rss:>11.0f}")


if __name__ == "__main__":
  app.run(main)

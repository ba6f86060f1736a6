"""The web app under load: two dozen gradio_client clients at once, three of them leaving mid-job, one mid-upload.

The server is `python -m fomm_tf.app` in a subprocess (its own TMPDIR, so its work folder and peak RSS can be
read) with --concurrency=2 --max_queue=8 and a short --keep_files_minutes/--sweep_seconds. Checked: every job
the queue accepted returns its animation, the others are refused at submission as "queue is full" (none is lost
or left waiting), memory stays bounded, and the work folder holds no file once every client has left and the
sweep has run. Speed numbers are in tools/benchmark_app_load.py, not here.
"""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

from absl.testing import absltest

from fomm_tf.io import media
from tests import testing
from tools import benchmark_app_load as load

MAX_QUEUE = 8
KEEP_SECONDS = 12
FRAMES = 6
# A client that submits a long job and then just goes away (killed, no cancel): what a closed laptop does.
LEAVER = """
import sys
from gradio_client import Client, handle_file
client = Client(sys.argv[1], verbose=False)
client.submit(handle_file(sys.argv[2]), handle_file(sys.argv[3]), api_name="/animate")
print("submitted", flush=True)
sys.stdin.read()
"""


def _cut_upload(url):
  """Starts a 1 MB multipart upload and hangs up half way."""
  parts = urllib.parse.urlsplit(url)
  boundary = "cutcutcut"
  head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"half.mp4\"\r\n"
          "Content-Type: video/mp4\r\n\r\n").encode()
  with socket.create_connection((parts.hostname, parts.port)) as conn:
    conn.sendall((f"POST /gradio_api/upload HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {len(head) + (1 << 20)}\r\n\r\n").encode() + head + b"\0" * (1 << 19))
    time.sleep(0.5)


class AppLoadTest(testing.TestMixin, absltest.TestCase):

  def test_two_dozen_clients_some_leaving(self):
    media_dir = self.tmp_dir()
    source, driving = load.sample_media(media_dir, FRAMES)
    long_dir = os.path.join(media_dir, "long")
    os.makedirs(long_dir)
    _, long_driving = load.sample_media(long_dir, 48)
    server = load.Server("--concurrency=2", f"--max_queue={MAX_QUEUE}", "--max_video_seconds=10",
                         f"--keep_files_minutes={KEEP_SECONDS / 60}", "--sweep_seconds=1")
    self.addCleanup(server.close)

    # Three clients leave mid-job, one mid-upload.
    leavers = [
        subprocess.Popen([sys.executable, "-c", LEAVER, server.url, source, long_driving],
                         stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE,
                         text=True) for _ in range(3)
    ]
    for leaver in leavers:
      self.addCleanup(leaver.kill)
      self.assertEqual(leaver.stdout.readline().strip(), "submitted")
    deadline = time.time() + 120
    while not any("/job-" in path for path in server.work_files()) and time.time() < deadline:
      time.sleep(0.1)
    self.assertTrue(any("/job-" in path for path in server.work_files()), "no job started")
    for leaver in leavers:
      leaver.kill()
      leaver.wait()
    _cut_upload(server.url)

    # 21 clients submit at once.
    outcomes = []
    lock = threading.Lock()
    download_dir = self.tmp_dir()
    from gradio_client import Client  # pylint: disable=import-outside-toplevel
    clients = [Client(server.url, verbose=False, download_files=download_dir) for _ in range(21)]
    barrier = threading.Barrier(len(clients))

    def run(client):
      barrier.wait()
      try:
        outcome = ("done", load.submit(client, source, driving).result(timeout=300))
      except Exception as error:  # pylint: disable=broad-except
        outcome = ("busy", str(error)) if load.is_busy(error) else ("failed", repr(error))
      with lock:
        outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()

    kinds = [kind for kind, _ in outcomes]
    self.assertLen(outcomes, 21, "a client got no answer")
    self.assertNotIn("failed", kinds, [o for o in outcomes if o[0] == "failed"])
    done = [value for kind, value in outcomes if kind == "done"]
    self.assertGreater(kinds.count("busy"), 0, "24 clients and a queue of 8: someone must be turned away")
    self.assertGreaterEqual(len(done), MAX_QUEUE, "the queue took fewer jobs than it holds")
    for video, status in done:
      frames = media.read_video_frames(video)
      self.assertLen(frames, FRAMES)
      self.assertEqual(frames[0].shape, (128, 128, 3))
      self.assertIn(f"{FRAMES} frames", status)
    for _, message in (o for o in outcomes if o[0] == "busy"):
      self.assertRegex(message, r"(?i)queue is full.*try again")
    peak = server.peak_rss_mb()
    print(f"load test: {len(done)} done, {kinds.count('busy')} refused, server peak RSS {peak:.0f} MB")
    self.assertLess(peak, 3000)

    # Everyone has left: after the keep time and a sweep, the work folder holds nothing.
    deadline = time.time() + KEEP_SECONDS + 20
    while server.work_files() and time.time() < deadline:
      time.sleep(0.5)
    self.assertLen(server.work_folders(), 1)
    self.assertEqual(server.work_files(), [])
    self.assertIsNone(server.process.poll(), "the server died")


if __name__ == "__main__":
  absltest.main()

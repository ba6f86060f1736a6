"""The web app in a real browser (Debian's Chromium driven by Playwright) and through gradio_client.

One server per class (the built-in model, on a free localhost port) and one
headless Chromium for the module; each test has its own browser context. The
browser runs with the network closed to it (every request outside 127.0.0.1 is
recorded and fails the test), and a fake webcam fed from a real video (y4m).
A screenshot of the finished page is written to $FOMM_TEST_ARTIFACTS (default:
a temp folder) as app_result.png.
"""

import os
import shutil
import socket
import tempfile
import threading
import time

import numpy as np
from absl import flags
from absl.testing import absltest

from fomm_tf import builtin
from fomm_tf.app import models as app_models
from fomm_tf.io import media
from tests import testing

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.environ.get("FOMM_TEST_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "fomm-tf-test-artifacts")


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_app(**limits):
  """(App, url) serving the built-in model; limits override fomm_tf.app.server.Limits."""
  from fomm_tf.app import cli  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  cli.define_flags(flag_values)
  flag_values(["app"] + [f"--{k}={v}" for k, v in limits.items()])
  app, folders = cli.build(flag_values)
  folders.start()
  port = free_port()
  app.launch("127.0.0.1", port)
  return app, folders, f"http://127.0.0.1:{port}"


def sample_media(directory, frames=8):
  """The built-in sample's photo and the first `frames` frames of its video, as real files."""
  video = media.read_video_frames(builtin.SAMPLE_DRIVING, max_frames=frames)
  driving = testing.write_video(os.path.join(directory, "driving.mp4"),
                                [(f * 255 + 0.5).astype(np.uint8) for f in video],
                                fps=25)
  return builtin.SAMPLE_SOURCE, driving


class AppTestCase(testing.TestCase):
  limits = {}

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.app, cls.folders, cls.url = start_app(**cls.limits)
    cls.media_dir = testing.make_class_dir("app_test_media_")
    cls.source, cls.driving = sample_media(cls.media_dir)

  @classmethod
  def tearDownClass(cls):
    cls.app.close()
    cls.folders.close()
    shutil.rmtree(cls.media_dir)
    super().tearDownClass()

  def client(self):
    from gradio_client import Client  # pylint: disable=import-outside-toplevel
    return Client(self.url, verbose=False, download_files=self.tmp_dir())

  def assertNoLeftovers(self):
    deadline = time.time() + 10
    while self.folders.leftovers() and time.time() < deadline:
      time.sleep(0.2)
    self.assertEqual(self.folders.leftovers(), [])


class BrowserTest(AppTestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel
    frames = [(f * 255 + 0.5).astype(np.uint8) for f in media.read_video_frames(builtin.SAMPLE_DRIVING)]
    cls.y4m = testing.write_y4m(os.path.join(cls.media_dir, "camera.y4m"), frames * 4, fps=25)
    cls.playwright = sync_playwright().start()
    cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM,
                                                 headless=True,
                                                 args=[
                                                     "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                     "--disable-component-update", "--disable-sync", "--no-first-run",
                                                     "--use-fake-device-for-media-stream",
                                                     "--use-fake-ui-for-media-stream",
                                                     f"--use-file-for-fake-video-capture={cls.y4m}"
                                                 ])

  @classmethod
  def tearDownClass(cls):
    cls.browser.close()
    cls.playwright.stop()
    super().tearDownClass()

  def page(self):
    context = self.browser.new_context(accept_downloads=True, permissions=["camera"])
    self.addCleanup(context.close)
    page = context.new_page()
    self.outside = []
    page.on(
        "request", lambda r: None
        if r.url.startswith(("http://127.0.0.1", "data:", "blob:", "ws://127.0.0.1")) else self.outside.append(r.url))
    page.goto(self.url)
    page.wait_for_selector("#run-btn", timeout=60000)
    return page

  def test_animate_in_the_browser_download_the_result_and_look_at_it(self):
    page = self.page()
    page.set_input_files("#source input[type=file]", self.source)
    page.set_input_files("#driving input[type=file]", self.driving)
    page.locator("#driving video").wait_for(timeout=30000)
    page.click("#run-btn")
    page.wait_for_function(
        "document.querySelector('#result video') && "
        "document.querySelector('#result video').readyState >= 2",
        timeout=120000)
    self.assertIn("8 frames", page.locator("#status").inner_text())
    with page.expect_download() as download:
      page.locator("#result [data-testid=download-link]").click()
    path = os.path.join(self.tmp_dir(), "downloaded.mp4")
    download.value.save_as(path)
    frames = media.read_video_frames(path)
    self.assertLen(frames, 8)
    self.assertEqual(frames[0].shape, (128, 128, 3))
    # The animation follows the driving video: it is not a still copy of the source.
    self.assertGreater(np.abs(frames[-1] - frames[0]).mean(), 0.003)
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "app_result.png"), full_page=True)
    self.assertEqual(self.outside, [], "the page asked for something outside this machine")
    self.assertNoLeftovers()

  def test_a_broken_video_shows_one_line_and_the_server_keeps_serving(self):
    page = self.page()
    broken = os.path.join(self.tmp_dir(), "broken.mp4")
    with open(broken, "wb") as f:
      f.write(b"\x00\x00\x00\x18ftypmp42 definitely not a video" * 20)
    page.set_input_files("#source input[type=file]", self.source)
    page.set_input_files("#driving input[type=file]", broken)
    page.click("#run-btn")
    # (The browser's own "Video not playable" toast may come first; the server's names the file.)
    toast = page.locator("[data-testid=toast-body].error [data-testid=toast-text]", has_text="broken.mp4")
    toast.first.wait_for(timeout=60000)
    message = toast.first.inner_text().strip()
    self.assertRegex(message, r"^broken\.mp4: cannot open as a video: ")
    self.assertNotIn("\n", message)
    self.assertNotIn(self.folders.root, message)
    self.assertNoLeftovers()
    # The server still animates.
    video, _ = self.client().predict(testing.gradio_file(self.source),
                                     testing.gradio_file(self.driving),
                                     api_name="/animate")
    self.assertLen(media.read_video_frames(video), 8)

  def test_live_tab_streams_the_fake_webcam_and_animated_frames_come_back(self):
    page = self.page()
    page.set_input_files("#source input[type=file]", self.source)
    page.get_by_role("tab", name="Live").click()
    page.get_by_text("Click to Access Webcam").click()
    page.wait_for_function(
        "document.querySelector('#cam [data-testid=webcam-video]') && "
        "document.querySelector('#cam [data-testid=webcam-video]').videoWidth > 0",
        timeout=30000)
    page.locator("#cam button[aria-label='capture photo']").click()
    sources = set()
    deadline = time.time() + 60
    while len(sources) < 6 and time.time() < deadline:
      src = page.evaluate("(document.querySelector('#live-out img') || {}).src || ''")
      if src:
        sources.add(src)
      time.sleep(0.2)
    self.assertGreaterEqual(len(sources), 6, "animated frames did not come back")
    self.assertRegex(page.locator("#live-stats").inner_text(), r"\d+\.\d fps \| processing \d+ ms")
    self.assertEqual(self.outside, [])


class ApiTest(AppTestCase):
  limits = {"concurrency": 2, "max_video_seconds": 2}

  def test_animate_by_name_with_options(self):
    video, status = self.client().predict(testing.gradio_file(self.source),
                                          testing.gradio_file(self.driving),
                                          relative=False,
                                          smooth=3,
                                          visualize=True,
                                          api_name="/animate")
    frames = media.read_video_frames(video)
    self.assertLen(frames, 8)
    self.assertEqual(frames[0].shape, (128, 3 * 128, 3))
    self.assertIn("8 frames", status)
    # The lite built-in model is on the menu too.
    video, status = self.client().predict(testing.gradio_file(self.source),
                                          testing.gradio_file(self.driving),
                                          model=app_models.BUILTIN_LITE,
                                          api_name="/animate")
    self.assertLen(media.read_video_frames(video), 8)
    self.assertIn("8 frames", status)
    self.assertNoLeftovers()

  def test_a_group_photo_preview_offers_its_faces_and_animate_pastes_back_those_ticked(self):
    from tests import face_animation_test  # pylint: disable=import-outside-toplevel
    from tests import group_photo_test  # pylint: disable=import-outside-toplevel
    photo = testing.write_image(os.path.join(self.tmp_dir(), "group.png"), group_photo_test.group_photo())
    driving = testing.write_video(os.path.join(self.tmp_dir(), "face.mp4"),
                                  face_animation_test.moving_portrait(6, side=256),
                                  fps=25)
    # The event itself (what "Preview crop" runs): the preview, and the faces big enough to animate as the hint.
    picture, faces = self.app.preview_crop(photo, driving, "face", None)
    self.assertEqual(picture.shape[0], 256)
    self.assertTrue(faces["placeholder"].startswith("faces 0, 1 (numbered on the preview)"), faces)
    video, status = self.client().predict(testing.gradio_file(photo),
                                          testing.gradio_file(driving),
                                          crop="face",
                                          faces="0, 1",
                                          api_name="/animate")
    frames = media.read_video_frames(video)
    self.assertEqual((len(frames),) + frames[0].shape, (6, 288, 512, 3))
    self.assertIn("6 frames", status)
    self.assertNoLeftovers()

  def test_two_clients_at_once_both_get_their_result(self):
    starts = {}

    def run(name):
      job = self.client().submit(testing.gradio_file(self.source),
                                 testing.gradio_file(self.driving),
                                 api_name="/animate")
      starts[name] = job.result(timeout=300)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    self.assertEqual(sorted(starts), ["a", "b"])
    for video, _ in starts.values():
      self.assertLen(media.read_video_frames(video), 8)
    self.assertNoLeftovers()

  def test_a_cancelled_job_stops_and_leaves_nothing(self):
    long_video = os.path.join(self.tmp_dir(), "long.mp4")
    frames = [(f * 255 + 0.5).astype(np.uint8) for f in media.read_video_frames(builtin.SAMPLE_DRIVING)]
    testing.write_video(long_video, frames * 4, fps=64)  # 128 frames: 2 s, the most this server accepts.
    results_before = self.folders.results()
    job = self.client().submit(testing.gradio_file(self.source), testing.gradio_file(long_video), api_name="/animate")
    deadline = time.time() + 60
    while not self.folders.leftovers() and time.time() < deadline:
      time.sleep(0.05)  # Until the job has started writing.
    self.assertNotEmpty(self.folders.leftovers())
    self.assertTrue(job.cancel())
    self.assertNoLeftovers()
    self.assertEqual(self.folders.results(), results_before, "the cancelled job ran to its end")

  def test_limits_and_bad_uploads_are_one_line_errors(self):
    from gradio_client.exceptions import AppError  # pylint: disable=import-outside-toplevel
    too_long = os.path.join(self.tmp_dir(), "too_long.mp4")
    frames = [(f * 255 + 0.5).astype(np.uint8) for f in media.read_video_frames(builtin.SAMPLE_DRIVING)]
    testing.write_video(too_long, frames * 2, fps=25)  # 2.56 s
    empty = os.path.join(self.tmp_dir(), "empty.mp4")
    open(empty, "wb").close()
    not_an_image = os.path.join(self.tmp_dir(), "photo.png")
    with open(not_an_image, "wb") as f:
      f.write(b"\x89PNG\r\n\x1a\n" + b"cut short")
    cases = [((self.source, too_long), r"lasts 3 s, more than the 2 s this server accepts"),
             ((not_an_image, self.driving), r"^photo\.png: cannot read image"),
             ((self.source, empty), r"empty\.mp4: cannot open as a video")]
    for (source, driving), pattern in cases:
      with self.assertRaisesRegex(AppError, pattern):
        self.client().predict(testing.gradio_file(source), testing.gradio_file(driving), api_name="/animate")
    self.assertNoLeftovers()


class AppFlagsTest(testing.TestCase):

  def test_bad_queue_and_sweep_flags_are_one_line(self):
    from fomm_tf.app import cli  # pylint: disable=import-outside-toplevel
    for flag, pattern in [("--max_queue=0", r"--max_queue must be >= 1, got 0"),
                          ("--sweep_seconds=0", r"--sweep_seconds must be > 0"),
                          ("--keep_files_minutes=-1", r"--keep_files_minutes must be > 0")]:
      self.assertErrorLine(testing.run_cli(cli, flag), pattern)


class WorkFoldersTest(testing.TestCase):

  def test_a_job_folder_goes_with_its_job_and_a_kept_result_goes_by_age(self):
    from fomm_tf.app import sessions  # pylint: disable=import-outside-toplevel
    folders = sessions.WorkFolders(root=os.path.join(self.tmp_dir(), "app"))
    self.addCleanup(folders.close)
    with self.assertRaises(ZeroDivisionError):
      with folders.job_dir("tab-1") as folder:
        open(os.path.join(folder, "partial.mp4"), "wb").close()
        raise ZeroDivisionError
    self.assertEqual(folders.leftovers(), [])
    with folders.job_dir("tab-1") as folder:
      path = os.path.join(folder, "animation.mp4")
      with open(path, "wb") as f:
        f.write(b"result")
      kept = folders.keep(path, "tab-1")
    self.assertEqual((folders.leftovers(), folders.results()), ([], [kept]))
    self.assertEqual(os.path.basename(kept), "animation.mp4")
    folders.sweep(max_age=3600)
    self.assertEqual(folders.results(), [kept])
    os.utime(kept, (time.time() - 7200,) * 2)
    folders.sweep(max_age=3600)
    self.assertEqual(folders.results(), [])
    # A session name from the client never leads outside the sessions folder.
    self.assertEqual(os.path.dirname(folders.session_dir("../x")), folders.sessions)

  def test_uploads_wait_while_busy_and_empty_session_folders_go(self):
    from fomm_tf.app import sessions  # pylint: disable=import-outside-toplevel
    folders = sessions.WorkFolders(root=os.path.join(self.tmp_dir(), "app"))
    self.addCleanup(folders.close)
    with folders.job_dir("tab-2") as folder:
      self.assertTrue(os.path.isdir(os.path.join(folders.sessions, "tab-2")))
    self.assertFalse(os.path.exists(folder))
    self.assertEqual(os.listdir(folders.sessions), [], "the session folder outlived its only job")
    upload = os.path.join(folders.gradio, "abc", "photo.png")
    os.makedirs(os.path.dirname(upload))
    with open(upload, "wb") as f:
      f.write(b"upload")
    os.utime(upload, (time.time() - 7200,) * 2)
    busy = [True]
    folders.set_busy_check(lambda: busy[0])
    folders.sweep(max_age=3600)
    self.assertTrue(os.path.exists(upload), "an upload was swept while a job may still wait for it")
    busy[0] = False
    folders.sweep(max_age=3600)
    self.assertEqual(folders.files(), [])


if __name__ == "__main__":
  absltest.main()

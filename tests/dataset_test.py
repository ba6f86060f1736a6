"""Tests for fomm_tf/data/dataset.py and video_index.py on real media files.

Most videos here are "coded": every frame is one flat colour whose red
channel says which video it is and whose green channel says which frame, so
a decoded training sample tells where it came from even after lossy mp4
compression and resizing (both keep a flat colour flat).
"""

import os

from absl.testing import absltest
import av
import numpy as np
from PIL import Image

import fomm_tf
from fomm_tf.data import dataset
from fomm_tf.errors import DatasetError
from fomm_tf.errors import MediaError
from fomm_tf.data import synthetic
from fomm_tf.data import video_index
from tests import testing

_STEP = 20  # 8-bit code step; mp4 round trips stay well within +-_STEP/2.


def _coded_frames(video_code, num_frames, height, width):
  frames = np.zeros((num_frames, height, width, 3), np.uint8)
  frames[..., 0] = video_code * _STEP
  frames[..., 1] = np.arange(num_frames)[:, None, None] * _STEP
  frames[..., 2] = 128
  return frames


def _decode_codes(frame):
  """(video code, frame code) of a float frame from `_coded_frames`."""
  mean = frame.reshape(-1, 3).mean(axis=0) * 255.0
  return int(round(mean[0] / _STEP)), int(round(mean[1] / _STEP))


def _write_mp4(path, frames):
  with av.open(path, mode="w") as container:
    stream = container.add_stream("libx264", rate=25, options={"crf": "1"})
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    for frame in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode(None))


def _write_gif(path, frames):
  images = [Image.fromarray(frame) for frame in frames]
  images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)


def _write_folder(path, frames):
  os.mkdir(path)
  for index, frame in enumerate(frames):
    Image.fromarray(frame).save(os.path.join(path, f"{index:03d}.png"))


def _write_strip(path, frames):
  Image.fromarray(np.concatenate(list(frames), axis=1)).save(path)


_WRITERS = {".mp4": _write_mp4, ".gif": _write_gif, "": _write_folder, ".png": _write_strip}


def _write_coded(folder, name, video_code, num_frames=6, size=32):
  """Writes a coded video; the format follows the extension of `name`."""
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, name)
  extension = os.path.splitext(name)[1] if "." in name else ""
  _WRITERS[extension](path, _coded_frames(video_code, num_frames, size, size))
  return path


def _config(**overrides):
  values = dict(frame_shape=[32, 32, 3], num_repeats=1, id_sampling=False, flip_time=False, flip_horizontal=False)
  values.update(overrides)
  return fomm_tf.load_config(None, **values)


def _collect(ds):
  """All batches of a dataset as numpy dicts."""
  return [{key: value.numpy() for key, value in batch.items()} for batch in ds]


def _concat(batches, key):
  return np.concatenate([batch[key] for batch in batches])


class FindVideosTest(testing.TestCase):

  def test_split_folders_and_side_files(self):
    root = self.create_tempdir().full_path
    train = os.path.join(root, "train")
    test = os.path.join(root, "test")
    _write_coded(train, "a#1.mp4", 1)
    _write_coded(train, "b.gif", 2)
    _write_coded(train, "c#x", 3)
    _write_coded(train, "d.png", 4)
    _write_coded(test, "e.mp4", 5)
    for side in ("a#1.keypoints.npy", "dataset.json", "notes.txt", ".hidden.mp4"):
      with open(os.path.join(train, side), "w") as handle:
        handle.write("x")
    os.mkdir(os.path.join(train, ".ipynb_checkpoints"))
    self.assertEqual(video_index.find_videos(root, "train"),
                     [os.path.join(train, n) for n in ("a#1.mp4", "b.gif", "c#x", "d.png")])
    self.assertEqual(video_index.find_videos(root, "test"), [os.path.join(test, "e.mp4")])

  def test_missing_split_folder_and_bad_arguments(self):
    root = self.create_tempdir().full_path
    os.mkdir(os.path.join(root, "train"))
    with self.assertRaisesRegex(DatasetError, "no test/ folder"):
      video_index.find_videos(root, "test")
    with self.assertRaisesRegex(DatasetError, "split must be"):
      video_index.find_videos(root, "val")
    with self.assertRaisesRegex(DatasetError, "not a folder"):
      video_index.find_videos(os.path.join(root, "missing"), "train")

  def test_random_80_20_split_without_split_folders(self):
    root = self.create_tempdir().full_path
    for code in range(10):
      _write_coded(root, f"v{code}.png", code)
    with open(os.path.join(root, "v0.keypoints.npy"), "w") as handle:
      handle.write("x")
    train = video_index.find_videos(root, "train", seed=0)
    test = video_index.find_videos(root, "test", seed=0)
    self.assertLen(train, 8)
    self.assertLen(test, 2)
    self.assertEqual(train, sorted(train))
    self.assertEqual(sorted(train + test), [os.path.join(root, f"v{c}.png") for c in range(10)])
    self.assertEqual(train, video_index.find_videos(root, "train", seed=0))
    other_tests = {tuple(video_index.find_videos(root, "test", seed=s)) for s in range(1, 6)}
    self.assertGreater(len(other_tests | {tuple(test)}), 1)

  def test_identity_is_the_name_before_hash(self):
    self.assertEqual(video_index.identity_of("/d/id10001#abc#1.mp4"), "id10001")
    self.assertEqual(video_index.identity_of("/d/id10001#abc.mp4/"), "id10001")
    self.assertEqual(video_index.identity_of("/d/clip.gif"), "clip")
    self.assertEqual(video_index.identity_of("/d/folder"), "folder")


class TrainDatasetTest(testing.TestCase):

  def test_mixed_formats_give_two_distinct_frames_of_one_video(self):
    root = self.create_tempdir().full_path
    train = os.path.join(root, "train")
    # Stored sizes differ from frame_shape (32) for three of them.
    _write_coded(train, "a.mp4", 1, num_frames=5, size=48)
    _write_coded(train, "b.gif", 2, num_frames=4, size=32)
    _write_coded(train, "c", 3, num_frames=6, size=40)
    _write_coded(train, "d.png", 4, num_frames=3, size=24)
    os.mkdir(os.path.join(root, "test"))
    cfg = _config(num_repeats=6, flip_time=True, flip_horizontal=True)
    index = video_index.index_videos(root, "train")
    self.assertEqual(index.num_frames, (5, 4, 6, 3))
    batches = _collect(dataset.make_train_dataset(cfg, index, 4))
    self.assertLen(batches, 6)
    for batch in batches:
      self.assertEqual(batch["source"].shape, (4, 32, 32, 3))
      self.assertEqual(batch["driving"].dtype, np.float32)
      self.assertEqual(batch["video_index"].dtype, np.int32)
    source = _concat(batches, "source")
    driving = _concat(batches, "driving")
    videos = _concat(batches, "video_index")
    self.assertBetween(float(source.min()), 0.0, 1.0)
    self.assertBetween(float(driving.max()), 0.0, 1.0)
    swapped = 0
    for src, drv, video in zip(source, driving, videos):
      src_video, src_frame = _decode_codes(src)
      drv_video, drv_frame = _decode_codes(drv)
      self.assertEqual(src_video, video + 1)
      self.assertEqual(drv_video, video + 1)
      self.assertLess(max(src_frame, drv_frame), index.num_frames[video])
      swapped += src_frame > drv_frame
    # Every video appears num_repeats times; time flips happen sometimes.
    self.assertEqual(np.bincount(videos).tolist(), [6, 6, 6, 6])
    self.assertBetween(swapped, 1, len(videos) - 1)

  def test_frames_in_time_order_without_time_flip(self):
    root = self.create_tempdir().full_path
    _write_coded(os.path.join(root, "train"), "a", 1, num_frames=8)
    os.mkdir(os.path.join(root, "test"))
    batches = _collect(dataset.make_train_dataset(_config(num_repeats=12), root, 4))
    pairs = {(_decode_codes(s)[1], _decode_codes(d)[1])
             for s, d in zip(_concat(batches, "source"), _concat(batches, "driving"))}
    self.assertGreater(len(pairs), 4)
    for source_frame, driving_frame in pairs:
      self.assertLessEqual(source_frame, driving_frame)

  def test_epoch_length_follows_num_repeats(self):
    root = self.create_tempdir().full_path
    for code in range(5):
      _write_coded(os.path.join(root, "train"), f"v{code}.png", code)
    os.mkdir(os.path.join(root, "test"))
    index = video_index.index_videos(root, "train")
    ds = dataset.make_train_dataset(_config(num_repeats=3), index, 4)
    self.assertEqual(len(ds), 3)  # 5 videos * 3 repeats // 4
    self.assertLen(_collect(ds), 3)
    ds = dataset.make_train_dataset(_config(num_repeats=3), index, 4, drop_remainder=False)
    batches = _collect(ds)
    self.assertEqual([len(b["video_index"]) for b in batches], [4, 4, 4, 3])
    self.assertEqual(np.bincount(_concat(batches, "video_index")).tolist(), [3] * 5)

  def test_id_sampling_iterates_identities(self):
    root = self.create_tempdir().full_path
    # 7 training videos of 3 identities: id000 x3, id001 x3, id002 x1.
    synthetic.write_dataset(os.path.join(root, "data"),
                            num_train=7,
                            num_test=1,
                            num_frames=4,
                            frame_size=32,
                            seed=0,
                            fmt="mp4",
                            videos_per_identity=3)
    root = os.path.join(root, "data")
    cfg = _config(id_sampling=True, num_repeats=8)
    index = video_index.index_videos(root, "train", id_sampling=True)
    self.assertEqual(index.entry_names, ("id000", "id001", "id002"))
    self.assertLen(index.paths, 7)
    ds = dataset.make_train_dataset(cfg, index, 4)
    self.assertEqual(len(ds), 6)  # 3 identities * 8 repeats // 4
    videos = _concat(_collect(ds), "video_index")
    identities = [video_index.identity_of(index.paths[v]) for v in videos]
    for name in index.entry_names:
      self.assertEqual(identities.count(name), 8)
    # Identities with several videos use more than one of them.
    self.assertGreater(len(set(videos[np.array(identities) == "id000"])), 1)
    with self.assertRaisesRegex(DatasetError, "id_sampling"):
      dataset.make_train_dataset(_config(id_sampling=False), index, 4)

  def test_same_seed_same_batches(self):
    root = self.create_tempdir().full_path
    synthetic.write_dataset(root, num_train=4, num_test=1, num_frames=6, frame_size=32, seed=1, fmt="png_folder")
    cfg = _config(num_repeats=3, flip_time=True, flip_horizontal=True, jitter_brightness=0.2, jitter_hue=0.1)
    index = video_index.index_videos(root, "train")

    def run(**kwargs):
      return _collect(dataset.make_train_dataset(cfg, index, 4, **kwargs))

    first = run(seed=3)
    again = run(seed=3, num_parallel_calls=1)
    for a, b in zip(first, again):
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for other in (run(seed=3, epoch=1), run(seed=4)):
      self.assertFalse(np.array_equal(_concat(first, "source"), _concat(other, "source")))

  def test_mgif_resize_and_crop_shape(self):
    root = self.create_tempdir().full_path
    for code in range(3):
      _write_coded(os.path.join(root, "train"), f"g{code}.gif", code, num_frames=4, size=40)
    os.mkdir(os.path.join(root, "test"))
    cfg = fomm_tf.load_config("mgif-256", frame_shape=[32, 32, 3], crop_size=[24, 28], num_repeats=2)
    self.assertEqual(dataset.train_frame_size(cfg), (24, 28))
    batches = _collect(dataset.make_train_dataset(cfg, root, 3))
    self.assertLen(batches, 2)
    for batch in batches:
      self.assertEqual(batch["source"].shape, (3, 24, 28, 3))
      self.assertEqual(batch["driving"].shape, (3, 24, 28, 3))
      self.assertBetween(float(batch["source"].min()), 0.0, 1.0)
      self.assertBetween(float(batch["source"].max()), 0.0, 1.0)

  def test_bad_videos_are_skipped_counted_and_warned(self):
    root = self.create_tempdir().full_path
    train = os.path.join(root, "train")
    os.mkdir(os.path.join(root, "test"))
    for code in range(3):
      _write_coded(train, f"good{code}.mp4", code + 1)
    # Fails when the dataset is built: not a video at all.
    with open(os.path.join(train, "garbage.mp4"), "wb") as handle:
      handle.write(b"\x00not a video" * 50)
    # Fails only while sampling: frame 0 is fine, every later one corrupt.
    broken = _write_coded(train, "broken", 9, num_frames=4)
    for name in ("001.png", "002.png", "003.png"):
      with open(os.path.join(broken, name), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n truncated")
    counter = video_index.SkipCounter()
    with self.assertLogs(level="WARNING") as logs:
      ds = dataset.make_train_dataset(_config(num_repeats=4), root, 4, skip_report=counter)
      batches = _collect(ds)
    self.assertLen(batches, 4)  # 4 usable videos * 4 repeats // 4
    videos = _concat(batches, "video_index")
    broken_index = 0  # "broken" sorts first.
    self.assertNotIn(broken_index, videos)
    self.assertEqual(counter.names, sorted([broken, os.path.join(train, "garbage.mp4")]))
    self.assertEqual(counter.count, 1 + 4)  # garbage once, broken 4 times
    text = "\n".join(logs.output)
    self.assertIn("garbage.mp4", text)
    self.assertIn("broken", text)
    # Replaced samples still hold two frames of one good video.
    for src, drv, video in zip(_concat(batches, "source"), _concat(batches, "driving"), videos):
      self.assertEqual(_decode_codes(src)[0], _decode_codes(drv)[0])

  def test_no_usable_video_raises_before_training(self):
    root = self.create_tempdir().full_path
    train = os.path.join(root, "train")
    os.makedirs(train)
    os.mkdir(os.path.join(root, "test"))
    with self.assertRaisesRegex(DatasetError, "no videos found"):
      dataset.make_train_dataset(_config(), root, 2)
    with open(os.path.join(train, "bad.mp4"), "wb") as handle:
      handle.write(b"junk")
    _write_coded(train, "single.png", 1, num_frames=1)  # one frame only
    counter = video_index.SkipCounter()
    with self.assertRaises(DatasetError) as ctx:
      dataset.make_train_dataset(_config(), root, 2, skip_report=counter)
    message = str(ctx.exception)
    self.assertNotIn("\n", message)
    self.assertIn(root, message)
    self.assertIn("train split", message)
    self.assertEqual(counter.count, 2)

  def test_fewer_samples_than_a_batch_and_bad_arguments_raise(self):
    root = self.create_tempdir().full_path
    _write_coded(os.path.join(root, "train"), "a.png", 1)
    os.mkdir(os.path.join(root, "test"))
    with self.assertRaisesRegex(DatasetError, "fewer than one batch"):
      dataset.make_train_dataset(_config(num_repeats=2), root, 3)
    self.assertLen(dataset.make_train_dataset(_config(num_repeats=2), root, 3, drop_remainder=False), 1)
    for kwargs, word in ((dict(batch_size=0), "batch_size"), (dict(batch_size=2,
                                                                   seed=-1), "seed"), (dict(batch_size=2,
                                                                                            epoch=1.5), "epoch")):
      with self.assertRaisesRegex(DatasetError, word):
        dataset.make_train_dataset(_config(), root, **kwargs)
    with self.assertRaisesRegex(DatasetError, "crop_size"):
      dataset.make_train_dataset(_config(resize_ratio=[0.9, 1.1]), root, 1)


class ReadFramesTest(testing.TestCase):

  def test_reads_requested_frames_in_any_order(self):
    folder = self.create_tempdir().full_path
    for name in ("v.mp4", "v.gif", "v", "v.png"):
      path = _write_coded(folder, name, 2, num_frames=5)
      frames = dataset.read_frames_at(path, [3, 1, 3])
      self.assertEqual([_decode_codes(f) for f in frames], [(2, 3), (2, 1), (2, 3)], name)
      with self.assertRaisesRegex(MediaError, "frame 5 was requested"):
        dataset.read_frames_at(path, [0, 5])


class PairSamplingTest(testing.TestCase):

  def test_pairs_are_drawn_with_replacement_and_sorted_like_the_official_sampler(self):
    rng = np.random.default_rng(0)
    num_frames, draws = 4, 20000
    pairs = np.array([dataset.sample_frame_pair(rng, num_frames) for _ in range(draws)])
    self.assertTrue(np.all(pairs[:, 0] <= pairs[:, 1]))
    counts = np.zeros((num_frames, num_frames))
    np.add.at(counts, (pairs[:, 0], pairs[:, 1]), 1)
    share = counts / draws
    # Two uniform draws with replacement: each frame twice (diagonal) 1/16, each unordered pair 2/16.
    expected = np.triu(np.full((num_frames, num_frames), 2 / 16), 1) + np.eye(num_frames) / 16
    # The standard error of a share near 1/8 over 20000 draws is 0.0023; 0.01 is over 4 of them.
    np.testing.assert_allclose(share, expected, atol=0.01)
    self.assertAlmostEqual(np.trace(share), 0.25, delta=0.015)


if __name__ == "__main__":
  absltest.main()

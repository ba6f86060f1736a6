"""tools/package_builtin_model.py: the sample video is chosen from the data alone."""

import os

import numpy as np
from absl.testing import absltest

from fomm_tf.io import media
from tests import testing
from tools import package_builtin_model


class MostMovingVideoTest(testing.TestCase):

  def test_picks_the_video_whose_frames_differ_most_from_its_first_frame(self):
    root = self.create_tempdir().full_path
    still = np.full((6, 32, 32, 3), 0.5, np.float32)
    still[:, 8:20, 2:14] = 0.9
    moving = np.stack([np.roll(still[0], 4 * t, axis=1) for t in range(6)])
    brighter = still + np.linspace(0, 0.02, 6, dtype=np.float32)[:, None, None, None]
    paths = []
    for name, frames in (("still", still), ("moving", moving), ("brighter", brighter)):
      paths.append(os.path.join(root, name + ".mp4"))
      testing.write_video(paths[-1], np.round(frames * 255).astype(np.uint8), fps=25)
    self.assertEqual(package_builtin_model.most_moving_video(paths, media.read_video_frames), paths[1])


if __name__ == "__main__":
  absltest.main()

"""The paper's face metrics with an offline landmark model: AKD and MKR from the MediaPipe face mesh.

For every reconstructed frame the face mesh (468 landmarks, fomm_tf.faces) is
found on the real driving frame and on the generated one, at the model's frame
size. AKD is the mean pixel distance between corresponding landmarks over the
frames where both have a face; MKR is the share of landmarks found in the real
frame but not in the generated one (the mesh finds all or none, so this is the
share of frames whose face the generator lost). The paper used the
face-alignment (FAN, 68 points) detector instead: the numbers measure the same
thing but are not comparable with the paper's table.
"""

import numpy as np

from fomm_tf.evaluation import keypoint_metrics

DEFINITION = ("akd_face / mkr_face: the MediaPipe 468-point face mesh (not the paper's 68-point face-alignment "
              "detector) on real and generated frames at the model's size; akd_face in those pixels over frames "
              "with a face in both, mkr_face the share of real-frame landmarks missing in the generated frame")


class FaceLandmarkCollector:
  """Collects mesh landmarks of (real, generated) frame pairs; NaN where no face is found."""

  def __init__(self):
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    faces.require()
    self._detect = faces.detect_faces
    self.real, self.generated = [], []

  def _landmarks(self, frame):
    found = self._detect(frame, max_faces=1)
    return found[0].landmarks if found else np.full((468, 2), np.nan, np.float32)

  def add(self, real, generated):
    self.real.append(self._landmarks(real))
    self.generated.append(self._landmarks(np.clip(generated, 0.0, 1.0)))

  def metrics(self):
    """keypoint_metrics of the collected frames (akd, mkr and the counts behind them)."""
    return keypoint_metrics.keypoint_metrics(np.stack(self.generated), np.stack(self.real))

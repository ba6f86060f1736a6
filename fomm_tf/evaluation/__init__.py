"""Evaluation of FOMM models: reconstruction L1, keypoint metrics (AKD/MKR/AED), animation pairs, figures.

Modules: `keypoint_metrics` (keypoint_metrics, aed, fit_keypoint_map, mapped_akd, external detector files),
`reconstruction`, `animation_pairs`, `figures`, `videos` (what a test video is), `staging` (all-or-nothing
output) and `cli` (the work behind `python -m fomm_tf.evaluate`, see fomm_tf/evaluate.py).
"""

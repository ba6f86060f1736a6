"""Live animation: a photo animated by camera frames in real time (`python -m fomm_tf.live`, the web app's Live tab).

LiveAnimator (animator.py) animates one frame at a time; LiveRunner (runner.py)
keeps capture, inference and output in their own threads and drops the frames
it has no time for.
"""

"""Entry point: `python -m fomm_tf.animate` (the command lives in fomm_tf/animation/cli.py).

Run it, do not import it: `fomm_tf.animate` is the animation function
(fomm_tf/inference/pipeline.py), and importing this module by that name would
hide it.
"""

if __name__ == "__main__":
  from fomm_tf.animation import cli
  cli.main()

"""Entry point: `python -m fomm_tf.evaluate` (the command lives in fomm_tf/evaluation/cli.py)."""

if __name__ == "__main__":
  from fomm_tf.evaluation import cli
  cli.main()

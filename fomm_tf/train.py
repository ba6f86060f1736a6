"""Entry point: `python -m fomm_tf.train` (the command lives in fomm_tf/training/cli.py)."""

if __name__ == "__main__":
  from fomm_tf.training import cli
  cli.main()

"""Entry point: `python -m fomm_tf.live` (the command lives in fomm_tf/live/cli.py)."""

if __name__ == "__main__":
  from fomm_tf.live import cli
  cli.main()

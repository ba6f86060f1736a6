"""Entry point: `python -m fomm_tf.app` (the command lives in fomm_tf/app/cli.py)."""

if __name__ == "__main__":
  from fomm_tf.app import cli
  cli.main()

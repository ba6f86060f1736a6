"""Entry point: `python -m fomm_tf.export` (the command lives in fomm_tf/export/cli.py)."""

if __name__ == "__main__":
  from fomm_tf.export import cli
  cli.main()

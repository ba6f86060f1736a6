"""Entry point: `python -m fomm_tf.animate` (the command lives in fomm_tf/animation/cli.py).

`fomm_tf.animate` is also the animation function (fomm_tf/inference/pipeline.py). Importing this module by its
name (as pkgutil, pydoc or Sphinx do when they walk the package) would make the import system bind
`fomm_tf.animate` to the module; it binds whatever sys.modules holds for the name once the module has run, so
the module hands it the function instead.
"""

import sys

if __name__ == "__main__":
  from fomm_tf.animation import cli
  cli.main()
else:
  from fomm_tf.inference import pipeline
  sys.modules[__name__] = pipeline.animate

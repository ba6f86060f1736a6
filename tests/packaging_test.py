"""`pip install .` gives a package that runs the built-in demo away from the source tree."""

import glob
import os
import shutil
import subprocess
import sys
import zipfile

from absl.testing import absltest

from tests import testing


class PackagingTest(testing.TestCase):

  def test_wheel_holds_configs_and_assets_and_runs_the_demo(self):
    work = self.create_tempdir().full_path
    # A copy, so that setuptools' build/ folder neither litters the checkout nor serves a stale build.
    source = os.path.join(work, "source")
    for name in ("pyproject.toml", "README.md"):
      os.makedirs(source, exist_ok=True)
      shutil.copy(os.path.join(testing.REPO_ROOT, name), source)
    for name in ("fomm_tf", "configs"):
      # symlinks=True: fomm_tf/configs stays the link a clone has, so the wheel must resolve it itself.
      shutil.copytree(os.path.join(testing.REPO_ROOT, name),
                      os.path.join(source, name),
                      symlinks=True,
                      ignore=shutil.ignore_patterns("__pycache__"))
    wheel_dir = os.path.join(work, "wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", source, "-w", wheel_dir],
        check=True,
        capture_output=True,
        timeout=600)
    (wheel,) = glob.glob(os.path.join(wheel_dir, "*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(testing.REPO_ROOT, "configs", "*.flags")))
    self.assertNotEmpty(configs)
    expected = [f"fomm_tf/configs/{name}" for name in configs] + [
        f"fomm_tf/assets/{name}" for name in ("synthetic-128.weights.npz", "synthetic-128-lite.weights.npz",
                                              "sample_source.png", "sample_driving.mp4")
    ]
    self.assertEqual([name for name in expected if name not in names], [], f"missing from {os.path.basename(wheel)}")
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for command in ("animate", "train", "evaluate", "export", "app", "live"):
      self.assertIn(f"fomm-{command} = fomm_tf.", scripts)

    target = os.path.join(work, "site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel],
                   check=True,
                   capture_output=True,
                   timeout=600)
    run_dir = os.path.join(work, "run")
    os.makedirs(run_dir)
    # Only the installed copy is importable: not the checkout, whose configs/ would hide a missing one.
    env = dict(os.environ, PYTHONPATH=target)
    proc = subprocess.run([sys.executable, "-m", "fomm_tf.animate"],
                          capture_output=True,
                          text=True,
                          cwd=run_dir,
                          env=env,
                          timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertTrue(os.path.isfile(os.path.join(run_dir, "animation.mp4")))
    origin = subprocess.run([sys.executable, "-c", "import fomm_tf; print(fomm_tf.__file__)"],
                            capture_output=True,
                            text=True,
                            cwd=run_dir,
                            env=env,
                            timeout=120,
                            check=True).stdout.strip()
    self.assertEqual(origin, os.path.join(target, "fomm_tf", "__init__.py"))


if __name__ == "__main__":
  absltest.main()

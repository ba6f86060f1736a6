"""The package layout pyproject.toml cannot express: configs/ is installed as fomm_tf/configs.

`packages.find` only finds folders under fomm_tf/, so the flagfiles at the top of the repository
would be left out of a wheel; the metadata stays in pyproject.toml.
"""

from setuptools import find_packages
from setuptools import setup

setup(
    packages=find_packages(include=["fomm_tf", "fomm_tf.*"]) + ["fomm_tf.configs"],
    package_dir={"fomm_tf.configs": "configs"},
    package_data={"fomm_tf.configs": ["*.flags"], "fomm_tf": ["assets/*"]},
)

# setuptools reads cffi_modules and cmdclass only from setup(); everything else lives in
# pyproject.toml. The build step comes from faultbench/_build.py by path: importing the
# package needs the module this builds.
import runpy

from setuptools import setup

build = runpy.run_path("faultbench/_build.py")
setup(cffi_modules=["faultbench/_build.py:ffibuilder"],
      cmdclass={"build_ext": build["BuildExtWithMapper"]})

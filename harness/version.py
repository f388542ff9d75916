"""The harness's version: results files record it, and a finished file is reused only under the same one."""

__version__ = "0.2.0"  # 0.2: one ranking rule at every cut (results of 0.1 are not reused)

"""The machine a benchmark ran on, for the line under its table.

CPU model, the vector extensions that decide int8 and bfloat16 speed (figures from an AVX512 machine do not carry
over to an AVX2-only one), logical cores and host name, read from /proc/cpuinfo; elsewhere the platform module's
processor name, without extensions.
"""

import os
import platform

EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def describe():
  """'AMD EPYC 7B13 (avx2, fma), 2 logical cores, host'."""
  name, features = platform.processor() or platform.machine() or "unknown CPU", None
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          name = value.strip()
        elif key.strip() == "flags":
          features = set(value.split())
          break
  if features is not None:
    name += f" ({', '.join(e for e in EXTENSIONS if e in features) or 'no AVX2'})"
  return f"{name}, {os.cpu_count()} logical cores, {platform.node()}"

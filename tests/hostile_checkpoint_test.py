"""Hostile checkpoints: each is refused with a one-line CheckpointError, in bounded time and memory.

Every file is generated here at run time. Reads run in a subprocess (_WORKER)
that times each one and measures its peak memory with tracemalloc (every Python
and numpy allocation) and, where Linux offers it, the peak resident set size,
so that one read's cost cannot hide behind another's and a crash (a C stack
overflow) fails the test instead of killing it. The memory bound is the one
loading promises: under 2x the size of the model the file is loaded into,
here the fixture model (its keypoint detector and generator, as animation
builds it).
"""

import bz2
import json
import os
import pickle
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zipfile

from absl.testing import absltest
import numpy as np

from fomm_tf.checkpoint import torch_pickle
from fomm_tf.errors import CheckpointError
from tests import testing
from tests import torch_writer
from tests.torch_writer import ZipRecord
from tests.torch_writer import op_dict
from tests.torch_writer import op_get
from tests.torch_writer import op_int
from tests.torch_writer import op_list
from tests.torch_writer import op_ordered_dict
from tests.torch_writer import op_put
from tests.torch_writer import op_str
from tests.torch_writer import op_tensor
from tests.torch_writer import pickle_of

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_FIXTURES = os.path.normpath(os.path.join(_REPO_ROOT, "..", "shared", "fixtures"))
_ZIP_FIXTURE = os.path.join(_FIXTURES, "small-official.pth.tar")
_LEGACY_FIXTURE = os.path.join(_FIXTURES, "small-official-legacy.pth.tar")
_KEYS_FILE = os.path.join(_FIXTURES, "small-official-keys.txt")

_GIB = 1 << 30
_MIB = 1 << 20
# A refused hostile file must be refused about at once, however much it claims.
_MAX_SECONDS_PER_HOSTILE_FILE = 2.0
_MAX_MESSAGE_CHARS = 1100  # FommError cuts at 1000; a few escapes may lengthen that.
_FUZZ_CASES_PER_FIXTURE = 150
# tracemalloc makes a read ~5x slower: the fuzz traces one read in this many (and measures the RSS of all).
_FUZZ_TRACE_EVERY = 10
_MAX_MEAN_FUZZ_SECONDS = 2.0


def _fixture_shapes(networks=("kp_detector", "generator")):
  """The state-dict shapes of the fixture's `networks` (LoadIntoModelTest checks them against the model's)."""
  shapes = []
  with open(_KEYS_FILE) as file:
    for line in file:
      if line.strip() and not line.startswith("#") and line.split(".", 1)[0] in networks:
        shapes.append(tuple(json.loads(line.split("\t")[1])))
  return shapes


# What the fixture model takes in float32, and the budget loading gives a file for it.
_MODEL_BYTES = 4 * sum(int(np.prod(shape)) for shape in _fixture_shapes())
_MODEL_BUDGET = torch_pickle.model_byte_budget(_fixture_shapes())
_MAX_HOSTILE_PEAK_BYTES = 2 * _MODEL_BYTES

_WORKER = r'''
import json, sys, time, traceback, tracemalloc
import numpy as np
from fomm_tf.checkpoint import torch_pickle
from fomm_tf.errors import CheckpointError
from tests import torch_writer


def status_bytes(field):
  with open("/proc/self/status") as file:
    for line in file:
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024
  return None


def reset_peak_rss():
  """The resident size now, after resetting the peak (VmHWM); None where Linux does not allow it."""
  try:
    with open("/proc/self/clear_refs", "w") as file:
      file.write("5")
    return status_bytes("VmRSS")
  except (OSError, TypeError):
    return None


def read(path, budget, trace):
  """Reads `path` once; the time and peak RSS are those of this read, the peak traced memory if `trace`."""
  rss_before = reset_peak_rss()
  if trace:
    tracemalloc.start()
  start = time.perf_counter()
  try:
    result = torch_pickle.read_torch_checkpoint(path, max_total_bytes=budget)
    del result
    outcome, message = "loaded", ""
  except CheckpointError as error:
    outcome, message = "refused", str(error)
  except BaseException:  # pylint: disable=broad-except
    outcome, message = "crashed", traceback.format_exc()
  seconds = time.perf_counter() - start
  peak = tracemalloc.get_traced_memory()[1] if trace else None
  if trace:
    tracemalloc.stop()
  rss_growth = None
  if rss_before is not None:
    rss_growth = status_bytes("VmHWM") - rss_before
  return {"outcome": outcome, "message": message, "seconds": seconds, "peak": peak, "rss_growth": rss_growth}


def measure(path, budget):
  """Reads `path` twice: timed (tracemalloc slows allocation down), then traced."""
  result = read(path, budget, trace=False)
  traced = read(path, budget, trace=True)
  result.update(peak=traced["peak"], traced_seconds=traced["seconds"])
  return result


def fuzz(job):
  with open(job["fixture"], "rb") as file:
    damager = torch_writer.Damager(file.read())
  rng = np.random.default_rng(job["seed"])
  results = []
  for index in range(job["count"]):
    description, data = damager.damaged(rng)
    with open(job["scratch"], "wb") as file:
      file.write(data)
    result = read(job["scratch"], job["budget"], trace=index % job["trace_every"] == 0)
    result.update(description=description, size=len(data))
    results.append(result)
  return results


with open(sys.argv[1]) as file:
  jobs = json.load(file)
results = [fuzz(job) if "fixture" in job else measure(job["path"], job["budget"]) for job in jobs]
with open(sys.argv[2], "w") as file:
  json.dump(results, file)
'''


def _run_worker(jobs, directory, timeout=300):
  """Runs _WORKER on `jobs`; returns its results, one per job."""
  jobs_path = os.path.join(directory, "jobs.json")
  results_path = os.path.join(directory, "results.json")
  with open(jobs_path, "w") as file:
    json.dump(jobs, file)
  process = subprocess.run([sys.executable, "-c", _WORKER, jobs_path, results_path],
                           cwd=_REPO_ROOT,
                           capture_output=True,
                           text=True,
                           timeout=timeout,
                           check=False)
  if process.returncode != 0:
    raise AssertionError(f"the worker died (status {process.returncode}): {process.stderr[-3000:]}")
  with open(results_path) as file:
    return json.load(file)


# ---------------------------------------------------------------------------
# The hostile files.


def _write_zip(path, body, storages=(), **kwargs):
  torch_writer.write_zip_file(path, torch_writer.zip_checkpoint_records(pickle_of(body), storages, **kwargs))


def _tensors(count, size, stride, numel, legacy, key="0", storage_type="FloatStorage"):
  """An OrderedDict of `count` tensors, all on one storage."""
  return op_ordered_dict([(f"w{i}", op_tensor(storage_type, key, numel, 0, size, stride, legacy)) for i in range(count)
                         ])


def _floats(count):
  return np.ones(count, np.float32).tobytes()


def _deep_lists(depth):
  """A list nested `depth` deep through the memo, so that the stack stays flat: [[[...]]]."""
  levels = [b"0]" + op_put(level) + op_get(level - 1) + b"a" for level in range(1, depth)]
  return b"]" + op_put(0) + b"".join(levels) + b"0" + op_get(depth - 1)


def _deep_dicts(depth):
  """A dict nested `depth` deep through the memo: {'k': {'k': ...}}."""
  levels = [b"0}" + op_put(level) + op_str("k") + op_get(level - 1) + b"s" for level in range(1, depth)]
  return b"}" + op_put(0) + b"".join(levels) + b"0" + op_get(depth - 1)


def _shared_nested_lists(width, depth, leaf=b"G" + struct.pack(">d", 0.5)):
  """Lists `depth` deep, each holding `width` references to one list of the next level: width**depth leaves."""
  body = leaf + op_put(0)
  for level in range(1, depth + 1):
    body += b"0(" + op_get(level - 1) * width + b"l" + op_put(level)
  return body


def _header(magic=None, protocol=None, sys_info=None):
  parts = (magic, protocol, sys_info)
  return torch_writer.legacy_header(*(None if part is None else pickle_of(part) for part in parts))


def _hostile_cases(directory):
  """{name: (path, regex the refusal must match, budget)}; budget None reads with the reader's default."""
  cases = {}

  def path_of(name):
    return os.path.join(directory, name + ".pth")

  def add(name, regex, budget=_MODEL_BUDGET):
    cases[name] = (path_of(name), regex, budget)
    return path_of(name)

  one = [("0", _floats(1))]
  legacy_one = [("0", 1, _floats(1))]
  total_16_gib = r"its 16 tensors take 17179869184 bytes \(16384 MiB\), more than the \d+ bytes"

  # 1. Expanded tensors: each under the per-tensor cap, together 16 GiB.
  _write_zip(add("stride0_zip", total_16_gib), _tensors(16, (1 << 28,), (0,), 1, False), one)
  _write_zip(add("stride0_zip_default_budget", r"its 16 tensors take .* more than the 2147483648 bytes", None),
             _tensors(16, (1 << 28,), (0,), 1, False), one)
  torch_writer.write_legacy_file(add("stride0_legacy", total_16_gib), pickle_of(_tensors(16, (1 << 28,), (0,), 1,
                                                                                         True)), legacy_one)
  overlap = 1 + (1 << 13) - 1 + (1 << 15) - 1
  _write_zip(add("overlapping_strides_zip", total_16_gib), _tensors(16, (1 << 13, 1 << 15), (1, 1), overlap, False),
             [("0", _floats(overlap))])

  # 2. Zip records that decompress to gigabytes, or whose headers lie.
  pkl = pickle_of(_tensors(1, (1,), (1,), 1, False))

  def bomb_zip(name, regex, data_pkl=None, byteorder=b"little", storages=one):
    torch_writer.write_zip_file(
        add(name, regex),
        torch_writer.zip_checkpoint_records(pkl, storages, data_pkl_record=data_pkl, byteorder=byteorder))

  deflate_gib = torch_writer.deflate_zeros(1024)
  bomb_zip("data_pkl_deflate_bomb",
           r"record 'archive/data\.pkl' declares 2147483648 bytes, more than the 67108864",
           data_pkl=ZipRecord("archive/data.pkl", raw=deflate_gib * 2, method=zipfile.ZIP_DEFLATED, file_size=2 * _GIB))
  # zipfile stops at the declared size, so the CRC (of all the bytes) fails.
  bomb_zip("data_pkl_deflate_bomb_lying",
           r"cannot read record 'archive/data\.pkl' \(BadZipFile: Bad CRC-32",
           data_pkl=ZipRecord("archive/data.pkl", raw=deflate_gib, method=zipfile.ZIP_DEFLATED, file_size=300))
  bomb_zip("data_pkl_bzip2_bomb",
           r"record 'archive/data\.pkl' is compressed with bzip2; torch\.load reads only",
           data_pkl=ZipRecord("archive/data.pkl",
                              raw=bz2.compress(bytes(16 * _MIB)),
                              method=zipfile.ZIP_BZIP2,
                              file_size=0xFFFFFFF0))
  lzma = zipfile.LZMACompressor()
  bomb_zip("data_pkl_lzma_bomb",
           r"record 'archive/data\.pkl' is compressed with lzma",
           data_pkl=ZipRecord("archive/data.pkl",
                              raw=lzma.compress(bytes(8 * _MIB)) + lzma.flush(),
                              method=zipfile.ZIP_LZMA,
                              file_size=8 * _MIB))
  bomb_zip("byteorder_deflate_bomb",
           r"record 'archive/byteorder' declares 1073741824 bytes, more than the 16",
           byteorder=ZipRecord("archive/byteorder", raw=deflate_gib, method=zipfile.ZIP_DEFLATED, file_size=_GIB))
  bomb_zip("byteorder_deflate_bomb_lying",
           r"cannot read record 'archive/byteorder' \(BadZipFile: Bad CRC-32",
           byteorder=ZipRecord("archive/byteorder", raw=deflate_gib, method=zipfile.ZIP_DEFLATED, file_size=6))
  bomb_zip("storage_deflated",
           r"record 'archive/data/0' is compressed with deflate; storage records must be stored",
           storages=[("0", ZipRecord("archive/data/0", _floats(1), method=zipfile.ZIP_DEFLATED))])
  bomb_zip("storage_stored_sizes_lie", r"record 'archive/data/0' is stored but its header declares 1 stored and 4 "
           "uncompressed bytes",
           storages=[("0", ZipRecord("archive/data/0", raw=b"\0", file_size=4))])
  bomb_zip("data_pkl_past_end",
           r"record 'archive/data\.pkl' declares 50000000 bytes at offset 0, past the end",
           data_pkl=ZipRecord("archive/data.pkl", raw=pkl, file_size=50_000_000, compress_size=50_000_000))
  # A 1-element tensor of a storage that claims 1 TiB: the budget allows the tensor, not the record.
  torch_writer.write_zip_file(
      add("storage_claims_tib", r"storages are declared as 1099511627776 bytes in all, more than the whole"),
      torch_writer.zip_checkpoint_records(
          pickle_of(_tensors(1, (1,), (1,), 1 << 38, False)),
          [("0", ZipRecord("archive/data/0", raw=deflate_gib, method=zipfile.ZIP_DEFLATED, file_size=0xFFFFFFF0))]))

  # 3. Legacy headers nested 100,000 deep, huge integers, huge repeated strings.
  main = pickle_of(_tensors(1, (1,), (1,), 1, True))
  deep = 100_000
  legacy_cases = {
      "magic_nested_lists": (_header(magic=b"]" * deep + b"a" * (deep - 1)), r"first pickle: malformed pickle "
                             r"data: more than 256 opcodes"),
      "magic_nested_marks": (_header(magic=b"(" * deep + b"t" * deep), r"first pickle: malformed pickle data: "
                             r"marks nested more than 100 deep"),
      "protocol_nested_tuples": (_header(protocol=b")" + b"\x85" * deep), r"\(protocol version\): malformed "
                                 r"pickle data: tuples nested more than 100 deep"),
      "protocol_nested_dicts": (_header(protocol=_deep_dicts(deep)), r"\(protocol version\): malformed pickle data: "
                                "more than 256 opcodes"),
      # Hashing this key would overflow the C stack and kill the process (a segfault, not an exception).
      "sys_info_deep_tuple_key": (_header(sys_info=b"}" + b")" + b"\x85" * 1_000_000 + b"K\x01s"),
                                  r"\(system info\): malformed pickle data: tuples nested more than 100 deep"),
      "sys_info_tuple_key": (_header(sys_info=b"}" + b"K\x01K\x02\x86K\x01s"), r"\(system info\): malformed pickle "
                             "data: a dict key is a tuple"),
      "magic_10000_digit_long4": (_header(magic=op_int(10**10000)), r"first pickle: malformed pickle data: an "
                                  r"integer of 33220 bits"),
      "magic_10000_digit_text_long": (_header(magic=b"L" + b"9" * 10000 + b"L\n"), r"first pickle: malformed pickle "
                                      "data"),
      "protocol_10000_digit_text_int": (_header(protocol=b"I" + b"9" * 10000 + b"\n"), r"\(protocol version\): "
                                        "malformed pickle data"),
      "magic_1mb_string": (_header(magic=op_str("\x1b[31m" + "x" * _MIB)), r"starts with a pickle of '\\x1b\[31mx+'"
                           r"\.\.\. \(1048581 characters\), not the legacy magic number"),
      "protocol_long_list": (_header(protocol=op_str("x" * _MIB) + op_put(0) + b"(" + op_get(0) * 200 + b"l"),
                             r"unsupported legacy protocol version a list of 200 items"),
  }
  for name, (header, regex) in legacy_cases.items():
    with open(add("legacy_" + name, regex), "wb") as file:
      file.write(header + main + pickle.dumps(["0"], protocol=2) + struct.pack("<q", 1) + _floats(1))
  # 100,000 references to one 1 MB string as the storage key list; one 1 MB key; a key that is no string.
  many_refs = op_str("s" * _MIB) + op_put(0) + b"(" + op_get(0) * deep + b"l"
  torch_writer.write_legacy_file(add("legacy_keys_100k_refs", r"\(storage key list\): malformed pickle data: more "
                                     "than 260 opcodes"),
                                 main,
                                 keys_pickle=pickle_of(many_refs))
  torch_writer.write_legacy_file(add(
      "legacy_key_1mb", r"storage key list names 'sssss+'\.\.\. \(1048576 characters\), which no tensor uses"),
                                 main,
                                 keys_pickle=pickle_of(op_list(op_str("s" * _MIB))))
  torch_writer.write_legacy_file(add("legacy_keys_not_strings",
                                     r"storage key list \(2 items\) holds a list of 1 item at index 1, not a string"),
                                 main,
                                 keys_pickle=pickle_of(op_list(op_str("0"), b"]" + op_str("x") + b"a")))
  # Deep nesting in the object itself (both formats), and long integers as dict keys.
  # Nested 100,000 deep it takes more opcodes than a pickle may hold; 20,000 deep the nesting itself is refused.
  _write_zip(add("object_nested_dicts_zip", r"malformed pickle data: more than 262144 opcodes"), _deep_dicts(deep))
  _write_zip(add("object_nested_lists_20k_zip", r"'k\.0\.0\.0.*' is nested more than 100 levels deep"),
             b"}" + op_str("k") + b"]" * 20_000 + b"a" * 19_999 + b"s")
  torch_writer.write_legacy_file(
      add("object_nested_lists_20k_legacy", r"'0\.0\.0.*' is nested more than 100 "
          "levels deep"), pickle_of(_deep_lists(20_000)))
  _write_zip(add("object_long_int_key", r"malformed pickle data: a dict key is an integer of more than 64 bits"),
             b"}" + op_int(2**64 + 1) + b"K\x01s")
  _write_zip(add("object_deep_tuple_key", r"tuples nested more than 100 deep"),
             b"}" + b")" + b"\x85" * 1_000_000 + b"K\x01s")
  _write_zip(
      add("object_ordered_dict_tuple_keys", r"OrderedDict item \(a tuple of 2 items, 1\) is not a \(str or int64 key"),
      torch_writer.op_global("collections", "OrderedDict") + b"(" + op_list(b"K\x01K\x02\x86K\x01\x86") + b"tR")
  _write_zip(add("object_set", r"malformed pickle data: a set \(checkpoints hold none\)"), b"\x8f")

  # 4. Non-tensor values: read as they are, without expansion (here: read, LoadIntoModelTest: refused).
  _write_zip(add("nested_list_of_1000_4", None),
             op_dict([("kp_detector", b"}(" + op_str("w") + _shared_nested_lists(1000, 4) + b"u")]))

  # 5. Zero-element tensors with absurd dimensions; shape products overflowing int64.
  _write_zip(add("zero_elements_2_62", r"tensor 'w0' has size \[0, 4611686018427387904\], whose product overflows"),
             _tensors(1, (0, 1 << 62), (1, 1), 0, False))
  _write_zip(add("zero_elements_2_64", r"tensor 'w0' has invalid layout \(offset 0, size \(0, an integer of 65 bits"),
             _tensors(1, (0, 1 << 64), (1, 1), 0, False))
  _write_zip(
      add("product_overflow", r"tensor 'w0' has size \[4294967296, 4294967296, 4294967296\], whose product "
          "overflows"), _tensors(1, (1 << 32, 1 << 32, 1 << 32), (0, 0, 0), 1, False), one)

  # 7. Key names that are terminal escapes, NULs, or a megabyte long, in paths of messages.
  long_key = "\x1b[31m\x00" + "k" * _MIB
  _write_zip(
      add("escape_key_names", r"tensor '\\x1b\[31m\\x00kkkk+\.\.\.\(1048582 characters\)\.\\x1b\]0;t\\x07' "),
      op_dict([(long_key, op_dict([("\x1b]0;t\x07", op_tensor("FloatStorage", "0", 1, 0, (5,), (1,), False))]))]), one)
  return cases


class HostileReadTest(testing.TestCase):
  """Each hostile file, read in the worker with the fixture model's budget unless the case says otherwise."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.directory = tempfile.mkdtemp(prefix="hostile_checkpoint_test_")
    cls.cases = _hostile_cases(cls.directory)
    names = list(cls.cases)
    jobs = [{"path": cls.cases[name][0], "budget": cls.cases[name][2]} for name in names]
    cls.results = dict(zip(names, _run_worker(jobs, cls.directory)))

  @classmethod
  def tearDownClass(cls):
    for name in os.listdir(cls.directory):
      os.remove(os.path.join(cls.directory, name))
    os.rmdir(cls.directory)
    super().tearDownClass()

  def assertBounded(self, name):
    result = self.results[name]
    self.assertNotEqual("crashed", result["outcome"], f"{name}: {result['message']}")
    self.assertLess(result["seconds"], _MAX_SECONDS_PER_HOSTILE_FILE, name)
    self.assertLess(result["peak"], _MAX_HOSTILE_PEAK_BYTES, name)
    if result["rss_growth"] is not None:
      self.assertLess(result["rss_growth"], _MAX_HOSTILE_PEAK_BYTES, name)
    return result

  def assertRefused(self, name):
    result = self.assertBounded(name)
    _, regex, _ = self.cases[name]
    self.assertEqual("refused", result["outcome"], name)
    message = result["message"]
    self.assertRegex(message, regex, name)
    self.assertTrue(message.isprintable(), f"{name}: {message!r}")  # No newline, ESC, NUL, ...
    self.assertLessEqual(len(message), _MAX_MESSAGE_CHARS, name)

  def assertAllRefused(self, prefix):
    names = [name for name in self.cases if name.startswith(prefix)]
    self.assertNotEmpty(names)
    for name in names:
      with self.subTest(name):
        self.assertRefused(name)

  def test_every_case_ran_within_bounds(self):
    for name in self.cases:
      with self.subTest(name):
        if self.cases[name][1] is None:
          self.assertEqual("loaded", self.assertBounded(name)["outcome"])
        else:
          self.assertRefused(name)

  def test_expanded_tensors_are_capped_in_total(self):
    self.assertLess(os.path.getsize(self.cases["stride0_zip"][0]), 4096)
    self.assertAllRefused("stride0")
    self.assertRefused("overlapping_strides_zip")

  def test_zip_bombs_and_lying_headers(self):
    for prefix in ("data_pkl_", "byteorder_", "storage_"):
      self.assertAllRefused(prefix)
    self.assertLess(os.path.getsize(self.cases["data_pkl_bzip2_bomb"][0]), 4096)

  def test_legacy_headers_nested_long_or_huge(self):
    self.assertAllRefused("legacy_")

  def test_object_nesting_and_keys(self):
    self.assertAllRefused("object_")

  def test_shared_nested_lists_are_read_without_expansion(self):
    self.assertEqual("loaded", self.assertBounded("nested_list_of_1000_4")["outcome"])

  def test_zero_element_tensors_with_huge_dimensions(self):
    self.assertAllRefused("zero_elements_")
    self.assertRefused("product_overflow")

  def test_key_names_are_escaped_and_cut(self):
    self.assertRefused("escape_key_names")
    self.assertNotIn("\x1b", self.results["escape_key_names"]["message"])


class ZeroElementTest(testing.TestCase):

  def test_zero_elements_with_dimension_2_61_is_read_without_allocating(self):
    with tempfile.TemporaryDirectory() as directory:
      path = os.path.join(directory, "empty.pth")
      _write_zip(path, _tensors(1, (0, 1 << 61), (1, 1), 0, False, storage_type="CharStorage"), [("0", b"")])
      tracemalloc.start()
      try:
        array = torch_pickle.read_torch_checkpoint(path)["w0"]
        peak = tracemalloc.get_traced_memory()[1]
      finally:
        tracemalloc.stop()
    self.assertEqual((0, 1 << 61), array.shape)
    self.assertEqual(np.int8, array.dtype)
    self.assertLess(peak, _MIB)


class SpecialFileTest(testing.TestCase):

  def _read_with_timeout(self, path, seconds=10):
    """The CheckpointError reading `path` raises; fails (instead of hanging) if the read blocks."""
    outcome = {}

    def read():
      try:
        torch_pickle.read_torch_checkpoint(path)
        outcome["error"] = None
      except CheckpointError as error:
        outcome["error"] = error

    thread = threading.Thread(target=read, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
      # Unblock the reader (a writer opening the FIFO releases it) so that it does not outlive the test.
      with open(path, "wb"):
        pass
      self.fail(f"reading {path} blocked for {seconds} s")
    self.assertLess(time.monotonic() - start, 2)
    self.assertIsInstance(outcome["error"], CheckpointError)
    self.assertNotIn("\n", str(outcome["error"]))
    return outcome["error"]

  def test_special_files_are_refused_at_once(self):
    with tempfile.TemporaryDirectory() as directory:
      empty = os.path.join(directory, "empty.pth")
      open(empty, "wb").close()
      self.assertRegex(str(self._read_with_timeout(empty)), r"empty\.pth: file is empty")
      self.assertRegex(str(self._read_with_timeout(directory)), r"is a directory, not a checkpoint file")
      if hasattr(os, "mkfifo"):
        fifo = os.path.join(directory, "fifo.pth")
        os.mkfifo(fifo)
        self.assertRegex(str(self._read_with_timeout(fifo)), r"fifo\.pth: is a FIFO, not a regular file")
      if os.path.exists("/dev/zero") and stat.S_ISCHR(os.stat("/dev/zero").st_mode):
        self.assertRegex(str(self._read_with_timeout("/dev/zero")), r"/dev/zero: is a device, socket or other")
      self.assertRegex(str(self._read_with_timeout(os.path.join(directory, "nul\0.pth"))), r"cannot open")


class FuzzTest(testing.TestCase):

  def test_damaged_fixtures_load_or_raise_one_line_errors_within_bounds(self):
    with tempfile.TemporaryDirectory() as directory:
      jobs = [{
          "fixture": fixture,
          "seed": seed,
          "count": _FUZZ_CASES_PER_FIXTURE,
          "budget": _MODEL_BUDGET,
          "trace_every": _FUZZ_TRACE_EVERY,
          "scratch": os.path.join(directory, f"damaged-{seed}.pth")
      } for seed, fixture in enumerate((_ZIP_FIXTURE, _LEGACY_FIXTURE))]
      runs = _run_worker(jobs, directory)
    kinds = set()
    for fixture, results in zip((_ZIP_FIXTURE, _LEGACY_FIXTURE), runs):
      self.assertLen(results, _FUZZ_CASES_PER_FIXTURE)
      refused = 0
      for result in results:
        description = f"{os.path.basename(fixture)}: {result['description']}"
        kinds.add(result["description"].split()[0])
        self.assertIn(result["outcome"], ("loaded", "refused"), f"{description}: {result['message']}")
        if result["outcome"] == "refused":
          refused += 1
          self.assertTrue(result["message"].isprintable(), f"{description}: {result['message']!r}")
          self.assertLessEqual(len(result["message"]), _MAX_MESSAGE_CHARS, description)
        # A damaged file may allocate its own size (the storages) and the budget (the tensors), little more.
        bound = result["size"] + _MODEL_BUDGET + 16 * _MIB
        if result["peak"] is not None:
          self.assertLess(result["peak"], bound, description)
        if result["rss_growth"] is not None:
          self.assertLess(result["rss_growth"], bound, description)
        self.assertLess(result["seconds"], 10 * _MAX_MEAN_FUZZ_SECONDS, description)
      self.assertLess(np.mean([result["seconds"] for result in results]), _MAX_MEAN_FUZZ_SECONDS)
      self.assertGreater(refused, _FUZZ_CASES_PER_FIXTURE // 4, fixture)
    self.assertEqual(set(torch_writer.Damager.KINDS), kinds)


class LoadIntoModelTest(testing.TestCase):
  """Hostile files loaded into the fixture model: refused quickly, with the model unchanged."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    import fomm_tf  # pylint: disable=import-outside-toplevel
    from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
    cls.loading = loading
    cls.model = fomm_tf.load_model(testing.fixture_config())
    cls.variables = [v for net in cls.model.networks().values() for v in net.weights]
    cls.state = torch_pickle.read_torch_checkpoint(_ZIP_FIXTURE)

  def setUp(self):
    super().setUp()
    self.directory = self.enterContext(tempfile.TemporaryDirectory(prefix="hostile_load_test_"))

  def assertLoadRefused(self, path, regex):
    """Loading `path` fails with a one-line CheckpointError matching `regex`, fast, in bounded memory, harmlessly."""
    before = [v.numpy().copy() for v in self.variables]
    tracemalloc.start()
    start = time.perf_counter()
    try:
      with self.assertRaisesRegex(CheckpointError, regex) as context:
        self.loading.load_weights(self.model, path)
      seconds = time.perf_counter() - start
      peak = tracemalloc.get_traced_memory()[1]
    finally:
      tracemalloc.stop()
    message = str(context.exception)
    self.assertTrue(message.isprintable(), repr(message))
    self.assertLessEqual(len(message), _MAX_MESSAGE_CHARS)
    self.assertLess(seconds, _MAX_SECONDS_PER_HOSTILE_FILE)
    self.assertLess(peak, _MAX_HOSTILE_PEAK_BYTES)
    for old, variable in zip(before, self.variables):
      np.testing.assert_array_equal(old, variable.numpy(), err_msg="a refused load changed the model")
    return message

  def test_budget_fits_the_fixtures_and_an_official_checkpoint_with_optimizers(self):
    model_bytes = 4 * sum(int(np.prod(v.shape)) for v in self.variables)
    self.assertAlmostEqual(1, model_bytes / _MODEL_BYTES, delta=0.05)  # The estimate the other tests use.
    for fixture in (_ZIP_FIXTURE, _LEGACY_FIXTURE):
      self.loading.load_weights(self.model, fixture)
    # The official layout: all three networks plus an Adam state (2 tensors per parameter) for each.
    official = dict(self.state)
    for network in ("kp_detector", "generator", "discriminator"):
      params = [value for key, value in self.state[network].items() if value.dtype == np.float32]
      official[f"optimizer_{network}"] = {
          "state": {
              index: {
                  "step": 1000,
                  "exp_avg": np.full_like(value, 1e-3),
                  "exp_avg_sq": np.full_like(value, 1e-6)
              } for index, value in enumerate(params)
          },
          "param_groups": [{
              "lr": 2e-4,
              "betas": (0.5, 0.999),
              "params": list(range(len(params)))
          }]
      }
    path = os.path.join(self.directory, "official-layout.pth.tar")
    torch_writer.write_torch_checkpoint(path, official, legacy=True)
    tensor_bytes = sum(array.nbytes for array in torch_writer.flatten_state_dict(official).values())
    self.assertGreater(tensor_bytes, 3 * model_bytes)
    self.assertLess(tensor_bytes, torch_pickle.model_byte_budget(v.shape for v in self.variables))
    self.loading.load_weights(self.model, path)

  def test_expanded_tensors_beyond_the_model_budget(self):
    # 256 MiB: under the reader's default budget, far over what this model's checkpoint can need.
    path = os.path.join(self.directory, "expanded.pth")
    _write_zip(path, op_dict([("kp_detector", _tensors(4, (1 << 24,), (0,), 1, False))]), [("0", _floats(1))])
    budget = torch_pickle.model_byte_budget(v.shape for v in self.variables)
    self.assertLoadRefused(path, rf"its 4 tensors take 268435456 bytes \(256 MiB\), more than the {budget} bytes")
    path = os.path.join(self.directory, "expanded-16-gib.pth")
    torch_writer.write_legacy_file(path, pickle_of(op_dict([("kp_detector", _tensors(16, (1 << 28,), (0,), 1, True))])),
                                   [("0", 1, _floats(1))])
    self.assertLoadRefused(path, r"its 16 tensors take 17179869184 bytes")

  def test_non_tensor_values_are_read_shared_and_refused_as_not_tensors(self):
    key = "predictor.encoder.down_blocks.0.conv.weight"
    path = os.path.join(self.directory, "strings.pth")
    torch_writer.write_torch_checkpoint(path, {"kp_detector": {key: ["a", "b"]}, "generator": {}})
    self.assertLoadRefused(path, rf"kp_detector\.{key} is not a tensor \(a list\)")
    path = os.path.join(self.directory, "nested.pth")
    _write_zip(
        path, op_dict([("kp_detector", b"}(" + op_str(key) + _shared_nested_lists(1000, 4) + b"u"),
                       ("generator", b"}")]))
    start = time.perf_counter()
    nested = torch_pickle.read_torch_checkpoint(path)["kp_detector"][key]
    self.assertLess(time.perf_counter() - start, _MAX_SECONDS_PER_HOSTILE_FILE)
    for _ in range(4):  # 1000**4 leaves, held as 4 lists of 1000 references each.
      self.assertLen(nested, 1000)
      self.assertIs(nested[0], nested[-1])
      nested = nested[0]
    self.assertEqual(0.5, nested)
    self.assertLoadRefused(path, rf"kp_detector\.{key} is not a tensor \(a list\)")

  def test_key_names_with_escapes_nuls_and_megabytes(self):
    hostile = "\x1b[31m\x00" + "k" * _MIB
    # Unmapped keys are reported before missing ones, so the state dicts need nothing else.
    state = {"kp_detector": {hostile: np.zeros(2, np.float32)}, "generator": {}}
    path = os.path.join(self.directory, "keys.pth")
    torch_writer.write_torch_checkpoint(path, state)
    # The mapping cuts key names to 200 characters, so the rest of the message survives.
    message = self.assertLoadRefused(path,
                                     r"kp_detector\.\\x1b\[31m\\x00kkk+\.\.\. \[2\] has no counterpart in the model")
    self.assertLess(len(message), 400)
    self.assertNotIn("\x1b", message)
    path = os.path.join(self.directory, "top-level-keys.pth")
    torch_writer.write_torch_checkpoint(path, {hostile: 1, "\x1b]0;title\x07": 2})
    self.assertNotIn("\x1b", self.assertLoadRefused(path, r"not a FOMM checkpoint: no 'kp_detector' entry"))


if __name__ == "__main__":
  absltest.main()

"""Tests for fomm_tf.checkpoint.torch_pickle: torch-free checkpoint reading and writing."""

import collections
import json
import os
import pickle
import shutil
import struct
import sys
import tarfile
import tempfile
import zipfile

from absl.testing import absltest
from absl.testing import parameterized
import ml_dtypes
import numpy as np

from fomm_tf.checkpoint import torch_pickle
from fomm_tf.errors import CheckpointError
from tests import torch_writer

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_FIXTURES = os.path.normpath(os.path.join(_REPO_ROOT, "..", "shared", "fixtures"))
_ZIP_FIXTURE = os.path.join(_FIXTURES, "small-official.pth.tar")
_LEGACY_FIXTURE = os.path.join(_FIXTURES, "small-official-legacy.pth.tar")
_KEYS_FILE = os.path.join(_FIXTURES, "small-official-keys.txt")
_MODELS = ("kp_detector", "generator", "discriminator")

# ---------------------------------------------------------------------------
# Hand-written pickle opcodes, independent of the module's writer, for files
# the writer never produces: strided views, storage views, malicious payloads.


def _global(module, name):
  return b"c" + f"{module}\n{name}\n".encode()


def _str(text):
  encoded = text.encode()
  return b"X" + struct.pack("<I", len(encoded)) + encoded


def _int(value):
  return b"J" + struct.pack("<i", value)


def _tuple(*parts):
  return b"(" + b"".join(parts) + b"t"


def _dict(items):
  return b"}(" + b"".join(_str(key) + value for key, value in items) + b"u"


def _pickle(body, protocol=2):
  return b"\x80" + bytes([protocol]) + body + b"."


def _tensor(storage_type, key, numel, offset, size, stride, legacy, view=None, rebuild="_rebuild_tensor_v2"):
  pid_parts = [_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"), _int(numel)]
  if legacy:
    pid_parts.append(view if view is not None else b"N")
  args = [_tuple(*pid_parts) + b"Q", _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride))]
  if rebuild == "_rebuild_tensor_v2":
    args += [b"\x89", _global("collections", "OrderedDict") + b")R"]
  return _global("torch._utils", rebuild) + _tuple(*args) + b"R"


def _write_zip(path, data_pkl, storages=(), folder="archive", byteorder=b"little"):
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr(f"{folder}/data.pkl", data_pkl)
    if byteorder is not None:
      archive.writestr(f"{folder}/byteorder", byteorder)
    for key, raw in storages:
      archive.writestr(f"{folder}/data/{key}", raw)
    archive.writestr(f"{folder}/version", b"3\n")


def _legacy_header(magic=0x1950A86A20F9469CFC6C):
  sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
  return pickle.dumps(magic, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(sys_info, protocol=2)


def _write_legacy(path, main_pickle, storages=(), header=None):
  """storages: (key, element count, raw bytes)."""
  with open(path, "wb") as file:
    file.write(_legacy_header() if header is None else header)
    file.write(main_pickle)
    file.write(pickle.dumps([key for key, _, _ in storages], protocol=2))
    for _, count, raw in storages:
      file.write(struct.pack("<q", count) + raw)


def _read_keys_file():
  """[(full key, shape)] in file order."""
  entries = []
  with open(_KEYS_FILE) as file:
    for line in file:
      if line.strip():
        name, shape, _ = line.rstrip("\n").split("\t")
        entries.append((name, tuple(json.loads(shape))))
  return entries


class _Case(parameterized.TestCase):

  def tempdir(self):
    """A fresh directory removed after the test.

    tempfile rather than absltest's create_tempdir, which needs absl flags
    parsed (they are not under pytest).
    """
    return self.enterContext(tempfile.TemporaryDirectory(prefix="torch_pickle_test_"))

  def assertTreeEqual(self, expected, actual, path="<root>"):
    """Same structure, container types, dtypes, shapes and exact values."""
    if isinstance(expected, (np.ndarray, np.generic)):
      self.assertIsInstance(actual, np.ndarray, path)
      self.assertEqual(np.asarray(expected).dtype.newbyteorder("="), actual.dtype, path)
      self.assertEqual(np.shape(expected), actual.shape, path)
      np.testing.assert_array_equal(np.asarray(expected), actual, err_msg=path)
    elif isinstance(expected, dict):
      self.assertIs(type(actual), dict, path)
      self.assertEqual(list(expected), list(actual), path)
      for key in expected:
        self.assertTreeEqual(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, (list, tuple)):
      self.assertIs(type(actual), type(expected), path)
      self.assertLen(actual, len(expected), path)
      for index, (want, got) in enumerate(zip(expected, actual)):
        self.assertTreeEqual(want, got, f"{path}.{index}")
    else:
      self.assertIs(type(actual), type(expected), path)
      self.assertEqual(expected, actual, path)

  def assertOneLineError(self, regex, function, *args, **kwargs):
    with self.assertRaisesRegex(CheckpointError, regex) as context:
      function(*args, **kwargs)
    self.assertNotIn("\n", str(context.exception))
    return context.exception


class FixtureTest(_Case):

  def test_both_formats_hold_the_keys_file_entries_with_identical_arrays(self):
    from_zip = torch_pickle.read_torch_checkpoint(_ZIP_FIXTURE)
    from_legacy = torch_pickle.read_torch_checkpoint(_LEGACY_FIXTURE)
    entries = _read_keys_file()
    self.assertLen(entries, 297)
    for checkpoint in (from_zip, from_legacy):
      self.assertCountEqual([*_MODELS, "epoch"], list(checkpoint))
      self.assertIs(type(checkpoint["epoch"]), int)
      flat = torch_writer.flatten_state_dict(checkpoint)
      self.assertCountEqual([name for name, _ in entries], list(flat))
      for model in _MODELS:
        self.assertIs(type(checkpoint[model]), dict)
        # Each state dict keeps the module order the keys file lists.
        self.assertEqual([name for name, _ in entries if name.startswith(model + ".")],
                         [f"{model}.{key}" for key in checkpoint[model]])
      for name, shape in entries:
        self.assertEqual(shape, flat[name].shape, name)
        expected_dtype = np.int64 if name.endswith("num_batches_tracked") else np.float32
        self.assertEqual(expected_dtype, flat[name].dtype, name)
        self.assertTrue(flat[name].flags.writeable and flat[name].flags.c_contiguous, name)
    self.assertTreeEqual(from_zip, from_legacy)
    self.assertGreater(np.abs(from_zip["generator"][next(iter(from_zip["generator"]))]).max(), 0)
    self.assertNotIn("torch", sys.modules)

  def test_format_comes_from_content_and_zip_folder_name_is_free(self):
    expected = torch_pickle.read_torch_checkpoint(_ZIP_FIXTURE)
    directory = self.tempdir()
    renamed_zip = os.path.join(directory, "weights.legacy")
    with zipfile.ZipFile(_ZIP_FIXTURE) as source, zipfile.ZipFile(renamed_zip, "w") as target:
      for name in source.namelist():
        target.writestr("any other name/" + name.split("/", 1)[1], source.read(name))
    legacy_copy = os.path.join(directory, "model.zip")
    shutil.copyfile(_LEGACY_FIXTURE, legacy_copy)
    self.assertTreeEqual(expected, torch_pickle.read_torch_checkpoint(renamed_zip))
    self.assertTreeEqual(expected, torch_pickle.read_torch_checkpoint(legacy_copy))

  def test_big_endian_zip_is_byteswapped(self):
    original = {
        "w": np.arange(-6, 6, dtype=np.float32).reshape(3, 4) / 7,
        "n": np.array(-3, np.int64),
        "h": np.array([1.5, -2], np.float16)
    }
    directory = self.tempdir()
    little = os.path.join(directory, "little.pth")
    big = os.path.join(directory, "big.pth")
    torch_writer.write_torch_checkpoint(little, original)
    dtypes = {key: value.dtype for key, value in zip(range(3), original.values())}
    with zipfile.ZipFile(little) as source, zipfile.ZipFile(big, "w") as target:
      for name in source.namelist():
        raw = source.read(name)
        if name.endswith("/byteorder"):
          raw = b"big"
        elif "/data/" in name:
          raw = np.frombuffer(raw, dtypes[int(name.rsplit("/", 1)[1])]).byteswap().tobytes()
        target.writestr(name, raw)
    self.assertTreeEqual(original, torch_pickle.read_torch_checkpoint(big))


class RoundTripTest(_Case):

  def _sample(self):
    grid = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    return {
        "generator":
            collections.OrderedDict([
                ("conv.weight", grid.transpose(2, 0, 1)),  # Not contiguous.
                ("norm.num_batches_tracked", np.array(7, np.int64)),
                ("big_endian", np.arange(5, dtype=">f8")),
            ]),
        "dtypes": {
            name: np.array([-2, 0, 1, 3]).astype(name)
            for name in ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
        },
        "bfloat16":
            np.array([[1.5, -2.25], [0, 3e38]], ml_dtypes.bfloat16),
        "empty":
            np.zeros((0, 3), np.float32),
        "numpy_scalar":
            np.float64(0.25),
        "optimizer_generator": {
            "state": {
                0: {
                    "step": 12,
                    "exp_avg": np.ones((2, 2), np.float32)
                },
                140234: {
                    "step": np.array(3.0, np.float32),
                    "exp_avg_sq": np.full(3, 1e-8)
                }
            },
            "param_groups": [{
                "lr": 2e-4,
                "betas": (0.5, 0.999),
                "eps": 1e-8,
                "amsgrad": False,
                "foreach": None,
                "params": [0, 140234],
                "name": "générateur"
            }],
        },
        "epoch":
            149,
        "numbers": [0, 255, 256, 65535, 65536, -1, -(2**31), 2**31, 2**64 + 5, -(2**80),
                    float("inf"), -0.0],
        "nested": ((), [[]], {}, (1, (2, "x"))),
    }

  @parameterized.parameters(False, True)
  def test_round_trip(self, legacy):
    sample = self._sample()
    path = os.path.join(self.tempdir(), "sample.pth.tar")
    torch_writer.write_torch_checkpoint(path, sample, legacy=legacy)
    with open(path, "rb") as file:
      self.assertEqual(not legacy, file.read(4) == b"PK\x03\x04")
    loaded = torch_pickle.read_torch_checkpoint(path)
    self.assertTreeEqual(sample, loaded)
    self.assertEqual(np.float64, loaded["numpy_scalar"].dtype)
    self.assertEqual((), loaded["numpy_scalar"].shape)

  @parameterized.parameters(False, True)
  def test_rewriting_the_fixture_keeps_every_array(self, legacy):
    original = torch_pickle.read_torch_checkpoint(_LEGACY_FIXTURE)
    path = os.path.join(self.tempdir(), "rewritten.pth.tar")
    torch_writer.write_torch_checkpoint(path, original, legacy=legacy)
    self.assertTreeEqual(original, torch_pickle.read_torch_checkpoint(path))

  def test_zip_layout_matches_torch(self):
    path = os.path.join(self.tempdir(), "small.pth.tar")
    torch_writer.write_torch_checkpoint(path, self._sample())
    with zipfile.ZipFile(path) as archive, open(path, "rb") as file:
      names = archive.namelist()
      self.assertEqual("small.pth/data.pkl", names[0])
      self.assertIn("small.pth/version", names)
      self.assertEqual(b"little", archive.read("small.pth/byteorder"))
      data_pkl = archive.read("small.pth/data.pkl")
      # State dicts go out as OrderedDicts; the optimizer's containers stay plain dicts.
      self.assertIn(b"collections\nOrderedDict\n", data_pkl)
      storage_records = [info for info in archive.infolist() if "/data/" in info.filename]
      self.assertLen(storage_records, 18)
      for info in storage_records:
        self.assertEqual(zipfile.ZIP_STORED, info.compress_type)
        file.seek(info.header_offset)
        header = file.read(30)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        self.assertEqual(0, (info.header_offset + 30 + name_length + extra_length) % 64, info.filename)

  def test_failed_write_leaves_existing_file_and_no_temp_files(self):
    directory = self.tempdir()
    path = os.path.join(directory, "existing.pth.tar")
    torch_writer.write_torch_checkpoint(path, {"a": np.ones(2, np.float32)})
    with open(path, "rb") as file:
      before = file.read()
    self.assertOneLineError(r"existing\.pth\.tar.*'b\.c'.*set", torch_writer.write_torch_checkpoint, path, {
        "a": np.zeros(2, np.float32),
        "b": {
            "c": {1, 2}
        }
    })
    with open(path, "rb") as file:
      self.assertEqual(before, file.read())
    self.assertEqual(["existing.pth.tar"], os.listdir(directory))

  @parameterized.named_parameters(
      ("set", {
          "x": {1}
      }, r"'x' has unsupported type set"),
      ("object_array", {
          "x": np.array([None])
      }, r"'x' has dtype object"),
      ("uint16", {
          "x": np.zeros(2, np.uint16)
      }, r"'x' has dtype uint16"),
      ("complex", {
          "x": np.zeros(2, np.complex64)
      }, r"'x' has dtype complex64"),
      ("tuple_key", {
          (1, 2): 3
      }, r"key of unsupported type tuple"),
      ("bytes", {
          "x": [b"raw"]
      }, r"'x\.0' has unsupported type bytes"),
  )
  def test_unsupported_objects_are_refused(self, obj, regex):
    path = os.path.join(self.tempdir(), "out.pth")
    self.assertOneLineError(regex, torch_writer.write_torch_checkpoint, path, obj)
    self.assertFalse(os.path.exists(path))

  def test_cyclic_object_and_bad_destinations_are_refused(self):
    directory = self.tempdir()
    cyclic = {"a": []}
    cyclic["a"].append(cyclic)
    self.assertOneLineError(r"'a\.0' contains itself", torch_writer.write_torch_checkpoint,
                            os.path.join(directory, "c.pth"), cyclic)
    self.assertOneLineError(r"is a directory", torch_writer.write_torch_checkpoint, directory, {"a": 1})
    self.assertOneLineError(r"does not exist", torch_writer.write_torch_checkpoint,
                            os.path.join(directory, "missing", "x.pth"), {"a": 1})
    self.assertEqual([], os.listdir(directory))


class LayoutTest(_Case):
  """Tensor layouts torch produces but the writer does not: strides, offsets, shared and viewed storages."""

  def setUp(self):
    super().setUp()
    self.directory = self.tempdir()
    self.storage = np.arange(12, dtype=np.float32) * 1.5

  def _read_both(self, zip_body, legacy_body, storages):
    """Reads the same content from a zip and a legacy file; storages: {key: float32 array}."""
    zip_path = os.path.join(self.directory, "layout.pth")
    legacy_path = os.path.join(self.directory, "layout-legacy.pth")
    _write_zip(zip_path, _pickle(zip_body), [(key, array.tobytes()) for key, array in storages.items()])
    _write_legacy(legacy_path, _pickle(legacy_body),
                  [(key, array.size, array.tobytes()) for key, array in storages.items()])
    return torch_pickle.read_torch_checkpoint(zip_path), torch_pickle.read_torch_checkpoint(legacy_path)

  def test_stride_and_offset_are_honoured(self):

    def body(legacy):
      return _dict([
          ("strided", _tensor("FloatStorage", "s", 12, 1, (2, 3), (1, 4), legacy)),
          ("shared", _tensor("FloatStorage", "s", 12, 6, (3,), (2,), legacy)),
          ("broadcast", _tensor("FloatStorage", "s", 12, 11, (2, 2), (0, 0), legacy)),
          ("any_stride_on_length_1", _tensor("FloatStorage", "s", 12, 3, (1, 2), (10**6, 1), legacy)),
          ("v1", _tensor("FloatStorage", "s", 12, 0, (4,), (3,), legacy, rebuild="_rebuild_tensor")),
          ("param", _global("torch._utils", "_rebuild_parameter") +
           _tuple(_tensor("FloatStorage", "s", 12, 2, (), (), legacy), b"\x88",
                  _global("collections", "OrderedDict") + b")R") + b"R"),
      ])

    for loaded in self._read_both(body(False), body(True), {"s": self.storage}):
      np.testing.assert_array_equal([[1.5, 7.5, 13.5], [3.0, 9.0, 15.0]], loaded["strided"])
      np.testing.assert_array_equal([9.0, 12.0, 15.0], loaded["shared"])
      np.testing.assert_array_equal(np.full((2, 2), 16.5, np.float32), loaded["broadcast"])
      np.testing.assert_array_equal([0.0, 4.5, 9.0, 13.5], loaded["v1"])
      self.assertEqual((), loaded["param"].shape)
      self.assertEqual(3.0, loaded["param"])
      self.assertTrue(loaded["strided"].flags.writeable)
      np.testing.assert_array_equal([[4.5, 6.0]], loaded["any_stride_on_length_1"])

  def test_legacy_storage_view(self):
    view = _tuple(_str("view-key"), _int(4), _int(6))
    body = _dict([("t", _tensor("FloatStorage", "root", 12, 1, (2, 2), (2, 1), True, view=view))])
    path = os.path.join(self.directory, "view.pth")
    _write_legacy(path, _pickle(body), [("root", 12, self.storage.tobytes())])
    np.testing.assert_array_equal([[7.5, 9.0], [10.5, 12.0]], torch_pickle.read_torch_checkpoint(path)["t"])

  def test_tensor_larger_than_storage_names_tensor_and_storage(self):

    def body(legacy):
      return _dict([("model", _dict([("layer.weight", _tensor("FloatStorage", "s", 12, 2, (4, 3), (3, 1), legacy))]))])

    zip_path = os.path.join(self.directory, "short.pth")
    legacy_path = os.path.join(self.directory, "short-legacy.pth")
    _write_zip(zip_path, _pickle(body(False)), [("s", self.storage.tobytes())])
    _write_legacy(legacy_path, _pickle(body(True)), [("s", 12, self.storage.tobytes())])
    for path in (zip_path, legacy_path):
      self.assertOneLineError(r"tensor 'model\.layer\.weight' .*needs 14 elements but its storage 's' holds 12",
                              torch_pickle.read_torch_checkpoint, path)

  def test_storage_bytes_shorter_than_declared(self):
    zip_path = os.path.join(self.directory, "short-record.pth")
    _write_zip(zip_path, _pickle(_dict([("t", _tensor("FloatStorage", "7", 12, 0, (12,), (1,), False))])),
               [("7", self.storage.tobytes()[:40])])
    self.assertOneLineError(r"record 'archive/data/7' holds 40 bytes but its storage is declared as 48 bytes",
                            torch_pickle.read_torch_checkpoint, zip_path)
    legacy_path = os.path.join(self.directory, "short-count.pth")
    _write_legacy(legacy_path, _pickle(_dict([("t", _tensor("FloatStorage", "7", 12, 0, (12,), (1,), True))])),
                  [("7", 10, self.storage.tobytes()[:40])])
    self.assertOneLineError(r"storage '7' holds 10 elements but the pickle declares 12",
                            torch_pickle.read_torch_checkpoint, legacy_path)

  def test_missing_storage_data(self):
    body = _pickle(_dict([("t", _tensor("FloatStorage", "3", 12, 0, (12,), (1,), False))]))
    zip_path = os.path.join(self.directory, "no-record.pth")
    _write_zip(zip_path, body)
    self.assertOneLineError(r"no record 'archive/data/3'", torch_pickle.read_torch_checkpoint, zip_path)
    legacy_path = os.path.join(self.directory, "no-data.pth")
    _write_legacy(legacy_path, _pickle(_dict([("t", _tensor("FloatStorage", "3", 12, 0, (12,), (1,), True))])))
    self.assertOneLineError(r"storages \['3'\] are used by tensors but have no data",
                            torch_pickle.read_torch_checkpoint, legacy_path)


class SecurityTest(_Case):

  def setUp(self):
    super().setUp()
    self.directory = self.tempdir()
    self.marker = os.path.join(self.directory, "pwned")

  def _payloads(self):
    """(name, pickle body, global the error must name); each would create self.marker if run."""
    command = f"touch '{self.marker}'"
    code = f"open({self.marker!r}, 'w').close()"
    stack_global = (b"\x8c\x0asubprocess\x94\x8c\x05Popen\x94\x93" +
                    _tuple(b"]" + b"(" + _str("touch") + _str(self.marker) + b"e") + b"R")
    return [
        ("os_system", _global("os", "system") + _tuple(_str(command)) + b"R", "os.system"),
        ("posix_system", _global("posix", "system") + _tuple(_str(command)) + b"R", "posix.system"),
        ("builtins_exec", _global("builtins", "exec") + _tuple(_str(code)) + b"R", "builtins.exec"),
        ("builtins_eval", _global("builtins", "eval") + _tuple(_str(code)) + b"R", "builtins.eval"),
        ("inst_opcode", b"(" + _str(command) + b"ios\nsystem\n", "os.system"),
        ("stack_global", stack_global, "subprocess.Popen"),
        ("torch_lookalike", _global("torch", "load") + _tuple(_str(self.marker)) + b"R", "torch.load"),
    ]

  def test_payload_is_real_when_unpickled_without_restrictions(self):
    # Control: the exec payload does create the marker under the standard unpickler.
    body = dict((name, payload) for name, payload, _ in self._payloads())["builtins_exec"]
    pickle.loads(_pickle(body))
    self.assertTrue(os.path.exists(self.marker))

  def test_malicious_zip_is_refused_without_running_anything(self):
    for name, payload, global_name in self._payloads():
      with self.subTest(name):
        path = os.path.join(self.directory, f"{name}.pth")
        valid_entry = ("ok", _tensor("FloatStorage", "0", 1, 0, (1,), (1,), False))
        body = _dict([valid_entry, ("state", _dict([("evil", payload)]))])
        _write_zip(path, _pickle(body, protocol=4), [("0", np.ones(1, np.float32).tobytes())])
        self.assertOneLineError(rf"{name}\.pth.*refused to load global '{global_name}'.*nothing in the "
                                "file was run", torch_pickle.read_torch_checkpoint, path)
        self.assertFalse(os.path.exists(self.marker))

  def test_malicious_legacy_is_refused_without_running_anything(self):
    for name, payload, global_name in self._payloads():
      for part in ("object", "sys_info", "storage_keys"):
        with self.subTest(f"{name}-{part}"):
          path = os.path.join(self.directory, f"{name}-{part}.pth")
          magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
          sys_info = _pickle(payload, protocol=4) if part == "sys_info" else pickle.dumps({}, protocol=2)
          main = _pickle(_dict([("x", payload)]), protocol=4) if part == "object" else _pickle(b"}")
          with open(path, "wb") as file:
            file.write(magic + sys_info + main)
            file.write(_pickle(payload, protocol=4) if part == "storage_keys" else pickle.dumps([], protocol=2))
          self.assertOneLineError(rf"refused to load global '{global_name}'", torch_pickle.read_torch_checkpoint, path)
          self.assertFalse(os.path.exists(self.marker))

  def test_malicious_magic_number_pickle(self):
    path = os.path.join(self.directory, "magic.pth")
    with open(path, "wb") as file:
      file.write(_pickle(_global("os", "system") + _tuple(_str(f"touch '{self.marker}'")) + b"R"))
    self.assertOneLineError(r"not a PyTorch checkpoint.*refused to load global 'os\.system'",
                            torch_pickle.read_torch_checkpoint, path)
    self.assertFalse(os.path.exists(self.marker))

  @parameterized.named_parameters(
      ("pid_not_tuple", _str("storage") + b"Q", r"unsupported persistent id 'storage'"),
      ("pid_callable_type",
       _tuple(_str("storage"), _global("collections", "OrderedDict"), _str("0"), _str("cpu"), _int(1)) + b"Q",
       r"names no storage type"),
      ("storage_type_called", _global("torch", "FloatStorage") + _tuple(_int(3)) + b"R",
       r"malformed pickle data \(TypeError: .*not callable"),
      ("build_state_on_allowed_global", _global("torch._utils", "_rebuild_tensor_v2") + b"}" + _str("function") +
       b"}s" + b"b", r"malformed pickle data \(TypeError: .*does not accept"),
      ("build_slotstate_on_allowed_global", _global("torch._utils", "_rebuild_tensor_v2") +
       _tuple(b"N", b"}" + _str("function") + b"}s") + b"b", r"malformed pickle data"),
      ("build_on_storage_type", _global("torch", "FloatStorage") + b"}" + _str("dtype_name") + _str("float64") + b"s" +
       b"b", r"malformed pickle data"),
      ("build_on_pending_tensor", _tensor("FloatStorage", "0", 1, 0, (1,),
                                          (1,), False) + b"}" + _str("size") + _tuple(_int(5)) + b"s" + b"b",
       r"malformed pickle data"),
      ("bare_storage_type", _global("torch", "LongStorage"), r"'<root>' holds an unsupported object"),
      ("rebuild_without_storage",
       _global("torch._utils", "_rebuild_tensor") + _tuple(_int(1), _int(0), _tuple(_int(1)), _tuple(_int(1))) + b"R",
       r"tensor '<root>' is built from a int, not a storage"),
  )
  def test_abuse_of_allowed_machinery_is_refused(self, body, regex):
    path = os.path.join(self.directory, "abuse.pth")
    _write_zip(path, _pickle(body))
    self.assertOneLineError(regex, torch_pickle.read_torch_checkpoint, path)
    # Nothing was tampered with: the real fixture still reads.
    self.assertLen(torch_pickle.read_torch_checkpoint(_ZIP_FIXTURE)["kp_detector"], 75)

  def test_resource_claims_are_checked_before_allocating(self):
    # A corrupt memo index would make the C unpickler allocate and zero gigabytes.
    memo_bomb = os.path.join(self.directory, "memo.pth")
    _write_zip(memo_bomb, _pickle(b"}r" + struct.pack("<I", 0x7FFFFFF0)))
    self.assertOneLineError(r"memo index 2147483632 at opcode 2", torch_pickle.read_torch_checkpoint, memo_bomb)
    # A legacy storage claiming 8 GiB in a small file.
    huge_storage = os.path.join(self.directory, "huge-storage.pth")
    body = _dict([("t", _tensor("FloatStorage", "0", 2**31 - 1, 0, (1,), (1,), True))])
    _write_legacy(huge_storage, _pickle(body), [("0", 2**31 - 1, b"\0" * 64)])
    self.assertOneLineError(
        r"truncated: the file ends inside the data of storage '0' \(expected 8589934588 bytes, "
        r"found 64\)", torch_pickle.read_torch_checkpoint, huge_storage)
    # A zero-stride tensor expanding one element to 4 TiB.
    expanded = os.path.join(self.directory, "expanded.pth")
    _write_zip(expanded, _pickle(_dict([("t", _tensor("FloatStorage", "0", 1, 0, (2**20, 2**20), (0, 0), False))])),
               [("0", np.ones(1, np.float32).tobytes())])
    self.assertOneLineError(r"tensor 't' .*expands 1 storage elements to 1099511627776 elements",
                            torch_pickle.read_torch_checkpoint, expanded)
    too_many_dims = os.path.join(self.directory, "dims.pth")
    _write_zip(too_many_dims, _pickle(_dict([("t", _tensor("FloatStorage", "0", 1, 0, (1,) * 65, (1,) * 65, False))])),
               [("0", np.ones(1, np.float32).tobytes())])
    self.assertOneLineError(r"tensor 't' has 65 dimensions", torch_pickle.read_torch_checkpoint, too_many_dims)

  def test_randomly_damaged_files_load_or_raise_one_line_errors(self):
    rng = np.random.default_rng(0)
    outcomes = collections.Counter()
    for source in (_ZIP_FIXTURE, _LEGACY_FIXTURE):
      with open(source, "rb") as file:
        original = file.read()
      for index in range(40):
        damaged = bytearray(original)
        # Half the damage lands in the first 60 kB: headers and pickles, not raw tensor bytes.
        limit = 60000 if index % 2 else len(original)
        for position in rng.integers(0, limit, size=3):
          damaged[position] = rng.integers(0, 256)
        path = os.path.join(self.directory, f"damaged-{index}-{os.path.basename(source)}")
        with open(path, "wb") as file:
          file.write(bytes(damaged))
        try:
          torch_pickle.read_torch_checkpoint(path)
          outcomes["loaded"] += 1
        except CheckpointError as error:
          self.assertNotIn("\n", str(error))
          outcomes["refused"] += 1
    self.assertEqual(80, sum(outcomes.values()))
    self.assertGreater(outcomes["refused"], 20)


class BadFileTest(_Case):

  def setUp(self):
    super().setUp()
    self.directory = self.tempdir()

  def _truncated_copy(self, source, length):
    path = os.path.join(self.directory, f"cut-{length}.pth.tar")
    with open(source, "rb") as file:
      data = file.read(length)
    with open(path, "wb") as file:
      file.write(data)
    return path

  def test_truncated_zip(self):
    size = os.path.getsize(_ZIP_FIXTURE)
    for length in (4, 100, size // 2, size - 100, size - 1):
      with self.subTest(length):
        self.assertOneLineError(rf"cut-{length}\.pth\.tar: truncated or corrupt zip archive \(BadZipFile",
                                torch_pickle.read_torch_checkpoint, self._truncated_copy(_ZIP_FIXTURE, length))

  def test_truncated_legacy(self):
    size = os.path.getsize(_LEGACY_FIXTURE)
    cases = [
        (8, r"cut-8\.pth\.tar: not a PyTorch checkpoint: its first pickle: truncated"),  # Inside the magic number.
        (100, r"\(system info\): truncated"),
        (2000, r"\(pickled object\): truncated: the data ends inside the pickle"),
        (size // 2, r"truncated: the file ends inside the data of storage '\d+' \(expected \d+ bytes"),
        (size - 1, r"truncated: the file ends inside the data of storage"),
    ]
    for length, regex in cases:
      with self.subTest(length):
        self.assertOneLineError(regex, torch_pickle.read_torch_checkpoint,
                                self._truncated_copy(_LEGACY_FIXTURE, length))

  def test_not_checkpoints(self):
    empty = os.path.join(self.directory, "empty.pth")
    open(empty, "wb").close()
    noise = os.path.join(self.directory, "noise.pth")
    with open(noise, "wb") as file:
      file.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes().replace(b"\x80", b"\x81"))
    text = os.path.join(self.directory, "notes.txt")
    with open(text, "w") as file:
      file.write("kp_detector: not weights\n")
    plain_pickle = os.path.join(self.directory, "plain.pkl")
    with open(plain_pickle, "wb") as file:
      pickle.dump({"kp_detector": [1, 2]}, file, protocol=2)
    other_zip = os.path.join(self.directory, "other.zip")
    with zipfile.ZipFile(other_zip, "w") as archive:
      archive.writestr("folder/readme.txt", "hello")
    tar_path = os.path.join(self.directory, "old.pth.tar")
    with tarfile.open(tar_path, "w") as archive:
      archive.add(text, arcname="pickle")
    cases = [
        (empty, r"empty\.pth: file is empty"),
        (noise, r"noise\.pth: not a PyTorch checkpoint: starts with bytes"),
        (text, r"notes\.txt: not a PyTorch checkpoint: starts with bytes 6b 70"),
        (plain_pickle, r"plain\.pkl: not a PyTorch checkpoint: it starts with a pickle of a dict of 1 item, not"),
        (other_zip, r"other\.zip: zip archive has no '<folder>/data\.pkl' records"),
        (tar_path, r"old\.pth\.tar: tar-format checkpoints"),
        (os.path.join(self.directory, "missing.pth"), r"missing\.pth: no such file"),
        (self.directory, r"is a directory, not a checkpoint file"),
    ]
    for path, regex in cases:
      with self.subTest(os.path.basename(path)):
        self.assertOneLineError(regex, torch_pickle.read_torch_checkpoint, path)


class FlattenTest(_Case):

  def test_flatten_keeps_array_entries_in_order(self):
    weight, bias, step = np.ones(2), np.zeros(1), np.array(3)
    nested = {
        "kp_detector": {
            "a.b": weight,
            "c": bias
        },
        "epoch": 4,
        "optimizer": {
            "state": {
                0: {
                    "step": step
                }
            },
            "param_groups": [{
                "lr": 1
            }]
        }
    }
    flat = torch_writer.flatten_state_dict(nested)
    self.assertEqual(["kp_detector.a.b", "kp_detector.c", "optimizer.state.0.step"], list(flat))
    self.assertIs(weight, flat["kp_detector.a.b"])
    self.assertEqual(["m.x"], list(torch_writer.flatten_state_dict({"x": weight}, prefix="m")))

  def test_flatten_errors(self):
    with self.assertRaisesRegex(TypeError, "expects a dict, got list"):
      torch_writer.flatten_state_dict([np.ones(1)])
    self.assertOneLineError(r"same key 'a\.b'", torch_writer.flatten_state_dict, {
        "a.b": np.ones(1),
        "a": {
            "b": np.ones(1)
        }
    })


if __name__ == "__main__":
  absltest.main()

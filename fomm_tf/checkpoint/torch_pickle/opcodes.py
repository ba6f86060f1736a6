"""The scan of a pickle's opcodes that comes before unpickling it.

It refuses, without building anything, what would make CPython's unpickler
exhaust memory, time or the C stack (see _scan_pickle_opcodes).
"""

import pickletools
import struct

from fomm_tf.checkpoint.torch_pickle import limits
from fomm_tf.errors import CheckpointError

# What _scan_pickle_opcodes does with each opcode (see _scan_actions).
_PUT, _GET, _MEMOIZE, _MARK, _POP, _DUP, _INT, _SET, _TUPLE, _KEYED, _IN_PLACE, _OTHER = range(12)
# Stack entries of _scan_pickle_opcodes: the tuple nesting depth (0: not a tuple), or this for a long integer.
_LONG_INT = -1


def _scan_actions():
  """{pickletools opcode: (action, whether it pops to a mark, items it pops (below the mark), items it pushes)}."""
  named = {
      "PUT": _PUT,
      "BINPUT": _PUT,
      "LONG_BINPUT": _PUT,
      "GET": _GET,
      "BINGET": _GET,
      "LONG_BINGET": _GET,
      "MEMOIZE": _MEMOIZE,
      "MARK": _MARK,
      "POP": _POP,
      "DUP": _DUP,
      "EMPTY_SET": _SET,
      "ADDITEMS": _SET,
      "FROZENSET": _SET,
      "EMPTY_TUPLE": _TUPLE,
      "TUPLE": _TUPLE,
      "TUPLE1": _TUPLE,
      "TUPLE2": _TUPLE,
      "TUPLE3": _TUPLE,
      "SETITEM": _KEYED,
      "SETITEMS": _KEYED,
      "DICT": _KEYED,
      "APPEND": _IN_PLACE,
      "APPENDS": _IN_PLACE,
      "BUILD": _IN_PLACE
  }
  named.update(dict.fromkeys(["INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"], _INT))
  actions = {}
  for opcode in pickletools.opcodes:
    before = opcode.stack_before
    if pickletools.markobject in before:
      popped = (True, before.index(pickletools.markobject))
    else:
      popped = (False, len(before))
    actions[opcode] = (named.get(opcode.name, _OTHER), *popped, len(opcode.stack_after))
  return actions


_SCAN_ACTIONS = _scan_actions()


def _scan_pickle_opcodes(stream, source, max_opcodes):  # pylint: disable=too-many-branches,too-many-statements
  """Walks the opcodes of one pickle without building anything, refusing what would exhaust memory, time or stack.

  CPython's unpickler trusts the stream in ways a hostile file can exploit
  before any of our code sees an object:
  * it grows (and zeroes) its memo table up to the largest index a PUT names.
    Writers number memo entries from 0 in order, so an index never exceeds
    the opcode count;
  * it hashes dict keys, and hashing a tuple recurses in C without a depth
    check: a key nested a million deep (a 1 MB pickle) overflows the C stack
    and kills the process. Tuples are immutable, so the scan knows each one's
    depth exactly. Keys must be atoms anyway (str, int64, ...): tuple and long
    integer keys can be chosen to share a hash, each insertion then costing
    time linear in the dict size;
  * an integer pickled as a long decimal string, or printed, takes quadratic time;
  * each opcode may make an object, so their count bounds the memory.
  Sets never occur in checkpoints (they pickle as protocol-4 opcodes or a
  refused global) and are refused outright, as their items are hashed too.

  The stack is simulated with one int per entry (see _LONG_INT), the marks as
  stack heights, and the memo as a bytearray indexed like the real one (a dict
  of as many entries would take ~70 bytes each): entry + 2, 0 where unset.
  """
  stack, marks = [], []
  memo, memo_count = bytearray(), 0

  def fail(problem):
    raise CheckpointError(f"{source}: malformed pickle data: {problem} at opcode {index} (corrupt or hostile file)")

  def pop(count):
    if count > len(stack):
      fail("stack underflow")
    if not count:
      return []
    items = stack[-count:]
    del stack[-count:]
    return items

  index = 0
  for index, (opcode, argument, _) in enumerate(pickletools.genops(stream)):
    if index >= max_opcodes:
      fail(f"more than {max_opcodes} opcodes")
    action, marked, below, pushed = _SCAN_ACTIONS[opcode]
    if action == _PUT or action == _GET:  # pylint: disable=consider-using-in
      if argument > index:
        fail(f"memo index {argument}")
      if action == _GET:
        stack.append(memo[argument] - 2 if argument < len(memo) and memo[argument] else 0)
        continue
      if argument >= len(memo):
        memo.extend(bytes(argument + 1 - len(memo)))
      memo_count += not memo[argument]
      memo[argument] = (stack[-1] if stack else 0) + 2
      continue
    if action == _INT:
      bits = abs(argument).bit_length()
      if bits > limits.MAX_INT_BITS:
        fail(f"an integer of {bits} bits")
      stack.append(_LONG_INT if bits > limits.MAX_KEY_INT_BITS else 0)
      continue
    if action == _MARK:
      marks.append(len(stack))
      if len(marks) > limits.MAX_NESTING:
        fail(f"marks nested more than {limits.MAX_NESTING} deep")
      continue
    if action == _MEMOIZE:  # CPython puts at the count of entries set so far.
      slot = memo_count
      if slot >= len(memo):
        memo.extend(bytes(slot + 1 - len(memo)))
      memo_count += not memo[slot]
      memo[slot] = (stack[-1] if stack else 0) + 2
      continue
    if action == _DUP:
      stack.append(stack[-1] if stack else 0)
      continue
    if action == _POP:
      # Like CPython, POP right after a MARK discards the mark.
      if marks and marks[-1] == len(stack):
        marks.pop()
      else:
        pop(1)
      continue
    if action == _SET:
      fail("a set (checkpoints hold none)")
    if marked:
      if not marks:
        fail("no mark on the stack")
      height = marks.pop()
      items = stack[height:]
      del stack[height:]
      base = pop(below)
    else:
      items = pop(below)
      base = items[:1]
    if action == _KEYED:
      keys = items[1:2] if opcode.name == "SETITEM" else items[0::2]
      for key in keys:
        if key > 0:
          fail("a dict key is a tuple")
        if key == _LONG_INT:
          fail(f"a dict key is an integer of more than {limits.MAX_KEY_INT_BITS} bits")
      stack.append(base[0] if base else 0)
    elif action == _TUPLE:
      depth = 1 + max([item for item in items if item > 0], default=0)
      if depth > limits.MAX_NESTING:
        fail(f"tuples nested more than {limits.MAX_NESTING} deep")
      stack.append(depth)
    elif action == _IN_PLACE:
      stack.append(base[0] if base else 0)
    elif pushed:
      stack.extend([0] * pushed)


def scan_pickle(stream, stream_size, source, max_opcodes):
  """Checks the next pickle in `stream` with _scan_pickle_opcodes, then rewinds."""
  start = stream.tell()
  try:
    _scan_pickle_opcodes(stream, source, max_opcodes)
  except CheckpointError:
    raise
  except (ValueError, struct.error) as error:
    if stream.tell() >= stream_size:
      raise CheckpointError(f"{source}: truncated: the data ends inside the pickle ({error})") from error
    raise CheckpointError(f"{source}: malformed pickle data ({error})") from error
  stream.seek(start)

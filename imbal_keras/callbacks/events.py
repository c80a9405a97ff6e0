"""A TensorBoard event file for blocks of scalar rows: one event per step, encoded with numpy.

`tf.summary.write` costs several microseconds per value, as much as recording the value in the
train step. Every scalar event of a recorder has the same layout except for the step and the float
values, so the serialized `Summary` of a row is a fixed byte template with 4 float bytes per tag
filled in; `tf.io.TFRecordWriter` adds the record framing in C++. That is well under a microsecond
per value, so events are written on the training thread when the buffers are read back.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time

import numpy as np
import tensorflow as tf
from tensorboard.plugins.scalar import metadata as scalar_metadata

# TensorProto of a float scalar: dtype DT_FLOAT (field 1), empty shape (field 2), then field 5
# (packed float_val) holding 4 bytes, which follow this header.
__all__ = ["ScalarEventFile"]

_FLOAT_TENSOR_HEADER = b"\x08\x01\x12\x00\x2a\x04"
_FILE_IDS = itertools.count()


class ScalarEventFile:
    """Appends scalars and histogram summaries to a new event file in `directory`.

    Args:
      directory: created if missing; TensorBoard reads every `*tfevents*` file in it.
      tags: the tags of one scalar row, in column order.
      descriptions: each tag's description (TensorBoard shows it beside the chart), or None for none.
    """

    def __init__(self, directory: str, tags: list[str], descriptions: list[str] | None = None):
        os.makedirs(directory, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_FILE_IDS)}.v2"
        self._records = tf.io.TFRecordWriter(os.path.join(directory, name))
        self._records.write(_event(0, _field(3, b"brain.Event:2")))  # file_version
        values = []
        for tag, description in zip(tags, descriptions or [None] * len(tags), strict=True):
            metadata = scalar_metadata.create_summary_metadata(display_name=None, description=description)
            metadata = metadata.SerializeToString()
            value = _field(1, tag.encode()) + _field(9, metadata) + _field(8, _FLOAT_TENSOR_HEADER + b"\0" * 4)
            values.append(_field(1, value))
        self._template = np.frombuffer(b"".join(values), np.uint8)
        # Offset of each tag's 4 float bytes: each value ends with them.
        self._float_offsets = np.cumsum([len(v) for v in values]) - 4

    def write_scalars(self, steps: np.ndarray, values: np.ndarray) -> None:
        """One event per step: `values` (N, len(tags)) at `steps` (N,)."""
        rows = np.tile(self._template, (len(steps), 1))
        floats = np.ascontiguousarray(values, "<f4").view(np.uint8).reshape(len(steps), -1, 4)
        for column, offset in enumerate(self._float_offsets):
            rows[:, offset : offset + 4] = floats[:, column]
        for step, summary in zip(steps.tolist(), rows, strict=True):
            self._records.write(_event(step, _field(5, summary.tobytes())))

    def write_summary(self, step: int, summary) -> None:
        """Writes a `Summary` proto (for example a histogram) at `step`."""
        self._records.write(_event(step, _field(5, summary.SerializeToString())))

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        self._records.close()


def _event(step: int, payload: bytes) -> bytes:
    """An `Event` with wall_time (field 1), step (field 2) and one more encoded field."""
    return b"\x09" + struct.pack("<d", time.time()) + b"\x10" + _varint(step) + payload


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


__all__ = ["ScalarEventFile"]

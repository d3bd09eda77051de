"""The byte channels on their own (mplogger._ipc._channel): frames torn across reads, a writer killed in
the middle of a frame, a full pipe, a reader that is gone, and the named pipe's spilled frames."""

from __future__ import annotations

import multiprocessing
import os
import signal
import struct

import pytest

from mplogger._ipc._channel import (PIPE_BUF, FifoReader, FifoWriter, FrameReader, QueueReader, QueueWriter, frame,
                               remove_fifo_folder)
from mplogger._ipc._messages import LogBatch

from conftest import wait_for


def pipe_reader():
    read_end, write_end = os.pipe()
    return FrameReader(read_end), write_end


def fine() -> None:
    """A ``ready`` check that finds nothing wrong."""


def test_a_frame_torn_across_reads_is_handed_out_once_whole():
    reader, write_end = pipe_reader()
    data = frame({"rows": list(range(100))})
    os.write(write_end, data[:7])
    assert reader.read_available() == []  # a header and a few bytes: nothing yet
    os.write(write_end, data[7:-1])
    assert reader.read_available() == []
    os.write(write_end, data[-1:] + frame("next") + frame("last")[:3])
    assert reader.read_available() == [{"rows": list(range(100))}, "next"]
    os.write(write_end, frame("last")[3:])
    assert reader.read_available() == ["last"]


def test_the_long_header_form_is_read():
    reader, write_end = pipe_reader()
    payload = frame("long")[4:]
    os.write(write_end, struct.pack("!i", -1) + struct.pack("!Q", len(payload))[:5])
    assert reader.read_available() == []  # the long header itself is torn
    os.write(write_end, struct.pack("!Q", len(payload))[5:] + payload)
    assert reader.read_available() == ["long"]


def test_a_writer_killed_mid_frame_leaves_the_frames_before_it_and_an_eof():
    reader, write_end = pipe_reader()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write_end, frame("whole") + frame("torn" * 1000)[:50])
        os.kill(os.getpid(), signal.SIGKILL)
    os.close(write_end)
    os.waitpid(child, 0)
    messages = []
    wait_for(lambda: messages.extend(reader.read_available()) or reader.eof, what="the end of the pipe")
    assert messages == ["whole"]  # the torn frame is never handed out


def test_a_queue_writer_waits_bounded_on_a_full_queue_and_says_so():
    queue = multiprocessing.get_context("spawn").Queue(maxsize=2)
    writer = QueueWriter(queue)
    writer.put("one", fine, 1.0)
    writer.put("two", fine, 1.0)
    with pytest.raises(TimeoutError, match="the reader took nothing for 0.5 s"):
        writer.put("three", fine, 0.5)
    reader = QueueReader(queue)
    assert reader.read_available() == ["one", "two"]  # each taken frees its place again
    writer.put("three", fine, 1.0)
    assert reader.read_available() == ["three"]


def test_a_queue_writer_on_a_full_pipe_gives_up_when_its_reader_is_gone():
    queue = multiprocessing.get_context("spawn").Queue()
    writer = QueueWriter(queue)
    big = "x" * (1 << 16)
    gone = {"now": False}

    def ready() -> None:
        if gone["now"]:
            raise BrokenPipeError("the reader died")

    for _ in range(64):  # fill the pipe: nothing reads it
        try:
            writer.put(big, fine, 0.3)
        except TimeoutError:
            break
    else:
        pytest.fail("the pipe never filled")
    gone["now"] = True
    with pytest.raises(BrokenPipeError, match="the reader died"):
        writer.put(big, ready, 30.0)  # not 30 s: the first check between waits gives up


def test_a_message_larger_than_the_pipe_crosses_it_whole_while_read():
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    writer = QueueWriter(queue)
    payload = os.urandom(3 << 20)  # larger than any pipe's capacity
    child = os.fork()
    if child == 0:  # pragma: no cover (the child writes)
        try:
            writer.put(LogBatch("run1", payload, 1, os.getpid(), 0), fine, 30.0)
        finally:
            os._exit(0)
    reader = QueueReader(queue)
    got = []
    wait_for(lambda: got.extend(reader.read_available()) or got, timeout=30, what="the large message")
    os.waitpid(child, 0)
    (message,) = got
    assert message.payload == payload and message.run_id == "run1"


def test_the_named_pipe_spills_what_one_atomic_write_cannot_carry():
    reader = FifoReader()
    writer = FifoWriter(reader.path)
    try:
        small, large = "s" * 10, "L" * (4 * PIPE_BUF)
        writer.put(small, fine, 5.0)
        writer.put(large, fine, 5.0)
        got = []
        wait_for(lambda: got.extend(reader.read_available()) or len(got) >= 2, what="both messages")
        assert got == [small, large]
        assert not [name for name in os.listdir(os.path.dirname(reader.path)) if name.startswith("spill-")]
    finally:
        writer.close()
        reader.close()
        remove_fifo_folder(os.path.dirname(reader.path))


def test_a_named_pipe_without_its_reader_is_a_broken_pipe_at_once():
    reader = FifoReader()
    path = reader.path
    reader.close()
    with pytest.raises(BrokenPipeError, match="is gone"):
        FifoWriter(path).put("late", fine, 5.0)
    remove_fifo_folder(os.path.dirname(path))

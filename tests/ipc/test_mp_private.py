"""The standard library's private parts mplogger relies on (mplogger._ipc._mp_private) still mean what
they meant, in the Python this runs on."""

from __future__ import annotations

import multiprocessing
import os
import stat

from mplogger._ipc._mp_private import (close_queue, disown_child, pool_processes, queue_pipe, queue_semaphore,
                                       resource_tracker_fd, unlink_semaphore_names)


def test_a_queues_pipe_ends_carry_what_the_queue_carries():
    queue = multiprocessing.get_context("spawn").Queue()
    reader, writer = queue_pipe(queue)
    assert reader.fileno() != writer.fileno()
    writer.send_bytes(b"frame")
    assert reader.poll(5) and reader.recv_bytes() == b"frame"
    queue.close()


def test_a_queues_semaphore_counts_its_free_places():
    queue = multiprocessing.get_context("spawn").Queue(maxsize=3)
    semaphore = queue_semaphore(queue)
    assert all(semaphore.acquire(False) for _ in range(3)) and not semaphore.acquire(False)
    queue.close()


def test_a_pools_processes_are_its_live_workers():
    with multiprocessing.get_context("fork").Pool(2) as pool:
        processes = pool_processes(pool)
        assert len(processes) == 2 and all(process.is_alive() for process in processes)
        assert {process.pid for process in processes} >= set(pool.map(_pid, range(8)))


def _pid(_: int) -> int:
    return os.getpid()


def test_a_disowned_child_is_not_joined_at_exit():
    process = multiprocessing.get_context("fork").Process(target=os.getpid)
    process.start()
    assert process in multiprocessing.active_children()
    disown_child(process)
    assert process not in multiprocessing.active_children()
    process.join(10)


def test_closing_a_queue_closes_both_of_its_pipe_ends():
    queue = multiprocessing.get_context("spawn").Queue()
    close_queue(queue)
    assert all(end.closed for end in queue_pipe(queue))


def test_a_queues_semaphore_names_can_be_unlinked_while_it_still_works():
    queue = multiprocessing.get_context("spawn").Queue(maxsize=2)
    names = {lock._semlock.name for lock in (queue._rlock, queue._wlock, queue._sem) if lock is not None}
    shm = "/dev/shm"
    assert names and all(os.path.exists(os.path.join(shm, "sem." + name.lstrip("/"))) for name in names)
    unlink_semaphore_names(queue)
    assert not any(os.path.exists(os.path.join(shm, "sem." + name.lstrip("/"))) for name in names)
    semaphore = queue_semaphore(queue)
    assert semaphore.acquire(False)  # still a semaphore: only its name is gone
    semaphore.release()


def test_the_resource_trackers_fd_is_the_pipe_it_reads():
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    fd = resource_tracker_fd()
    assert isinstance(fd, int) and stat.S_ISFIFO(os.fstat(fd).st_mode)  # the write end of its pipe

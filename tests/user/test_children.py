"""Child processes logging into the parent's run, under every start method (``mplogger._user._child``)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys

import pytest

import mplogger

from conftest import START_METHODS, run_script, script_env


def log_rows(run, worker: int, count: int = 50) -> int:
    for i in range(count):
        run.log({"worker": worker, "i": i})
    return worker


def log_wide(run) -> None:
    run.log({f"key_{k:03d}": k * 0.5 for k in range(400)})  # far more than one atomic write


def log_with_step(run) -> str:
    try:
        run.log({"x": 1}, step=5)
    except ValueError as exc:
        return str(exc)
    return "no error"


def log_global(count: int) -> None:
    for i in range(count):
        mplogger.log({"from_global": i})


def set_config_when_told(run, told, done) -> None:
    told.wait(30)
    run.config["child_key"] = 3
    run.config.update({"a": 10}, allow_val_change=True)
    done.set()


def change_a_set_key(run) -> str:
    run.config["lr"] = 0.5  # allowed: the parent's run was started with allow_val_change=True
    return "changed"


def send_late(run, finished, sent) -> None:
    finished.wait(30)
    run._marker = "/nonexistent"  # as if its check of the finished marker ran just before the parent finished
    run.config["late"] = 1
    run.log({"late_row": 1})
    sent.set()


def rows_by_worker(root: str, run_id: str) -> dict:
    found: dict = {}
    for row in mplogger.Api(root).run(run_id).history():
        if "worker" in row:
            found.setdefault(row["worker"], []).append(row["i"])
    return found


@pytest.fixture(params=START_METHODS)
def ctx(request):
    return multiprocessing.get_context(request.param)


def test_process_pool_and_executor_children_log_into_the_run(root, ctx):
    run = mplogger.init(dir=root)
    run.log({"parent": 1})
    processes = [ctx.Process(target=log_rows, args=(run, k)) for k in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    with ctx.Pool(2) as pool:  # __exit__ terminates the workers: written-through rows survive
        assert pool.starmap(log_rows, [(run, k) for k in range(10, 14)]) == [10, 11, 12, 13]
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as executor:
        assert list(executor.map(log_rows, [run, run], [20, 21])) == [20, 21]
    run.log({"parent": 2})
    run.finish()
    found = rows_by_worker(root, run.id)
    assert sorted(found) == [0, 1, 10, 11, 12, 13, 20, 21]
    assert all(values == list(range(50)) for values in found.values())
    stored = mplogger.Api(root).run(run.id)
    assert stored.rows == 402 and [r["_step"] for r in stored.history(keys=["parent"])] == [0, 1]


def test_a_row_larger_than_an_atomic_write_arrives(root, ctx):
    run = mplogger.init(dir=root)
    child = ctx.Process(target=log_wide, args=(run,))
    child.start()
    child.join(60)
    run.finish()
    (row,) = mplogger.Api(root).run(run.id).history()
    assert len([k for k in row if not k.startswith("_")]) == 400 and row["key_399"] == 399 * 0.5


def test_step_from_a_child_is_refused_clearly(root):
    run = mplogger.init(dir=root)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        message = pool.apply(log_with_step, (run,))
    assert "step" in message and "child process" in message and run.id in message
    run.finish()


def test_forked_child_logs_through_the_inherited_globals(root):
    run = mplogger.init(dir=root)
    child = multiprocessing.get_context("fork").Process(target=log_global, args=(30,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    mplogger.log({"after": 1})
    run.finish()
    rows = mplogger.Api(root).run(run.id).history()
    assert [r["from_global"] for r in rows if "from_global" in r] == list(range(30))
    assert rows[-1]["after"] == 1


def test_children_after_the_parent_finished_warn_and_nothing_hangs(root):
    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.finish()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(log_rows, (run, 7, 5)) == 7
    assert mplogger.Api(root).run(run.id).rows == 1


def test_fork_children_that_ignore_mplogger_and_a_child_with_its_own_run(script, root):
    """Forked children that never log exit cleanly (no inherited lock, no second atexit stop);
    a forked child that calls init() gets its own run and manager."""
    body = """
        import os, sys, threading, mplogger
        root = sys.argv[1]
        run = mplogger.init(dir=root, name="parent")
        stop = threading.Event()
        def busy():
            while not stop.is_set():
                run.log({"from_thread": 1})
        thread = threading.Thread(target=busy)
        thread.start()
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                sys.exit(0)  # runs atexit in the child: must not stop the parent's manager
            assert os.waitpid(pid, 0)[1] == 0
        stop.set()
        thread.join()
        pid = os.fork()
        if pid == 0:
            own = mplogger.init(dir=root, name="child-own")
            own.log({"mine": 1})
            own.finish()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        run.log({"last": 1})
        run.finish()
        print("PARENT", run.id)
    """
    result = run_script(script(body), root, timeout=120)
    assert result.returncode == 0, result.stderr
    api = mplogger.Api(root)
    parent = api.run(result.stdout.split("PARENT ")[1].split()[0])
    assert parent.state == "finished" and parent.summary["last"] == 1
    (own,) = [r for r in api.runs() if r.name == "child-own"]
    assert own.state == "finished" and own.summary == {"mine": 1} and own.id != parent.id


def test_ddp_style_processes_make_one_group(script, root):
    body = """
        import sys, mplogger
        rank = int(sys.argv[2])
        run = mplogger.init(dir=sys.argv[1], group="exp1", job_type="train", name=f"rank{rank}")
        for i in range(100):
            run.log({"rank": rank, "i": i})
    """
    path = script(body)
    import subprocess

    procs = [subprocess.Popen([sys.executable, str(path), root, str(rank)], env=script_env())
             for rank in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    group = mplogger.Api(root).runs(group="exp1")
    assert sorted(r.name for r in group) == ["rank0", "rank1", "rank2"]
    assert all(r.rows == 100 and r.state == "finished" for r in group)
    assert mplogger.Api(root).runs(group="other") == []


def log_until_told(run, ready, stop, counts):
    ready.set()
    i = 0
    while not stop.is_set():
        run.log({"child_i": i})
        i += 1
    counts.put(i)


def test_parent_finishing_while_a_child_logs(root):
    """finish() succeeds, and at most the one row in flight at that moment is not stored."""
    ctx = multiprocessing.get_context("fork")
    run = mplogger.init(dir=root)
    ready, stop, counts = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=log_until_told, args=(run, ready, stop, counts))
    child.start()
    assert ready.wait(30)
    run.log({"parent": 1})
    run.finish()
    stop.set()
    logged = counts.get(timeout=60)
    child.join(60)
    stored = mplogger.Api(root).run(run.id)
    assert stored.state == "finished"
    child_rows = [r["child_i"] for r in stored.history(keys=["child_i"])]
    assert child_rows == list(range(len(child_rows))) and len(child_rows) <= logged


# --- config changed in a child ------------------------------------------------------------------
def test_a_childs_config_change_is_merged_with_the_parents(root, ctx):
    run = mplogger.init(dir=root, config={"a": 1})
    told, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=set_config_when_told, args=(run, told, done))
    child.start()
    run.config["parent_key"] = 2  # after the child got the run: its snapshot does not have it
    run.flush()
    told.set()
    assert done.wait(30)
    child.join(60)
    run.config["late"] = 4  # the parent's whole config again: the child's keys stay
    run.finish()
    assert mplogger.Api(root).run(run.id).config == {"a": 10, "parent_key": 2, "child_key": 3, "late": 4}


def test_a_child_follows_the_runs_allow_val_change(root):
    run = mplogger.init(dir=root, config={"lr": 0.1}, allow_val_change=True)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(change_a_set_key, (run,)) == "changed"
    run.finish()
    assert mplogger.Api(root).run(run.id).config == {"lr": 0.5}


def test_a_forked_childs_module_level_config_change_is_stored(root):
    run = mplogger.init(dir=root, config={"a": 1})
    child = multiprocessing.get_context("fork").Process(target=mplogger.config.update, args=({"b": 2},))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    run.finish()
    assert mplogger.Api(root).run(run.id).config == {"a": 1, "b": 2}


def test_a_config_copy_or_pickle_is_a_plain_dict_of_the_values(root):
    import copy
    import pickle

    run = mplogger.init(dir=root, config={"a": [1, 2]})
    for made in (copy.copy(run.config), copy.deepcopy(run.config), pickle.loads(pickle.dumps(run.config))):
        assert made == {"a": [1, 2]} and type(made) is dict
        made["b"] = 1  # a copy: the run's config does not change
    run.finish()
    assert mplogger.Api(root).run(run.id).config == {"a": [1, 2]}


def test_a_childs_change_that_arrives_after_the_finish_is_dropped_not_a_later_error(root):
    ctx = multiprocessing.get_context("spawn")
    run = mplogger.init(dir=root)
    finished, sent = ctx.Event(), ctx.Event()
    child = ctx.Process(target=send_late, args=(run, finished, sent))
    child.start()
    run.finish()
    finished.set()
    assert sent.wait(30)
    child.join(60)
    again = mplogger.init(dir=root, id=run.id, resume="allow")
    again.log({"b": 1})
    again.finish()  # no "run is not open" error from the late messages
    stored = mplogger.Api(root).run(run.id)
    assert stored.config == {} and [row.get("b") for row in stored.history()] == [1]

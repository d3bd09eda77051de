"""Console capture (``mplogger._user._console``): what a run's process prints is stored with the run."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

import mplogger

from conftest import run_script, script_env, wait_for

PRINTS = """
    import logging, os, sys, mplogger
    logging.basicConfig(level=logging.INFO)  # a handler holding sys.stderr before init()
    run = mplogger.init(dir=sys.argv[1])
    print("hello from print")
    sys.stdout.write("partial ")
    sys.stdout.write("line\\n")
    logging.info("from logging")
    for i in range(5):
        sys.stderr.write(f"\\rprogress {i * 25}%")
    sys.stderr.write("\\n")
    os.write(1, b"from C level\\n")
    print("no newline at the end", end="")
    run.finish()
    print("after finish")
    print("RUN", run.id)
"""


def _run(result) -> str:
    """The id of the run a script printed as its last line."""
    assert result.returncode == 0, result.stderr
    return result.stdout.split("RUN ")[1].split()[0]


def test_wrap_captures_print_write_logging_and_progress_bars(script, root):
    result = run_script(script(PRINTS), root)
    run = mplogger.Api(root).run(_run(result))
    assert run.output() == ["hello from print", "partial line", "INFO:root:from logging", "progress 100%",
                            "no newline at the end"]
    streams = {line: stream for _, stream, line in run.output(meta=True)}
    assert streams["hello from print"] == "stdout" and streams["INFO:root:from logging"] == "stderr"
    with open(os.path.join(run.dir, "output.log")) as log_file:
        assert log_file.read().splitlines() == run.output()
    assert "hello from print" in result.stdout and "progress 100%" in result.stderr  # still shown


def test_redirect_captures_output_written_by_c_code(script, root):
    result = run_script(script(PRINTS), root, env=script_env(MPLOGGER_CONSOLE="redirect"))
    lines = mplogger.Api(root).run(_run(result)).output()
    assert "from C level" in lines and "hello from print" in lines and "after finish" not in lines
    assert "from C level" in result.stdout


def test_console_off_captures_nothing(script, root):
    result = run_script(script(PRINTS), root, env=script_env(MPLOGGER_CONSOLE="off"))
    assert mplogger.Api(root).run(_run(result)).output() == []


def test_output_is_capped_with_a_note(root):
    run = mplogger.init(dir=root, settings={"console_lines": 5})
    for i in range(20):
        print(f"line {i}")
    run.finish()
    lines = mplogger.Api(root).run(run.id).output()
    assert lines[:5] == [f"line {i}" for i in range(5)] and "15 more lines" in lines[5] and len(lines) == 6


def test_capture_stops_cleanly_at_finish(root):
    write = sys.stdout.write
    run = mplogger.init(dir=root)
    assert sys.stdout.write is not write
    print("during")
    run.finish()
    print("after")
    assert "write" not in vars(sys.stdout) or sys.stdout.write == write
    assert mplogger.Api(root).run(run.id).output() == ["during"]


def test_a_crashed_script_keeps_what_it_printed(script, root):
    body = """
        import os, signal, sys, mplogger
        run = mplogger.init(dir=sys.argv[1])
        for i in range(3):
            print(f"before the crash {i}")
        run.flush()
        print("RUN", run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
    result = subprocess.run([sys.executable, str(script(body)), root], capture_output=True, text=True,
                            timeout=60, env=script_env())
    assert result.returncode == -signal.SIGKILL
    run_id = result.stdout.split("RUN ")[1].split()[0]
    stored = wait_for(lambda: (lambda r: r if r.state == "crashed" else None)(mplogger.Api(root).run(run_id)),
                      10, "the run marked crashed")
    assert stored.output() == [f"before the crash {i}" for i in range(3)]


def child_prints(run, tag):
    print(f"printed by child {tag}")
    run.log({"child": tag})


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_output_of_child_processes_logging_into_the_run_is_captured(root, method):
    ctx = multiprocessing.get_context(method)
    run = mplogger.init(dir=root)
    print("printed by the parent")
    child = ctx.Process(target=child_prints, args=(run, method))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    run.finish()
    lines = mplogger.Api(root).run(run.id).output()
    assert lines.count(f"printed by child {method}") == 1 and "printed by the parent" in lines


def test_undecodable_output_is_stored_readably_and_never_fails_the_run(root):
    run = mplogger.init(dir=root)
    print("before")
    print("skipping file data_\udcff.csv", file=sys.stderr)
    print("after")
    run.flush()
    run.finish()
    assert mplogger.Api(root).run(run.id).output() == ["before", "skipping file data_\\udcff.csv", "after"]


def test_stdout_that_is_stderr_is_captured_once_and_unwrapped_after(root):
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        run = mplogger.init(dir=root)
        print("one line")
        run.finish()
        assert "write" not in vars(sys.stderr)
    finally:
        sys.stdout = saved
    assert mplogger.Api(root).run(run.id).output() == ["one line"]


def test_redirect_when_the_terminal_reader_goes_away_does_not_hang(script, root, tmp_path):
    """stdout piped into a reader that exits (like `| head`): no hang, the run is stored."""
    body = """
        import sys, mplogger
        run = mplogger.init(dir=sys.argv[1])
        try:
            for i in range(200000):
                print(f"line {i}")
        except BrokenPipeError:
            pass
        run.finish()
        sys.stderr.write("RUN " + run.id + "\\n")
    """
    path = script(body)
    command = f"{sys.executable} {path} {root} | head -c 20 > /dev/null"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120,
                            env=script_env(MPLOGGER_CONSOLE="redirect"))
    run_id = result.stderr.split("RUN ")[1].split()[0]
    stored = mplogger.Api(root).run(run_id)
    assert stored.state == "finished" and stored.output()[:2] == ["line 0", "line 1"]

"""tests/spawn.py: a forked child starts as ``python SCRIPT ARGS`` or ``python -c CODE ARGS`` would."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import spawn

PROBE = """
import json, os, sys, torch
print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "env": os.environ.get("PROBE"),
                  "threads": torch.get_num_threads(), "main": __name__, "file": globals().get("__file__"),
                  "fresh": [m for m in ("engine", "train_small", "conftest", "spawn") if m in sys.modules],
                  "tty": sys.stdout.isatty(), "line_buffered": sys.stdout.line_buffering}))
"""


def probe(tmp_path, forked, *args, **kwargs):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = dict(os.environ, PROBE="yes", OMP_NUM_THREADS="1")
    runner = spawn.run if forked else subprocess.run
    done = runner([sys.executable, str(script), *args], cwd=tmp_path, env=env, capture_output=True,
                  text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_forked_script_sees_what_a_fresh_one_sees(tmp_path):
    forked, fresh = probe(tmp_path, True, "a", "--b"), probe(tmp_path, False, "a", "--b")
    assert forked == fresh
    assert forked["argv"][1:] == ["a", "--b"] and forked["path0"] == str(tmp_path)
    assert forked["env"] == "yes" and forked["threads"] == 1 and forked["main"] == "__main__"
    assert forked["fresh"] == [] and forked["tty"] is False


def test_exit_statuses_are_the_interpreters():
    cases = {"raise SystemExit(3)": 3, "import sys; sys.exit('bye')": 1, "1/0": 1, "pass": 0,
             "raise KeyboardInterrupt": -signal.SIGINT,
             "import os; os._exit(130)": 130}
    for code, status in cases.items():
        done = spawn.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == status, (code, done.stderr)
    done = spawn.run([sys.executable, "-c", "1/0"], capture_output=True, text=True, timeout=60)
    assert "ZeroDivisionError" in done.stderr and done.stderr.startswith("Traceback")
    done = spawn.run([sys.executable, "-c", "import sys; sys.exit('bye')"], capture_output=True, text=True)
    assert done.stderr == "bye\n"


def test_signals_reach_the_child_and_atexit_runs(tmp_path):
    code = ("import atexit, sys, time; atexit.register(lambda: print('atexit', flush=True)); "
            "print('ready', flush=True); time.sleep(60)")
    proc = spawn.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)                         # KeyboardInterrupt, then atexit
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT and out == "atexit\n" and "KeyboardInterrupt" in err
    proc = spawn.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    time.sleep(0.2)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM


def test_timeout_kills_the_child(tmp_path):
    code = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(600)"
    with pytest.raises(subprocess.TimeoutExpired):
        spawn.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, timeout=2)
    pid = int((tmp_path / "pid").read_text())
    for _ in range(100):                         # the zygote reaps it within its polling interval
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {pid} still runs after the timeout")


def test_other_command_lines_start_a_fresh_process():
    done = spawn.run([sys.executable, "-I", "-c", "import sys; print(sys.flags.isolated)"],
                     capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "1\n"
    assert isinstance(spawn.Popen([sys.executable, "-V"], stdout=subprocess.DEVNULL), subprocess.Popen)


def test_stderr_can_join_stdout():
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True); print('out2')"
    proc = spawn.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == "out\nerr\nout2\n" and err is None

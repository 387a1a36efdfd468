"""Child Python processes for the tests, forked from a process that has already imported torch.

    proc = spawn.run([sys.executable, "train_small.py", "--epochs", "1"], cwd=tmp, capture_output=True,
                     text=True, env=env, timeout=300)          # as subprocess.run
    proc = spawn.Popen([sys.executable, "-c", code, *args], cwd=tmp, stdout=subprocess.PIPE, ...)

A fresh interpreter spends about 5 s of a 2-core machine importing torch and what
``torch.use_deterministic_algorithms`` and the first optimizer pull in (torch._dynamo,
torch._inductor), against well under a second for a test's tiny run.  So one server process
per test session (the "zygote") imports those once and forks every child: each child is then
a real process of its own (own pid, signals, exit status, files, stdout and stderr through the
test's pipes or terminal) that starts as ``python SCRIPT ARGS`` or ``python -c CODE ARGS``
would: its own working folder and environment, ``sys.argv`` and ``sys.path[0]`` set the same
way, the project's modules imported afresh (only torch, numpy and torchvision come
preloaded), standard streams built as the interpreter builds them (line-buffered on a
terminal, unbuffered under PYTHONUNBUFFERED), SIGINT raising KeyboardInterrupt, atexit
handlers run at the end, an uncaught exception printed and exit status 1.  torch's thread
count follows the child's OMP_NUM_THREADS.

Other command lines (``-m``, ``-I``, other programs) start a fresh process through
``subprocess``; so does every call when the environment has TESTS_FRESH_PROCESSES=1.
"""
import atexit
import io
import locale
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import threading
import time

FRESH = os.environ.get("TESTS_FRESH_PROCESSES") == "1"
_STATUS = struct.Struct("i")
_zygote = None
_lock = threading.Lock()


# ---------------------------------------------------------------- the test's side

def _forkable(args):
    args = [str(a) for a in args]
    if FRESH or len(args) < 2 or args[0] != sys.executable:
        return None
    if args[1] == "-c":
        return dict(code=args[2], argv=["-c", *args[3:]]) if len(args) > 2 else None
    if args[1].startswith("-"):
        return None
    return dict(script=os.path.abspath(args[1]), argv=args[1:])


def _server():
    """The zygote's control socket, started on first use; it ends when this process does."""
    global _zygote
    if _zygote is None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        boot = ("import sys; sys.path.insert(0, sys.argv[1]); import spawn; del sys.path[0]; "
                "spawn.serve(int(sys.argv[2]))")
        proc = subprocess.Popen([sys.executable, "-c", boot, os.path.dirname(os.path.abspath(__file__)),
                                 str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                stdin=subprocess.DEVNULL)
        theirs.close()
        _zygote = (ours, proc)
        atexit.register(_stop)
    return _zygote[0]


def _stop():
    ours, proc = _zygote
    ours.close()                     # the zygote sees the socket close, ends what it still runs, exits
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stdio(spec, mode):
    """(the child's fd, our end of its pipe or None) for a subprocess-style stdin/stdout/stderr value."""
    if spec is None:
        return os.dup(1 if mode == "w" else 0), None
    if spec == subprocess.DEVNULL:
        return os.open(os.devnull, os.O_RDWR), None
    if spec == subprocess.PIPE:
        r, w = os.pipe()
        return (w, r) if mode == "w" else (r, w)
    if isinstance(spec, int):
        return os.dup(spec), None
    return os.dup(spec.fileno()), None


class Popen:
    """The part of ``subprocess.Popen`` the tests use, for a child forked by the zygote."""

    def __new__(cls, args, **kwargs):
        if _forkable(args) is None:
            return subprocess.Popen(args, **kwargs)
        return super().__new__(cls)

    def __init__(self, args, cwd=None, env=None, stdin=subprocess.DEVNULL, stdout=None, stderr=None,
                 text=False):
        self.args, self.returncode, self.text = args, None, text
        request = dict(_forkable(args), cwd=os.path.abspath(cwd or os.getcwd()),
                       env=dict(os.environ if env is None else env))
        streams = [_stdio(stdin, "r"), _stdio(stdout, "w")]
        streams.append((os.dup(streams[1][0]), None) if stderr == subprocess.STDOUT else _stdio(stderr, "w"))
        fds, ours = zip(*streams)
        self._status, theirs = socket.socketpair()
        try:
            with _lock:
                socket.send_fds(_server(), [pickle.dumps(request)], [theirs.fileno(), *fds])
        finally:
            theirs.close()
            for fd in fds:
                os.close(fd)
        self.stdin = None if ours[0] is None else open(ours[0], "wb")
        self.stdout, self.stderr = (None if fd is None else self._reader(fd) for fd in ours[1:])
        self.pid = _STATUS.unpack(self._recv())[0]

    def _reader(self, fd):
        raw = open(fd, "rb")
        return io.TextIOWrapper(raw, encoding=locale.getpreferredencoding(False)) if self.text else raw

    def _recv(self, timeout=None):
        self._status.settimeout(timeout)
        data = b""
        while len(data) < _STATUS.size:
            try:
                chunk = self._status.recv(_STATUS.size - len(data))
            except socket.timeout:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            if not chunk:
                raise RuntimeError("the test zygote went away")
            data += chunk
        return data

    def poll(self):
        if self.returncode is None and select.select([self._status], [], [], 0)[0]:
            self.wait()
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = _STATUS.unpack(self._recv(timeout))[0]
            self._status.close()
        return self.returncode

    def send_signal(self, signum):
        if self.returncode is None:
            os.kill(self.pid, signum)

    def terminate(self):
        self.send_signal(15)

    def kill(self):
        self.send_signal(9)

    def communicate(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        results = {}

        def drain(name, stream):
            results[name] = stream.read()
            stream.close()
        readers = [threading.Thread(target=drain, args=(n, s), daemon=True)
                   for n, s in (("out", self.stdout), ("err", self.stderr)) if s is not None]
        for t in readers:
            t.start()
        for t in readers:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return results.get("out"), results.get("err")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for s in (self.stdout, self.stderr, self.stdin):
            if s is not None:
                s.close()
        self.wait()


def run(args, cwd=None, env=None, capture_output=False, text=False, timeout=None, check=False):
    """``subprocess.run`` through ``Popen`` above (a ``subprocess.Popen`` where it cannot fork)."""
    pipe = subprocess.PIPE if capture_output else None
    proc = Popen(args, cwd=cwd, env=env, stdout=pipe, stderr=pipe, text=text)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    done = subprocess.CompletedProcess(args, proc.returncode, out, err)
    if check:
        done.check_returncode()
    return done


# ---------------------------------------------------------------- the zygote's side

def serve(fd):
    """Preload, then fork one child per request until the test process closes the socket."""
    ctrl = socket.socket(fileno=fd)
    import numpy  # noqa: F401
    import torch
    import torch._dynamo  # noqa: F401
    import torch._inductor.config  # noqa: F401
    import torchvision  # noqa: F401
    threads = torch.get_num_threads()
    waiting = {}
    try:
        while True:
            if select.select([ctrl], [], [], 0.01 if waiting else None)[0]:
                msg, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 4)
                if not msg:
                    break
                status = socket.socket(fileno=fds[0])
                pid = os.fork()
                if pid == 0:
                    ctrl.close()
                    for s in waiting.values():
                        s.close()
                    _child(pickle.loads(msg), fds[1:], threads, status)
                for f in fds[1:]:
                    os.close(f)
                status.sendall(_STATUS.pack(pid))
                waiting[pid] = status
            while waiting:
                pid, st = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                status = waiting.pop(pid, None)
                if status is not None:
                    try:
                        status.sendall(_STATUS.pack(os.waitstatus_to_exitcode(st)))
                    except OSError:
                        pass
                    status.close()
    finally:
        for pid in waiting:
            try:
                os.kill(pid, 9)
            except OSError:
                pass


def _child(req, fds, threads, status):
    """In the forked child: become ``python SCRIPT|-c CODE ARGS``; never returns."""
    import signal
    import traceback
    import types

    import torch
    status.close()
    code = 1
    try:
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
        enc = sys.stdout.encoding
        sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False), encoding=enc)
        sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0 if unbuffered else -1, closefd=False),
                                      encoding=enc, line_buffering=os.isatty(1), write_through=unbuffered)
        sys.stderr = io.TextIOWrapper(open(2, "wb", buffering=0 if unbuffered else -1, closefd=False),
                                      encoding=enc, errors="backslashreplace", line_buffering=True,
                                      write_through=unbuffered)
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
        signal.signal(signal.SIGINT, signal.default_int_handler)
        n = os.environ.get("OMP_NUM_THREADS", "")
        torch.set_num_threads(int(n) if n.isdigit() and int(n) > 0 else threads)
        sys.modules.pop(__name__, None)             # this module is the zygote's, not the child's
        sys.argv = list(req["argv"])
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        if "code" in req:
            sys.path[0] = ""
            source, name = req["code"], "<string>"
        else:
            sys.path[0] = os.path.dirname(req["script"])
            name = req["script"]
            with open(name, encoding="utf-8") as f:
                source = f.read()
            main.__file__ = name
        main.__builtins__ = __builtins__
        try:
            exec(compile(source, name, "exec"), main.__dict__)
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            traceback.print_exc()
            code = -signal.SIGINT
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        try:
            threading._shutdown()
        except Exception:
            pass
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if code == -signal.SIGINT:                  # as the interpreter does: die of the signal
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)

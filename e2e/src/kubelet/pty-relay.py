"""Runs one command on a new pseudo-terminal, for the stand-in kubelet's TTY sessions.

Usage: python3 pty-relay.py ARGV...

- The command runs as the session leader of a new pty (pty.fork), with argv
  exactly as given (argv[0] looked up in PATH like execvp).
- fd 0 (our stdin) is copied to the pty master: what the user types.
- The pty master's output is copied to fd 1: what the terminal shows (the
  line discipline's echo and \\n -> \\r\\n included, as on a real terminal).
- fd 3 carries resize requests, one "COLS ROWS" line each; each becomes a
  TIOCSWINSZ on the master, so the kernel sends SIGWINCH to the foreground
  process group: what a container runtime does for a kubelet resize event.
- Exit status: the command's, or 128 + signal. When the command cannot be
  started, one JSON line {"startError": "..."} goes to fd 2 and the status is 127.
- The relay dies with its parent (PR_SET_PDEATHSIG), and the pty closing then
  hangs up the command.
"""

import ctypes
import errno
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import sys
import termios


def die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def resolve(name):
    if "/" in name:
        return name if os.access(name, os.X_OK) and not os.path.isdir(name) else None
    return shutil.which(name)


def main():
    argv = sys.argv[1:]
    if not argv:
        sys.stderr.write(json.dumps({"startError": "no command given"}) + "\n")
        return 127
    path = resolve(argv[0])
    if path is None:
        message = 'exec: "%s": executable file not found in $PATH' % argv[0]
        sys.stderr.write(json.dumps({"startError": message}) + "\n")
        return 127
    die_with_parent()
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execv(path, argv)
        finally:
            os._exit(127)

    resize_fd = 3
    stdin_open = True
    try:
        resize_open = os.get_blocking(resize_fd) is not None
    except OSError:
        resize_open = False  # no fd 3: the size never changes
    resize_buf = b""
    to_master = b""
    fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
    while True:
        readers = [master]
        if stdin_open and len(to_master) < 1 << 20:
            readers.append(0)
        if resize_open:
            readers.append(resize_fd)
        writers = [master] if to_master else []
        try:
            readable, writable, _ = select.select(readers, writers, [])
        except InterruptedError:
            continue
        if master in writable:
            try:
                n = os.write(master, to_master)
                to_master = to_master[n:]
            except BlockingIOError:
                pass
            except OSError:
                to_master = b""
        if master in readable:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                data = None
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                data = b""  # EIO: the command and everything it started closed the terminal
            if data == b"":
                break
            if data:
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view):]
        if 0 in readable:
            data = os.read(0, 65536)
            if data:
                to_master += data
            else:
                stdin_open = False
        if resize_open and resize_fd in readable:
            try:
                data = os.read(resize_fd, 4096)
            except OSError:
                data = b""
            if not data:
                resize_open = False
            resize_buf += data
            while b"\n" in resize_buf:
                line, resize_buf = resize_buf.split(b"\n", 1)
                try:
                    cols, rows = (int(x) for x in line.split())
                except ValueError:
                    continue
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())

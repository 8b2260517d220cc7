#!/usr/bin/env python3
"""The serial path of `edgetune serve` end to end through a pseudo-terminal pair: real termios, real
line framing, the binary given on the command line (e.g. the aarch64 build under qemu).

Usage: cross/serial_check.py [--timeout S] -- COMMAND... {SERIAL} ...
The argument {SERIAL} in COMMAND is replaced by the pty's device path. COMMAND must start
`edgetune ... serve --no-stdin --serial {SERIAL} --dry-run-io --actions examples/actions.toml` on a
run trained on the demo data. Checks: a ping answers; a line split across two writes is answered as
one (`turn_on`, the kitchen-light rule fired as a dry run); a non-UTF-8 line and an over-long line
get an error for that line only; the next line is answered (`turn_off`); SIGTERM exits 0 and the
log shows both rules. Prints one line per check; exit status 0 only when all passed.
"""
import argparse
import json
import os
import select
import signal
import subprocess
import sys
import termios
import time
import tty


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for each answer")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = [a for a in args.command if a != "--"] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command")

    master, slave = os.openpty()
    slave_name = os.ttyname(slave)
    # Raw from the start, as the service sets it: otherwise the pty would echo lines written
    # before the service opened the port back to the master.
    tty.setraw(slave, termios.TCSANOW)
    cmd = [slave_name if a == "{SERIAL}" else a for a in cmd]
    stderr_path = os.environ.get("SERIAL_CHECK_STDERR")
    err = open(stderr_path, "w+") if stderr_path else subprocess.PIPE
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    buf = b""
    failures = []

    def check(ok, what):
        print(("PASS " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    def next_answer():
        nonlocal buf
        deadline = time.monotonic() + args.timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or child.poll() is not None:
                raise TimeoutError(f"no answer (child exit status {child.poll()})")
            r, _, _ = select.select([master], [], [], min(left, 1.0))
            if r:
                buf += os.read(master, 65536)
        line, buf = buf.split(b"\n", 1)
        return json.loads(line)

    def intent(a):
        return (a.get("intent") or {}).get("label")

    try:
        os.write(master, b'{"cmd": "ping"}\n')
        check(next_answer().get("ok") is True, "ping answered on the serial line")
        os.write(master, b"turn on the light in the kit")
        time.sleep(0.05)
        os.write(master, b"chen\n")
        a = next_answer()
        fired = [x.get("rule") for x in a.get("actions", []) if x.get("ok")]
        check(intent(a) == "turn_on" and "kitchen light on" in fired,
              f"a line split across two writes: intent {intent(a)}, rules {fired}")
        os.write(master, b"\xc3\x28 not utf-8\n")
        check(next_answer().get("code") == "bad_text", "a non-UTF-8 line gets its own error")
        os.write(master, b"y" * 2000 + b"\n")
        check(next_answer().get("code") == "too_long", "an over-long line gets its own error")
        os.write(master, b"turn off the light in the kitchen\n")
        a = next_answer()
        check(intent(a) == "turn_off", f"the next line is answered: intent {intent(a)}")
    except (TimeoutError, ValueError, OSError) as e:
        check(False, f"serial exchange: {e}")
    child.send_signal(signal.SIGTERM)
    try:
        rc = child.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        rc = "killed after timeout"
    text = ""
    if stderr_path:
        err.seek(0)
        text = err.read()
    elif child.stderr is not None:
        text = child.stderr.read().decode("utf-8", "replace")
    check(rc == 0, f"SIGTERM: exit status {rc}")
    for rule, pin in (("kitchen light on", "high"), ("kitchen light off", "low")):
        want = f'rule "{rule}": gpio /dev/gpiochip0:17 -> {pin}'
        check(want in text, f"dry-run log: {want}")
    if failures:
        sys.stderr.write(text[-4000:])
    os.close(slave)
    os.close(master)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The bench reads a process's CPU time to the nanosecond, so a light step never reads as zero."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from securechat.bench.procs import cpu_seconds, tree_cpu_seconds


def _spin(cpu_s: float) -> None:
    started = time.process_time()
    while time.process_time() - started < cpu_s:
        pass


def test_two_milliseconds_of_work_are_measured_not_rounded_to_a_clock_tick() -> None:
    # /proc/PID/stat counts 10 ms ticks: 2 ms of work there mostly reads as 0.0, and the tiny
    # bench's reference server (a few ms per step) then had no CPU figure to divide by.
    before = cpu_seconds(os.getpid())
    _spin(0.002)
    spent = cpu_seconds(os.getpid()) - before
    assert spent >= 0.002


def test_a_child_is_counted_in_its_parents_tree() -> None:
    spin = "import sys, time\nwhile time.process_time() < 0.05: pass\n"
    code = spin + "print(flush=True)\nsys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # it has spent its 50 ms
        assert cpu_seconds(child.pid) >= 0.05
        own = cpu_seconds(os.getpid())
        assert tree_cpu_seconds(os.getpid()) >= own + 0.05
    finally:
        child.communicate(b"", timeout=30)


def test_an_ended_process_has_no_cpu_figure() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    with pytest.raises(OSError, match="Invalid argument"):
        cpu_seconds(child.pid)

"""Execute one notebook under nbclient and log every cell's timing and every kernel message.

Written to find why notebook 11 sat idle until its cell timeout under nbclient. For each code cell
it prints when the request left, when the shell's ``execute_reply`` and the IOPub ``status: idle``
arrived, and (with ``--messages``) every message of the cell with its age: the kernel's send time
against the client's receive time. A cell that runs longer than ``--dump-after`` seconds gets the
client's sockets checked for unread messages and the kernel's Python stacks dumped with py-spy
(``pip install py-spy``), so a stall shows which side waits, and where.

    PYTHONPATH=$PWD SSL_COURSE_MODE=present SSL_COURSE_DATA=/work/shared/data/cifar10 \
        python tools/repro_stall.py notebooks/11_paws.ipynb --runs 3

``--upto K`` runs only the first K cells (bisection); ``--runs N`` repeats the whole execution in a
fresh kernel each time and prints each run's wall time, which is what exposes an intermittent stall;
``--plain`` runs through ``site_cache.execute`` (the site's and the tests' code path) without the log.
The kernel gets the site's environment of ``--mode`` (``tools/site_cache.kernel_env``).

What it found (notebook 11, before the fix in ``ssl_course/viz/widgets.py``): in a cell with
``interactive_plot`` the kernel's ``execute_reply`` was sent in under a second but read only when the
cell timed out, while a message sat waiting in the client's shell socket. The slider's figure was
drawn inside ``with output:`` (an ipywidgets Output widget); nbclient's stand-in for that widget
answers each captured output with a ``comm_msg`` sent on the shell channel, from the middle of
waiting for the reply on that same socket. jupyter_client sends it through a blocking shadow of the
asyncio socket, which reads the socket's edge-triggered ZMQ_FD state without rescheduling pyzmq's
handler: when the reply arrived just before that send, its wake-up is gone and the poll sleeps
until its timeout (jupyter/nbclient#312, open). ``--mechanism`` shows the same lost wake-up with
two bare zmq sockets, no kernel involved.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import zmq
import zmq.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import site_cache  # noqa: E402


class LoggingClient(nbclient.NotebookClient):
    """A NotebookClient that timestamps every shell and IOPub message it reads."""

    def __init__(self, *args, show_messages: bool = False, dump_after: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.show_messages = show_messages
        self.dump_after = dump_after
        self.cell_times: list[tuple[int, float, str]] = []
        self._sent_at = 0.0
        self._cell_index = -1

    def _log(self, text: str) -> None:
        print(f"  [{time.perf_counter() - self._sent_at:8.2f} s] cell {self._cell_index}: {text}", flush=True)

    def _wrap(self, channel, name: str) -> None:
        original = channel.get_msg

        async def get_msg(*args, **kwargs):
            message = await original(*args, **kwargs)
            kind = message["msg_type"]
            if kind == "status":
                kind += ":" + message["content"]["execution_state"]
            sent = message["header"].get("date")
            age = (time.time() - sent.timestamp()) if hasattr(sent, "timestamp") else float("nan")
            if self.show_messages or kind in ("execute_reply", "status:idle"):
                parent = message["parent_header"]
                self._log(f"{name:5} {kind:22} sent {age:7.3f} s before it was read; "
                          f"reply to {parent.get('msg_type', '-')} {str(parent.get('msg_id', '-'))[-8:]}")
            return message

        channel.get_msg = get_msg

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        self._wrap(self.kc.shell_channel, "shell")
        self._wrap(self.kc.iopub_channel, "iopub")
        return client

    def _kernel_pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    async def _watchdog(self, cell_index: int) -> None:
        await asyncio.sleep(self.dump_after)
        pid, spy = self._kernel_pid(), shutil.which("py-spy")
        print(f"  cell {cell_index} still running after {self.dump_after:.0f} s; kernel pid {pid}", flush=True)
        for name in ("shell", "iopub"):
            socket = getattr(self.kc, f"{name}_channel").socket
            waiting = zmq.Socket.shadow(socket.underlying).poll(0)   # a blocking view of the same socket
            print(f"  {name} socket: {'a message is waiting in the client' if waiting else 'nothing waiting'}",
                  flush=True)
        if pid and spy:
            dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, check=False)
            print(dump.stdout or dump.stderr, flush=True)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        self._sent_at, self._cell_index = time.perf_counter(), cell_index
        watchdog = asyncio.ensure_future(self._watchdog(cell_index)) if self.dump_after > 0 else None
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            seconds = time.perf_counter() - self._sent_at
            first_line = cell.source.strip().splitlines()[0][:60]
            self.cell_times.append((cell_index, seconds, first_line))
            print(f"cell {cell_index:3d}: {seconds:7.2f} s  {first_line}", flush=True)


def run_once(path: Path, upto: int | None, timeout: int, show_messages: bool, dump_after: float) -> float:
    notebook = site_cache.read_as_site(path)
    if upto is not None:
        notebook.cells = notebook.cells[:upto]
    client = LoggingClient(notebook, timeout=timeout, kernel_name="python3", show_messages=show_messages,
                           dump_after=dump_after, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    slowest = sorted(client.cell_times, key=lambda row: -row[1])[:3]
    print("slowest cells: " + "; ".join(f"{index} ({s:.1f} s)" for index, s, _ in slowest), flush=True)
    return seconds


async def _lost_wakeup(blocking_send: bool) -> float:
    """Seconds an asyncio poll waits for a reply that had already arrived, after a send on the same socket."""
    context = zmq.asyncio.Context()
    client, kernel = context.socket(zmq.DEALER), context.socket(zmq.ROUTER)
    client.connect(f"tcp://127.0.0.1:{kernel.bind_to_random_port('tcp://127.0.0.1')}")
    await client.send(b"execute_request")
    identity, _ = await kernel.recv_multipart()
    poll = asyncio.ensure_future(client.poll(3000))       # nbclient waiting for the execute_reply
    await asyncio.sleep(0.05)
    await kernel.send_multipart([identity, b"execute_reply"])
    time.sleep(0.05)                                      # the reply arrives while the client is busy
    if blocking_send:   # what jupyter_client's Session.send does with an asyncio socket
        zmq.Socket.shadow(client.underlying).send(b"comm_msg")
    else:
        await client.send(b"comm_msg")
    start = time.perf_counter()
    await poll
    client.close(0)
    kernel.close(0)
    context.term()
    return time.perf_counter() - start


def show_mechanism() -> None:
    for blocking in (False, True):
        seconds = asyncio.run(_lost_wakeup(blocking))
        print(f"{'blocking shadow' if blocking else 'asyncio'} send: the waiting poll woke after {seconds:.2f} s "
              f"(its timeout: 3 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, nargs="?")
    parser.add_argument("--mechanism", action="store_true", help="show the lost wake-up with bare zmq sockets")
    parser.add_argument("--mode", default="present", choices=sorted(site_cache.MODE_ENV))
    parser.add_argument("--runs", type=int, default=1, help="executions, each in a fresh kernel")
    parser.add_argument("--upto", type=int, default=None, help="execute only the first UPTO cells")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one cell may take")
    parser.add_argument("--plain", action="store_true",
                        help="run through site_cache.execute (what the site and the tests use), no message log")
    parser.add_argument("--messages", action="store_true", help="print every message, not only replies and idles")
    parser.add_argument("--dump-after", type=float, default=0.0,
                        help="py-spy dump of the kernel when a cell runs longer than this (0: never)")
    arguments = parser.parse_args()
    if arguments.mechanism:
        show_mechanism()
        return
    if arguments.notebook is None:
        parser.error("name a notebook (or pass --mechanism)")
    os.environ.update(site_cache.kernel_env(arguments.mode, dict(os.environ)))
    times = []
    for run in range(1, arguments.runs + 1):
        print(f"=== run {run} of {arguments.runs}: {arguments.notebook.name}, mode {arguments.mode}", flush=True)
        if arguments.plain:
            execution = site_cache.execute(arguments.notebook, timeout=arguments.timeout)
            index, slowest = max(execution.cell_seconds.items(), key=lambda item: item[1])
            print(f"slowest cell: {index} ({slowest:.1f} s)", flush=True)
            times.append(execution.seconds)
        else:
            times.append(run_once(arguments.notebook, arguments.upto, arguments.timeout, arguments.messages,
                                  arguments.dump_after))
        print(f"=== run {run}: {times[-1]:.1f} s", flush=True)
    print("wall times (s): " + ", ".join(f"{t:.1f}" for t in times) + f"; median {statistics.median(times):.1f}")


if __name__ == "__main__":
    main()

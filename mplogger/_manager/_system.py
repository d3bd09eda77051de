"""System metrics, sampled in the manager (never in the user process), wandb's names.

CPU and memory of the machine, RSS and count of the user process and its children (not
mplogger's own manager and workers), disk and network I/O since the run started, and per GPU
utilisation, memory, temperature and power (``nvidia-ml-py``: ``pip install 'mplogger[gpu]'``).

On Linux everything but the GPUs is read from ``/proc`` with the standard library, so a default
install records it. ``/proc`` is preferred there even when ``psutil`` is installed: a run then
has the same metrics, computed the same way, whichever extras the machine has, and the process
tree is walked from the user process down instead of psutil's scan of every process. The
readings follow psutil's definitions (CPU busy = total - idle - iowait, memory used = total -
MemAvailable, RSS from ``statm``, disk totals over whole disks only, network totals over every
interface, ``lo`` included), so numbers from either source mean the same. Elsewhere ``psutil``
(``pip install 'mplogger[system]'``) is used. Each reading that fails only leaves its metrics out.
CPU percent is busy time since the previous sample, so the sampler's first sample has none.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional

from mplogger._shared import _platform

__all__ = ["SystemSampler", "ProcReader", "PsutilReader"]

_MB = 1024 * 1024
_SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own sector size

Readings = Dict[str, Any]


def _cpu_percent(before: Dict[str, float], after: Dict[str, float]) -> Optional[float]:
    """Percent of CPU time busy between two readings, as psutil.cpu_percent computes it; None if no time passed."""
    delta = {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after}
    total = sum(delta.values()) - delta.get("guest", 0.0) - delta.get("guest_nice", 0.0)  # user includes guest
    if total <= 0:
        return None
    busy = total - delta.get("idle", 0.0) - delta.get("iowait", 0.0)
    return round(min(100.0, max(0.0, 100.0 * busy / total)), 1)


def _memory_values(total: float, available: float) -> Readings:
    """Percent used and MB available, as psutil.virtual_memory reports them."""
    return {"system/memory": round(100.0 * (total - available) / total, 1),
            "system/memory.availableMB": round(available / _MB, 1)}


def _process_values(rss: Iterable[int]) -> Readings:
    """Summed RSS (MB) and count of the processes whose RSS could be read."""
    sizes = list(rss)
    return {"system/proc.memory.rssMB": round(sum(sizes) / _MB, 1), "system/proc.count": len(sizes)}


def _disk_values(read: int, written: int) -> Readings:
    """Disk I/O in MB, under wandb's names."""
    return {"system/disk.in": read / _MB, "system/disk.out": written / _MB}


def _network_values(sent: int, received: int) -> Readings:
    """Network I/O in bytes, under wandb's names."""
    return {"system/network.sent": sent, "system/network.recv": received}


def _is_partition_of(name: str, disk: str) -> bool:
    """True for ``sda1`` of ``sda`` and ``nvme0n1p1`` of ``nvme0n1`` (not ``sdaa``, not ``loop10`` of ``loop1``)."""
    rest = name[len(disk):]
    if not disk or not name.startswith(disk) or not rest:
        return False
    return rest[1:].isdigit() and rest[0] == "p" if disk[-1].isdigit() else rest.isdigit()


def _whole_disks(names: List[str], sys_block: Optional[List[str]]) -> set:
    """The names that are whole disks: in /sys/block (virtual ones included, as psutil counts them),
    or without /sys the names that are not a partition of another."""
    if sys_block is not None:
        listed = set(sys_block)
        return {name for name in names if name.replace("/", "!") in listed}
    return {name for name in names if not any(_is_partition_of(name, other) for other in names)}


class _CpuSince:
    """``cpu()`` from the readers' ``_cpu_times()``: percent busy since the previous call."""

    _cpu_before: Optional[Dict[str, float]] = None

    def _cpu_times(self) -> Dict[str, float]:
        raise NotImplementedError

    def cpu(self) -> Readings:
        """Percent busy since the previous call (left out until a clock tick has passed)."""
        now = self._cpu_times()
        if self._cpu_before is None:
            self._cpu_before = now
            return {}
        percent = _cpu_percent(self._cpu_before, now)
        if percent is None:
            return {}
        self._cpu_before = now
        return {"system/cpu": percent}


class ProcReader(_CpuSince):
    """Readings from Linux's /proc, standard library only."""

    _CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")

    def __init__(self, user_pid: int, own_pid: Optional[int] = None, proc: Optional[str] = None,
                 sys_block: Optional[str] = None) -> None:
        self.user_pid = user_pid
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self.proc = _platform.PROC if proc is None else proc
        self.sys_block = _platform.SYS_BLOCK if sys_block is None else sys_block
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._has_children_files = os.path.exists(os.path.join(self.proc, str(user_pid), "task", str(user_pid),
                                                               "children"))
        self._cpu_before = self._safe_cpu_times()

    def _read(self, *parts: object) -> str:
        """The text of one file under the proc root."""
        with open(os.path.join(self.proc, *map(str, parts))) as handle:
            return handle.read()

    def _cpu_times(self) -> Dict[str, float]:
        """The machine's CPU time per state in ticks, from the ``cpu`` line of /proc/stat."""
        line = self._read("stat").split("\n", 1)[0].split()
        if line[0] != "cpu":
            raise ValueError("/proc/stat does not start with the cpu line")
        return dict(zip(self._CPU_FIELDS, map(float, line[1:])))

    def _safe_cpu_times(self) -> Optional[Dict[str, float]]:
        """The CPU times, or None when /proc/stat cannot be read (the first cpu() then starts over)."""
        try:
            return self._cpu_times()
        except (OSError, ValueError, IndexError):
            return None

    def memory(self) -> Readings:
        """Percent used and MB available, from MemTotal and MemAvailable (Linux 3.14+)."""
        fields = {}
        for line in self._read("meminfo").splitlines():
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemAvailable"):
                fields[name] = int(rest.split()[0]) * 1024
        return _memory_values(fields["MemTotal"], fields["MemAvailable"])

    def processes(self) -> Readings:
        """RSS and count of the user process and its descendants, mplogger's own excluded."""
        tree = self.tree()
        if not tree:
            return {}
        return _process_values(rss for rss in map(self._rss, tree) if rss is not None)

    def tree(self) -> List[int]:
        """The user process and its descendants, without the subtree of ``own_pid`` (the manager)."""
        if not os.path.exists(os.path.join(self.proc, str(self.user_pid))):
            return []
        children = self._children_from_files if self._has_children_files else self._children_map().get
        found, queue, seen = [], [self.user_pid], {self.user_pid}
        while queue:
            pid = queue.pop()
            found.append(pid)
            for child in children(pid) or ():
                if child not in seen and child != self.own_pid:
                    seen.add(child)
                    queue.append(child)
        return found

    def _children_from_files(self, pid: int) -> List[int]:
        """Children of ``pid`` from /proc/PID/task/TID/children (kernels with CONFIG_PROC_CHILDREN)."""
        children: List[int] = []
        try:
            tasks = os.listdir(os.path.join(self.proc, str(pid), "task"))
        except OSError:
            return children
        for tid in tasks:
            try:
                children.extend(map(int, self._read(pid, "task", tid, "children").split()))
            except (OSError, ValueError):  # the thread ended
                pass
        return children

    def _children_map(self) -> Dict[int, List[int]]:
        """Children of every process, from the ppid in each /proc/PID/stat."""
        children: Dict[int, List[int]] = {}
        for name in os.listdir(self.proc):
            if not name.isdigit():
                continue
            try:
                ppid = int(self._read(name, "stat").rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):  # the process ended
                continue
            children.setdefault(ppid, []).append(int(name))
        return children

    def _rss(self, pid: int) -> Optional[int]:
        """Resident bytes of one process (``statm``, as psutil reads it); None once it has ended."""
        try:
            return int(self._read(pid, "statm").split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return None

    def disk(self) -> Readings:
        """Bytes read and written by whole disks (not partitions) since boot, from /proc/diskstats."""
        rows = [line.split() for line in self._read("diskstats").splitlines()]
        rows = [fields for fields in rows if len(fields) >= 14]  # shorter: partitions of Linux 2.6.0-2.6.24
        whole = _whole_disks([fields[2] for fields in rows], self._sys_block_names())
        rows = [fields for fields in rows if fields[2] in whole]
        return _disk_values(sum(int(fields[5]) for fields in rows) * _SECTOR,
                            sum(int(fields[9]) for fields in rows) * _SECTOR)

    def _sys_block_names(self) -> Optional[List[str]]:
        """The block devices the kernel lists as whole disks; None where /sys is not mounted."""
        try:
            return os.listdir(self.sys_block)
        except OSError:
            return None

    def network(self) -> Readings:
        """Bytes sent and received over every interface, ``lo`` included, from /proc/net/dev."""
        sent = received = 0
        for line in self._read("net", "dev").splitlines()[2:]:
            fields = line[line.rfind(":") + 1:].split()
            received += int(fields[0])
            sent += int(fields[8])
        return _network_values(sent, received)


class PsutilReader(_CpuSince):
    """The same readings from psutil, where /proc is not usable (macOS, Windows, BSD)."""

    def __init__(self, psutil: Any, user_pid: int) -> None:
        self.psutil = psutil
        self.user_pid = user_pid
        self._cpu_before = psutil.cpu_times()._asdict()

    def _cpu_times(self) -> Dict[str, float]:
        return self.psutil.cpu_times()._asdict()

    def memory(self) -> Readings:
        """Percent used and MB available."""
        memory = self.psutil.virtual_memory()
        return _memory_values(memory.total, memory.available)

    def processes(self) -> Readings:
        """RSS and count of the user process and its descendants, mplogger's own excluded."""
        psutil = self.psutil
        user = psutil.Process(self.user_pid)
        ours = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
        tree = [user] + [p for p in user.children(recursive=True) if p.pid not in ours]
        return _process_values(rss for rss in map(self._rss, tree) if rss is not None)

    def _rss(self, process: Any) -> Optional[int]:
        """Resident bytes of one process; None once it has ended."""
        try:
            return process.memory_info().rss
        except self.psutil.Error:
            return None

    def disk(self) -> Readings:
        """Bytes read and written since boot."""
        disk = self.psutil.disk_io_counters()
        return {} if disk is None else _disk_values(disk.read_bytes, disk.write_bytes)

    def network(self) -> Readings:
        """Bytes sent and received since boot."""
        net = self.psutil.net_io_counters()
        return {} if net is None else _network_values(net.bytes_sent, net.bytes_recv)


def _open_reader(user_pid: int) -> Optional[Any]:
    """A ProcReader on Linux, else a PsutilReader if psutil is installed, else None."""
    if _platform.proc_usable():
        return ProcReader(user_pid)
    try:
        import psutil
    except ImportError:
        return None
    try:
        return PsutilReader(psutil, user_pid)
    except Exception:  # psutil without support for this platform
        return None


def _safely(read: Callable[[], Readings]) -> Readings:
    """One reading; any failure (a missing file, an ended process) leaves its metrics out."""
    try:
        return read()
    except Exception:
        return {}


class SystemSampler:
    """Takes one sample of the machine and of one user process (and its children)."""

    def __init__(self, user_pid: int) -> None:
        self.user_pid = user_pid
        self._reader = _open_reader(user_pid)
        self._gpus = self._open_gpus()

    @property
    def available(self) -> bool:
        return self._reader is not None or bool(self._gpus)

    def _open_gpus(self) -> List[Any]:
        try:
            import pynvml
        except ImportError:
            return []
        try:
            pynvml.nvmlInit()
            self._nvml = pynvml
            return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no driver, no GPU: no GPU metrics
            return []

    def counters(self) -> Dict[str, float]:
        """Disk and network totals now; each run reports them from its own start."""
        reader = self._reader
        if reader is None:
            return {}
        return {**_safely(reader.disk), **_safely(reader.network)}

    def sample(self) -> Dict[str, Any]:
        """CPU, memory, the user's processes and the GPUs, now."""
        values: Dict[str, Any] = {}
        reader = self._reader
        if reader is not None:
            for read in (reader.cpu, reader.memory, reader.processes):
                values.update(_safely(read))
        for index, handle in enumerate(self._gpus):
            values.update(self._gpu_values(index, handle))
        return values

    def _gpu_values(self, index: int, handle: Any) -> Dict[str, Any]:
        nvml = self._nvml
        prefix = f"system/gpu.{index}."
        out: Dict[str, Any] = {}
        readers = {
            "gpu": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
            "memory": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).memory,
            "memoryAllocated": lambda: round(
                100.0 * nvml.nvmlDeviceGetMemoryInfo(handle).used / nvml.nvmlDeviceGetMemoryInfo(handle).total, 2),
            "memoryAllocatedBytes": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used,
            "temp": lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
            "powerWatts": lambda: round(nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, 2),
        }
        for name, read in readers.items():
            try:
                out[prefix + name] = read()
            except Exception:  # a metric this GPU or driver does not report
                pass
        return out

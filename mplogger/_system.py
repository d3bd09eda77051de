"""System metrics, sampled in the manager (never in the user process), wandb's names.

CPU and memory of the machine, RSS of the user process and its children, disk and network I/O
since the run started (``psutil``: ``pip install 'mplogger[system]'``), and per GPU utilisation,
memory, temperature and power (``nvidia-ml-py``: ``pip install 'mplogger[gpu]'``). Either
missing only leaves its metrics out.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Dict, List, Optional

__all__ = ["SystemSampler", "psutil_missing"]

_MB = 1024 * 1024


def psutil_missing() -> bool:
    """True when system metrics cannot be taken (psutil is not installed)."""
    if "psutil" in sys.modules:
        return sys.modules["psutil"] is None
    return importlib.util.find_spec("psutil") is None


class SystemSampler:
    """Takes one sample of the machine and of one user process (and its children)."""

    def __init__(self, user_pid: int) -> None:
        self.user_pid = user_pid
        try:
            import psutil
        except ImportError:
            psutil = None
        self._psutil = psutil
        self._process = None
        if psutil is not None:
            try:
                self._process = psutil.Process(user_pid)
            except psutil.Error:
                self._process = None
            psutil.cpu_percent(None)  # the first call only starts the measurement
        self._gpus = self._open_gpus()

    @property
    def available(self) -> bool:
        return self._psutil is not None or bool(self._gpus)

    @staticmethod
    def _counters(read: Any) -> Optional[Any]:
        try:
            return read()
        except Exception:
            return None

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
        out: Dict[str, float] = {}
        psutil = self._psutil
        if psutil is None:
            return out
        disk = self._counters(psutil.disk_io_counters)
        if disk is not None:
            out["system/disk.in"] = disk.read_bytes / _MB
            out["system/disk.out"] = disk.write_bytes / _MB
        net = self._counters(psutil.net_io_counters)
        if net is not None:
            out["system/network.sent"] = net.bytes_sent
            out["system/network.recv"] = net.bytes_recv
        return out

    def sample(self) -> Dict[str, Any]:
        values: Dict[str, Any] = {}
        psutil = self._psutil
        if psutil is not None:
            values["system/cpu"] = psutil.cpu_percent(None)
            memory = psutil.virtual_memory()
            values["system/memory"] = memory.percent
            values["system/memory.availableMB"] = round(memory.available / _MB, 1)
            if self._process is not None:
                values.update(self._process_values(psutil))
        for index, handle in enumerate(self._gpus):
            values.update(self._gpu_values(index, handle))
        return values

    def _process_values(self, psutil: Any) -> Dict[str, Any]:
        try:
            ours = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
            processes = [self._process] + [p for p in self._process.children(recursive=True)
                                           if p.pid not in ours]  # not mplogger's own processes
        except psutil.Error:
            return {}
        rss = 0
        for process in processes:
            try:
                rss += process.memory_info().rss
            except psutil.Error:
                pass
        return {"system/proc.memory.rssMB": round(rss / _MB, 1), "system/proc.count": len(processes)}

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

"""Helpers shared by the bench scripts (run as `python3 bench/<script>.py`, so this folder is on
sys.path)."""
import platform


def cpu_name() -> str:
    """The processor's model name (for the header every benchmark prints)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"

"""Signal names and numbers, from `_signal` (the `signal` module imports enum)."""

import _signal

__all__ = ["parse_signal", "SIGNALS"]

SIGNALS = {name: getattr(_signal, name) for name in dir(_signal)
           if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(_signal, name), int)}


def parse_signal(text):
    """'KILL', 'SIGKILL', 'kill' or '9' -> 9; ValueError otherwise."""
    text = text.strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < _signal.NSIG:
            return number
        raise ValueError(f"invalid signal number {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        base = _signal.SIGRTMIN if name.startswith("SIGRTMIN") else _signal.SIGRTMAX
        offset = name[9:]
        if offset.isdigit():
            number = base + int(offset) if base == _signal.SIGRTMIN else base - int(offset)
            if _signal.SIGRTMIN <= number <= _signal.SIGRTMAX:
                return number
    if name in SIGNALS:
        return SIGNALS[name]
    raise ValueError(f"unknown signal {text!r}")

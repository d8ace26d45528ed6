"""JSON reading and writing without importing `json`.

`json` pulls in `re` and `enum` (about 10 ms of a 25 ms start-up budget), so the
runtime drives the C accelerator `_json` directly; the output is the same.
Also home to the atomic file write used for all runtime state.
"""

import _json
import os

__all__ = ["JSONError", "dumps", "loads", "write_atomic"]


class JSONError(ValueError):
    """The text is not one valid JSON document."""


def _reject_constant(name):
    raise JSONError(f"invalid JSON constant {name}")


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo = {}


_scan = _json.make_scanner(_Context())
_WHITESPACE = " \t\n\r"


def loads(text):
    """Parse one JSON document from str or bytes."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except Exception:  # the C scanner's errors are terse or odd; json words them well
        raise JSONError(_describe_error(text)) from None
    if text[end:].strip(_WHITESPACE):
        raise JSONError(_describe_error(text))
    return value


def _describe_error(text):
    import json  # only on the error path

    try:
        json.loads(text)
    except ValueError as exc:
        return str(exc)
    return "invalid JSON: NaN and Infinity are not JSON numbers"


def _encoder(indent, ascii=True):
    return _json.make_encoder(
        {} if indent is None else None,  # circular-reference markers, only when compact
        _unserialisable,
        _json.encode_basestring_ascii if ascii else _json.encode_basestring,
        indent,
        ": " if indent is not None else ":",
        "," if indent is None else ",",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )


def _unserialisable(obj):
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


_compact = _encoder(None)
_compact_utf8 = _encoder(None, ascii=False)


def dumps(value, indent=None, ensure_ascii=True):
    """Serialise `value`; compact unless `indent` is given (then pretty, always ASCII)."""
    if indent is None:
        return "".join((_compact if ensure_ascii else _compact_utf8)(value, 0))
    return _pretty(value, " " * indent, 0)


def _pretty(value, pad, level):
    # The C encoder's indent support needs `json.encoder`; pretty output is rare
    # (spec, features) so a small recursive writer serves it.
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = pad * (level + 1)
        items = (
            f"{inner}{_json.encode_basestring_ascii(str(k))}: {_pretty(v, pad, level + 1)}"
            for k, v in value.items()
        )
        return "{\n" + ",\n".join(items) + "\n" + pad * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        inner = pad * (level + 1)
        items = (inner + _pretty(v, pad, level + 1) for v in value)
        return "[\n" + ",\n".join(items) + "\n" + pad * level + "]"
    return "".join(_compact(value, 0))


def write_atomic(path, data, mode=0o600):
    """Write bytes or str to `path` via a temporary file, fsync and rename."""
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)

"""Typed records declared like dataclasses, built without the `dataclasses` module.

Why: `dataclasses` imports inspect (and with it ast, dis, tokenize) and compiles code for every class;
on `vessel run`'s path (the engine's and the image store's records) that was ~20 ms of imports, a
fifth of the command's time (measured with -X importtime, bench/engine.py). The declarations stay the
same: annotated fields, plain defaults, `field(default_factory=...)`; `@record` (or
`@record(frozen=True)`) gives __init__, __eq__ and __repr__ (and __hash__ when frozen), and
`fields`, `asdict` and `replace` do what their dataclasses namesakes do.
"""

__all__ = ["record", "field", "fields", "asdict", "replace"]

_MISSING = object()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


def field(*, default_factory):
    """A field whose default is made fresh for each record (a list, a dict, another record)."""
    return _Factory(default_factory)


def record(cls=None, *, frozen=False):
    """The class decorator: the annotated names of the class (after those of a record it derives from)
    become its fields, in order."""
    if cls is None:
        return lambda klass: record(klass, frozen=frozen)
    spec = list(getattr(cls, "_record_fields", ()))
    for name in cls.__dict__.get("__annotations__", {}):
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, _Factory):
            delattr(cls, name)
            spec.append((name, _MISSING, default.make))
        else:
            spec.append((name, default, None))
    cls._record_fields = tuple(spec)
    cls.__init__ = _init
    cls.__eq__ = _eq
    cls.__repr__ = _repr
    if frozen:
        cls.__setattr__ = cls.__delattr__ = _refuse_change
        cls.__hash__ = _hash
    else:
        cls.__hash__ = None
    return cls


def _init(self, *args, **kwargs):
    spec = self._record_fields
    kind = type(self).__name__
    if len(args) > len(spec):
        raise TypeError(f"{kind}() takes {len(spec)} positional arguments but {len(args)} were given")
    for index, (name, default, factory) in enumerate(spec):
        if index < len(args):
            if name in kwargs:
                raise TypeError(f"{kind}() got multiple values for argument '{name}'")
            value = args[index]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif factory is not None:
            value = factory()
        elif default is not _MISSING:
            value = default
        else:
            raise TypeError(f"{kind}() missing required argument: '{name}'")
        object.__setattr__(self, name, value)
    if kwargs:
        raise TypeError(f"{kind}() got an unexpected keyword argument '{next(iter(kwargs))}'")


def _values(obj):
    return tuple(getattr(obj, name) for name, _, _ in obj._record_fields)


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self):
    return hash(_values(self))


def _repr(self):
    inside = ", ".join(f"{name}={getattr(self, name)!r}" for name, _, _ in self._record_fields)
    return f"{type(self).__qualname__}({inside})"


def _refuse_change(self, name, *value):
    raise AttributeError(f"cannot assign to field '{name}' of a frozen {type(self).__name__}")


def fields(obj_or_class):
    """The field names of a record or record class, in order."""
    return tuple(name for name, _, _ in obj_or_class._record_fields)


def asdict(obj):
    """A record as a dict, nested records, lists, tuples and dicts converted too (copies throughout)."""
    if hasattr(type(obj), "_record_fields"):
        return {name: asdict(getattr(obj, name)) for name, _, _ in obj._record_fields}
    if isinstance(obj, (list, tuple)):
        return type(obj)(asdict(item) for item in obj)
    if isinstance(obj, dict):
        return {asdict(key): asdict(value) for key, value in obj.items()}
    return obj


def replace(obj, **changes):
    """A copy of a record with some fields changed."""
    return type(obj)(**{name: changes.pop(name, getattr(obj, name)) for name in fields(obj)}, **changes)

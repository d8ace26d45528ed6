"""vessel.records: dataclass-style records without the dataclasses module."""

import pytest

from vessel.records import asdict, field, fields, record, replace


@record
class Inner:
    name: str
    size: int = 0


@record
class Outer:
    title: str
    items: list = field(default_factory=list)
    inner: Inner = field(default_factory=lambda: Inner("x"))


@record(frozen=True)
class Pair:
    left: str = ""
    right: int = 0


def test_init_defaults_factories_and_errors():
    a, b = Outer("a"), Outer("b")
    assert a.items == [] and a.items is not b.items and a.inner == Inner("x", 0)
    assert Outer("t", [1], inner=Inner("y", 2)).items == [1]
    with pytest.raises(TypeError, match="missing required argument: 'title'"):
        Outer()
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        Outer("t", nope=1)
    with pytest.raises(TypeError, match="multiple values for argument 'title'"):
        Outer("t", title="u")
    with pytest.raises(TypeError, match="takes 3 positional arguments"):
        Outer(1, 2, 3, 4)


def test_eq_repr_hash_and_frozen():
    assert Inner("a", 1) == Inner("a", 1) != Inner("a", 2)
    assert Inner("a") != Pair("a")
    assert repr(Inner("a", 1)) == "Inner(name='a', size=1)"
    with pytest.raises(TypeError):
        hash(Inner("a"))
    assert hash(Pair("a", 1)) == hash(Pair("a", 1))
    with pytest.raises(AttributeError):
        Pair().left = "b"


def test_fields_asdict_replace():
    outer = Outer("t", [Inner("i", 1), {"k": Inner("j")}])
    assert fields(Outer) == fields(outer) == ("title", "items", "inner")
    document = asdict(outer)
    assert document == {"title": "t", "items": [{"name": "i", "size": 1}, {"k": {"name": "j", "size": 0}}],
                        "inner": {"name": "x", "size": 0}}
    assert document["items"] is not outer.items
    changed = replace(outer, title="u")
    assert (changed.title, changed.items, changed.inner) == ("u", outer.items, outer.inner)
    assert replace(Pair("a", 1), right=2) == Pair("a", 2)
    with pytest.raises(TypeError):
        replace(outer, nope=1)

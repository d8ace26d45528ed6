"""`--format` templates: what works, and Go's parse and execution errors worded as Docker's."""

import pytest

from vessel.cli.images import render
from vessel.errors import InvalidArgument

ROWS = [{"Names": "web", "Labels": {"team": "blue"}, "Label": {"team": "blue"}, "Ports": None}]


@pytest.mark.parametrize("template, expected", [
    ("{{.Names}}", "web"), ("{{ .Names }}", "web"), ("{{json .Names}}", '"web"'),
    ("{{index .Labels \"team\"}}", "blue"), ("{{.Label \"team\"}}", "blue"), ("{{.Label \"none\"}}", ""),
    ("{{.Labels.team}} {{.Labels.none}}", "blue <no value>"), ("{{.Ports}}", "<no value>"),
    ("{{index .Labels}}", "map[team:blue]"), ("a {{- .Names -}} b", "awebb"), ("}} {{.Names}}", "}} web"),
    ("{{json .}}", '{"Names":"web","Labels":{"team":"blue"},"Label":{"team":"blue"},"Ports":null}'),
    ("{{upper .Names}}", "WEB"),
])
def test_supported_placeholders(template, expected):
    assert render(template, ROWS) == expected


def test_table_header_and_rows():
    text = render("table {{.Names}}\\t{{.Label \"team\"}}", ROWS, {"Names": "NAMES"})
    assert text.splitlines() == ["NAMES     LABEL", "web       blue"]


@pytest.mark.parametrize("template, message", [
    ("{{.Nope", "template parsing error: template: :1: unclosed action"),
    ("ok\n{{.Names}} {{json .Names", "template parsing error: template: :2: unclosed action"),
    ("{{}}", "template parsing error: template: :1: missing value for command"),
    ("{{nope .Names}}", 'template parsing error: template: :1: function "nope" not defined'),
    ("{{json .Labels \"team\"}}", "template parsing error: template: :1: wrong number of args for json: want 1 got 2"),
])
def test_parse_errors(template, message):
    with pytest.raises(InvalidArgument) as caught:
        render(template, [])  # refused before any record is rendered
    assert str(caught.value) == message


@pytest.mark.parametrize("template, position, node", [
    ("{{.Nope}}", "1:2", ".Nope"), ("x {{ json .Nope }}", "1:10", ".Nope"), ("a\n  {{.Nope.Deeper}}", "2:4",
                                                                             ".Nope.Deeper"),
    ("table {{.Names}}\\t{{.Nope}}", "1:13", ".Nope"),  # columns count after "table "
])
def test_unknown_field(template, position, node):
    with pytest.raises(InvalidArgument) as caught:
        render(template, ROWS, kind="*formatter.ContainerContext")
    assert str(caught.value) == (f'template: :{position}: executing "" at <{node}>: can\'t evaluate field '
                                 f"{node.split('.')[1]} in type *formatter.ContainerContext")

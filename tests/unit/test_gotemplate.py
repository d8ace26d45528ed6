"""vessel.cli.gotemplate: Go's text/template as Docker's CLI runs it for --format, and render()'s use of it."""

import pytest

from vessel.cli.gotemplate import parse
from vessel.cli.images import render
from vessel.errors import InvalidArgument

DOC = {
    "Name": "/web",
    "State": {"Running": True, "Status": "running", "ExitCode": 0, "Pid": 42},
    "Config": {"Cmd": ["sh", "-c", "a && b"], "Labels": {"b": "2", "a": "1"}, "User": None, "Env": [],
               "Entrypoint": None},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "alt": {"IPAddress": "10.0.0.2"}},
                        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
    "Mounts": [{"Type": "volume"}, {"Type": "bind"}],
    "Label": {"com.x": "y"},
    "Ratio": 1.5,
}


def run(template, data=DOC, kind="object"):
    return parse(template).execute(data, kind)


def failure(template, data=DOC):
    with pytest.raises(InvalidArgument) as caught:
        run(template, data)
    return str(caught.value)


@pytest.mark.parametrize("template, expected", [
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.0.0.2 172.17.0.2 "),  # sorted keys
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ('{{join .Config.Cmd " "}}', "sh -c a && b"),
    ('{{.Name | printf "%s!"}}', "/web!"),
    ('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{"\\n"}}{{end}}', "a=1\nb=2\n"),
    ("{{lower .Name}}", "/web"),
    ("{{len .Mounts}}", "2"),
    ('{{(index .NetworkSettings.Ports "80/tcp")}}', "[map[HostIp:0.0.0.0 HostPort:8080]]"),
    ('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}', "8080"),
    ('{{.Label "com.x"}}|{{.Label "none"}}', "y|"),  # a map called with a key: ps's {{.Label "key"}}
])
def test_what_docker_users_write(template, expected):
    assert run(template) == expected


@pytest.mark.parametrize("template, expected", [
    ("a {{- .Name -}} b", "a/webb"),
    ("a\n\t {{- .Name}}", "a/web"),
    ("{{.Name -}} \n x", "/webx"),
    ("{{-3}} {{- -3}}", "-3-3"),  # a minus without a space is a number's sign
    ("a{{/* a comment */}}b", "ab"),
    ("a {{- /* trimmed */ -}} b", "ab"),
    ("}} {{ .Name }}", "}} /web"),
    ('{{"}}"}}', "}}"),
])
def test_text_trim_markers_and_comments(template, expected):
    assert run(template) == expected


@pytest.mark.parametrize("template, expected", [
    ("{{.}}", "map[k:v]"),
    ("{{$}}", "map[k:v]"),
    ('{{"a\\tb\\u00e9\\x41\\101\\\\\\""}}', 'a\tbéAA\\"'),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{'a'}} {{0x1F}} {{0o17}} {{017}} {{1_000}} {{-5}} {{+5}}", "97 31 15 15 1000 -5 5"),
    ("{{1.5}} {{3.0}} {{1e3}} {{.5}}", "1.5 3 1000 0.5"),
    ("{{true}} {{false}}", "true false"),
    ("{{(.k)}} {{(print .k).X}}", "v <no value>"),
])
def test_operands(template, expected):
    assert run(template, {"k": "v"}) == expected


@pytest.mark.parametrize("template, expected", [
    ('{{.Name | printf "%s-%s" "x"}}', "x-/web"),  # the previous result is the LAST argument
    ("{{.Config.Cmd | len | printf \"%d items\"}}", "3 items"),
    ('{{"abc" | printf "%q" | printf "%s!"}}', '"abc"!'),
    ("{{.Name | len}}", "4"),
])
def test_pipelines(template, expected):
    assert run(template) == expected


@pytest.mark.parametrize("template, expected", [
    ("{{$x := .Name}}{{$x}}", "/web"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),  # = sets the outer variable
    ("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", "21"),  # := inside shadows until {{end}}
    ("{{with $s := .State}}{{$s.Status}}{{end}}", "running"),
    ("{{range $v := .Config.Cmd}}{{$v}}.{{end}}", "sh.-c.a && b."),
    ("{{range $i, $v := .Config.Cmd}}{{$i}}{{end}}", "012"),
    ("{{range .Config.Cmd}}{{$.Name}}{{end}}", "/web/web/web"),  # $ is the data passed to execute
    ("{{$i := 0}}{{range $i, $v := .Mounts}}{{end}}{{$i}}", "0"),  # range's own $i ended with it
    ("{{$n := 0}}{{range .Mounts}}{{$n = .Type}}{{end}}{{$n}}", "bind"),
])
def test_variables(template, expected):
    assert run(template) == expected


def test_assigned_range_variables():
    assert run("{{$i := 9}}{{$v := 9}}{{range $i, $v = .Config.Cmd}}{{end}}{{$i}} {{$v}}") == "2 a && b"


@pytest.mark.parametrize("template, expected", [
    ("{{if 0}}a{{else if .Config.Env}}b{{else if .Name}}c{{else}}d{{end}}", "c"),
    ("{{if .Config.User}}a{{end}}", ""),
    ("{{range .Config.Env}}x{{else}}empty{{end}}", "empty"),
    ("{{range .Config.Entrypoint}}x{{else}}nil{{end}}", "nil"),
    ("{{range .Config.Labels}}{{.}}{{end}}", "12"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ('{{range .Config.Cmd}}{{if eq . "-c"}}{{continue}}{{end}}{{.}};{{end}}', "sh;a && b;"),
    ('{{range .Config.Cmd}}{{if eq . "-c"}}{{break}}{{end}}{{.}};{{end}}', "sh;"),
    ('{{range .Mounts}}{{range $.Config.Cmd}}{{break}}{{end}}{{.Type}}{{end}}', "volumebind"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{with .Config.User}}u{{else}}no user{{end}}", "no user"),
    ("{{with .Config.User}}u{{else with .Name}}{{.}}{{else}}none{{end}}", "/web"),
])
def test_control(template, expected):
    assert run(template) == expected


@pytest.mark.parametrize("value, truth", [
    (False, False), (0, False), (0.0, False), (None, False), ("", False), ([], False), ({}, False),
    (True, True), (-1, True), (0.5, True), ("0", True), ([0], True), ({"a": None}, True),
])
def test_truthiness(value, truth):
    assert run("{{if .V}}yes{{else}}no{{end}}", {"V": value}) == ("yes" if truth else "no")


@pytest.mark.parametrize("value, printed", [
    (None, "<no value>"), (True, "true"), (False, "false"), (42, "42"), ("raw <text>", "raw <text>"),
    (["a", 1, None], "[a 1 <nil>]"), ({"b": 1, "a": [True]}, "map[a:[true] b:1]"),
    (1.5, "1.5"), (3.0, "3"), (-0.25, "-0.25"), (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"),
    (1e-05, "1e-05"), (0.0001, "0.0001"), (1e21, "1e+21"), (0.0, "0"),
])
def test_printing(value, printed):
    assert run("{{.V}}", {"V": value}) == printed


@pytest.mark.parametrize("template, expected", [
    ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" 3}} {{or 0 \"\"}}", "0 2 3 "),
    ("{{or 1 (index .Config.Cmd 99)}} {{and 0 (index .Config.Cmd 99)}}", "1 0"),  # they stop at the decider
    ("{{.Name | and 1}} {{not 0}} {{not .Name}}", "/web true false"),
    ('{{len .Name}} {{len .Config.Labels}} {{len .Config.Entrypoint}} {{len "é"}}', "4 2 0 2"),
    ('{{index .Config.Cmd 1}} {{index .NetworkSettings.Networks "alt" "IPAddress"}} {{index .Config.Labels "x"}}',
     "-c 10.0.0.2 <no value>"),
    ('{{index .Config.Cmd}} {{index "abc" 1}}', "[sh -c a && b] 98"),
    ('{{slice .Config.Cmd 1}} {{slice .Config.Cmd 1 2}} {{slice "hello" 1 3}} {{slice "hello"}}',
     "[-c a && b] [-c] el hello"),
    ('{{print 1 2 "a" "b" 3 nil}}|{{print}}|{{println 1 "a"}}', "1 2ab3 <nil>||1 a\n"),
    ('{{eq .State.ExitCode 0}} {{eq "b" "a" "b"}} {{eq 1 2 3}} {{eq .Config.User nil}} {{eq 1 1.0}}',
     "true true false true true"),
    ('{{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2}} {{lt 1 1.5}}', "true true true true false true"),
    ("{{html \"<a href='x'>&\\\"</a>\"}}", "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"),
    ('{{html .Config.User}} {{html 1 2}}', "&lt;no value&gt; 1 2"),
    ("{{js \"it's <b>\\\"&=\\n\"}}", "it\\'s \\u003Cb\\u003E\\\"\\u0026\\u003D\\u000A"),
    ('{{urlquery "a b&c=d/é"}}', "a+b%26c%3Dd%2F%C3%A9"),
])
def test_go_builtins(template, expected):
    assert run(template) == expected


@pytest.mark.parametrize("template, expected", [
    ('{{printf "%s|%v|%d|%t|%q" "s" .Config.Cmd 42 true "a\\"b\\n"}}', 's|[sh -c a && b]|42|true|"a\\"b\\n"'),
    ('{{printf "[%-6s][%6s][%.2s][%06d][%-4d][%+d][% d]" "ab" "ab" "abc" 42 7 5 5}}',
     "[ab    ][    ab][ab][000042][7   ][+5][ 5]"),
    ('{{printf "%5.2f|%.0f|%f|%e|%g|%G|%8.3e|%08.3f" 3.14159 2.5 1.0 1234.5678 0.00001 1e21 1234.5 -3.14159}}',
     " 3.14|2|1.000000|1.234568e+03|1e-05|1E+21|1.234e+03|-003.142"),
    ('{{printf "%x|%X|%#x|%o|%b|%c|%U|%x|%.3d" 255 255 255 8 5 65 65 "hi" 7}}', "ff|FF|0xff|10|101|A|U+0041|6869|007"),
    ('{{printf "%v|%v|%v|%v" 1.5 1e6 nil .Config.Labels}}', "1.5|1e+06|<nil>|map[a:1 b:2]"),
    ('{{printf "%T %T %T %T %T %T" 1 1.5 "s" true .Config.Cmd .Config.Labels}}',
     "int float64 string bool []interface {} map[string]interface {}"),
    ('{{printf "100%%"}}', "100%"),
    ('{{printf "%d %s" 1}}', "1 %!s(MISSING)"),
    ('{{printf "%d" "x" 3 nil}}', "%!d(string=x)%!(EXTRA int=3, <nil>)"),
    ('{{printf "%s %d" 5 1.5}}', "%!s(int=5) %!d(float64=1.5)"),
    ('{{printf "%z" 1}}|{{printf "50%"}}', "%!z(int=1)|50%!(NOVERB)"),
    ('{{printf "%q" .Config.Cmd}}', '["sh" "-c" "a && b"]'),
])
def test_printf(template, expected):
    assert run(template) == expected


@pytest.mark.parametrize("template, expected", [
    ("{{json .Config.Cmd}}", '["sh","-c","a && b"]'),
    ("{{json .Config}}", '{"Cmd":["sh","-c","a && b"],"Labels":{"b":"2","a":"1"},"User":null,"Env":[],'
                         '"Entrypoint":null}'),
    ('{{json "<é&>\\u2028"}}', '"<é&>\\u2028"'),  # Docker turns Go's HTML escaping off; UTF-8 stays raw
    ("{{json 1.0}} {{json 1.5}} {{json 1e21}} {{json 1e-7}} {{json 123456789.0}} {{json true}} {{json nil}}",
     "1 1.5 1e+21 1e-7 123456789 true null"),
    ('{{join .Config.Cmd ","}} [{{join .Config.Entrypoint ","}}]', "sh,-c,a && b []"),
    ('{{split "a:b:c" ":"}} {{split "ab" ""}} {{len (split "" ",")}}', "[a b c] [a b] 1"),
    ('{{lower "AbC"}} {{upper "AbC"}} {{upper .Config.User}}', "abc ABC "),
    ('{{title "hello wOrld-x_y 9z"}}', "Hello WOrld-X_y 9z"),
    ('{{truncate "abcdef" 3}} {{truncate "ab" 3}} {{truncate "abc" 3}}', "abc ab abc"),
    ('[{{pad "x" 2 1}}][{{pad "" 2 1}}]', "[  x ][]"),
])
def test_docker_functions(template, expected):
    assert run(template) == expected


def test_fields_missing():
    assert run("{{.State.Nope}} {{.Name.Nope}} {{.Config.User.Nope}}") == "<no value> <no value> <no value>"
    assert run("{{range .Mounts}}{{.Nope}}{{end}}") == "<no value><no value>"  # . is an element, not the record
    with pytest.raises(InvalidArgument) as caught:
        run("x\n {{with .State}}{{$.Nope}}{{end}}", kind="*formatter.ContainerContext")
    assert str(caught.value) == ('template: :2:18: executing "" at <$.Nope>: can\'t evaluate field Nope in type '
                                 "*formatter.ContainerContext")


@pytest.mark.parametrize("template, message", [
    ("{{.Name", "unclosed action"),
    ("{{.Name\n\n", "unclosed action started at :1"),
    ("{{if .Name}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{range .Mounts}}{{else}}{{else}}{{end}}", "expected end; found {{else}}"),
    ("{{}}", "missing value for command"),
    ("{{if}}{{end}}", "missing value for if"),
    ("{{foo 1}}", 'function "foo" not defined'),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{if 1}}{{$y := 1}}{{end}}{{$y}}", 'undefined variable "$y"'),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{range .Mounts}}{{continue 1}}{{end}}", 'unexpected "1" in {{continue}}'),
    ('{{json .Name "x"}}', "wrong number of args for json: want 1 got 2"),
    ("{{.Name | json .Name}}", "wrong number of args for json: want 1 got 2"),
    ("{{printf}}", "wrong number of args for printf: want at least 1 got 0"),
    ("{{join .Config.Cmd}}", "wrong number of args for join: want 2 got 1"),
    ('{{.Name | "x"}}', "non executable command in pipeline stage 2"),
    ('{{"a".b}}', 'unexpected . after term "\\"a\\""'),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{`abc}}", "unterminated raw quoted string"),
    ('{{"\\q"}}', "invalid syntax"),
    ("{{'ab'}}", "malformed character constant: 'ab'"),
    ("{{1x}}", 'bad number syntax: "1x"'),
    ("{{.a!b}}", "bad character U+0021 '!'"),
    ("{{ ) }}", "unexpected right paren U+0029 ')'"),
    ("{{ (.Name }}", "unclosed left paren"),
    ("{{ # }}", 'unexpected "#" in command'),
    ("{{/* x", "unclosed comment"),
    ("{{/* x */ y}}", "comment ends before closing delimiter"),
    ("{{$a, $b := .Mounts}}", "too many declarations in command"),
    ("{{range $a, $b, $c := .Mounts}}{{end}}", "too many declarations in range"),
    ('{{template "x"}}', "{{template}} is not supported (no named templates in vessel's --format)"),
    ("a\nb\n{{.Name | nope}}", 'function "nope" not defined'),
])
def test_parse_errors(template, message):
    with pytest.raises(InvalidArgument) as caught:
        parse(template)
    assert str(caught.value) == f"template parsing error: template: :{template.count(chr(10)) + 1}: {message}"


@pytest.mark.parametrize("template, error", [
    ("{{index .Config.Cmd 5}}", '1:2: executing "" at <index .Config.Cmd 5>: error calling index: '
                                "index out of range: 5"),
    ('{{index .Config.Cmd "x"}}', '1:2: executing "" at <index .Config.Cmd "x">: error calling index: '
                                  "cannot index slice/array with type string"),
    ("{{index .Config.Labels 1}}", '1:2: executing "" at <index .Config.Labels 1>: error calling index: '
                                   "value has type int; should be string"),
    ("{{len .State.Pid}}", '1:2: executing "" at <len .State.Pid>: error calling len: len of type int'),
    ("{{slice .Config.Cmd 2 1}}", '1:2: executing "" at <slice .Config.Cmd 2 1>: error calling slice: '
                                  "invalid slice index: 2 > 1"),
    ('x {{eq 1 "a"}}', '1:4: executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison'),
    ("{{lt true false}}", '1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison'),
    ("{{eq 1}}", '1:2: executing "" at <eq 1>: error calling eq: missing argument for comparison'),
    ('{{.Name | join ","}}', '1:15: executing "" at <",">: wrong type for value; expected []string; got string'),
    ("{{lower .State.Pid}}", '1:8: executing "" at <.State.Pid>: wrong type for value; expected string; got int'),
    ("{{range .Name}}{{end}}", '1:8: executing "" at <{{range .Name}}{{end}}>: range can\'t iterate over /web'),
    ('{{.Name "x"}}', '1:2: executing "" at <.Name>: Name is not a method but has arguments'),
    ('{{$ "x"}}', '1:2: executing "" at <$>: can\'t give argument to non-function $'),
    ("{{nil}}", '1:2: executing "" at <nil>: nil is not a command'),
    ("a\n  {{.Nope.Deeper}}", '2:4: executing "" at <.Nope.Deeper>: can\'t evaluate field Nope in type object'),
])
def test_execution_errors(template, error):
    assert failure(template) == f"template: :{error}"


def test_render_one_line_per_record():
    rows = [{"A": "x", "B": ["1", "2"]}, {"A": "y", "B": []}]
    assert render("{{.A}}:{{join .B \",\"}}", rows) == "x:1,2\ny:"
    assert render("{{.A}}", []) == ""


def test_table_header_runs_the_template_on_the_headers():
    rows = [{"Names": "web", "Size": "1kB", "Label": {"t": "blue"}}]
    text = render('table {{upper .Names}}\\t{{.Size | printf "%-6s"}}|\\t{{.Label "t"}}\\t{{pad .Names 1 0}}', rows,
                  {"Names": "NAMES"})
    assert text.splitlines() == ["NAMES     SIZE  |   LABEL      NAMES", "WEB       1kB   |   blue       web"]
    # Docker keeps the column's name through json, split, join, title, lower, upper and truncate
    assert render("table {{lower .Names}}\\t{{json .Size}}\\t{{truncate .Names 1}}", rows).splitlines()[0] == (
        "NAMES     SIZE      NAMES")
    # an error in the header row ends it there, as Docker's header ignores it
    tagged = [{"Names": "web", "Tags": ["a", "b"]}]
    assert render("table {{.Names}}\\t{{range .Tags}}{{.}}{{end}}", tagged).splitlines() == ["NAMES", "web       ab"]


def test_table_rows_with_a_varying_number_of_cells():
    rows = [{"A": "x", "B": ""}, {"A": "y", "B": "z"}]
    assert render("table {{.A}}{{if .B}}\\t{{.B}}{{end}}", rows).splitlines() == ["A         B", "x", "y         z"]

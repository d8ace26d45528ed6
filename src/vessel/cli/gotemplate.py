"""Go's text/template language, as Docker's CLI runs it for `--format`.

Written by hand: no Python library reproduces Go's semantics closely enough for the templates Docker users
keep in their scripts (the previous result passed as a pipeline's last argument, `$` and variable scoping,
`range`/`with`/`else`, Go's truthiness, value printing and fmt verbs, Docker's extra functions).

The shape is Go's own: a lexer (_Lexer) turns the text into tokens, a recursive-descent parser (_Parser)
builds node objects, and an evaluator (_State) walks them over a JSON-like document. Parse and execution
errors carry Go's wording (`template: :LINE: ...`, `template: :LINE:COL: executing "" at <NODE>: ...`).

Not supported: named templates (`define`, `template`, `block`), `call`, and fmt's `%[n]` argument indexes
and `*` widths.
"""

import json
import math
import re

from vessel.errors import InvalidArgument

__all__ = ["Template", "parse"]


def parse(text):
    """The Template for `text`; InvalidArgument ("template parsing error: ...") where Go's parser refuses it."""
    return Template(text, _Parser(text).parse())


class Template:
    """A parsed template: execute() renders a document, header() Docker's table header row."""

    def __init__(self, text, nodes):
        self.text, self.nodes = text, nodes

    def execute(self, data, kind="object"):
        """The text for `data`. A field missing from `data` itself fails as Go fails on a struct without that
        field, naming `kind` as the type; a field missing deeper, or asked of a non-document, is nil."""
        state = _State(self.text, data, kind)
        state.walk(data, self.nodes)
        return "".join(state.out)

    def header(self, headers):
        """Docker's table header: each top-level `.X` is headers.get("X", "X".upper()), and json, split, join,
        title, lower, upper and truncate give back their first argument. As in Docker, an execution error
        ends the header where it happened."""
        state = _State(self.text, headers, "object", header_mode=True)
        try:
            state.walk(headers, self.nodes)
        except InvalidArgument:
            pass
        return "".join(state.out)


# -- lexer -------------------------------------------------------------------------------------------------

TEXT, LEFT_DELIM, RIGHT_DELIM, SPACE, EOF, ERROR = "text", "{{", "}}", "space", "EOF", "error"
FIELD, VARIABLE, DOT, IDENTIFIER, KEYWORD = "field", "variable", "dot", "identifier", "keyword"
BOOL, NIL, NUMBER, CHAR_CONSTANT, STRING, RAW_STRING = "bool", "nil", "number", "char constant", "string", "raw"
PIPE, DECLARE, ASSIGN, LEFT_PAREN, RIGHT_PAREN, CHAR = "|", ":=", "=", "(", ")", "char"

_SPACES = " \t\r\n"
_KEYWORDS = frozenset(("block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"))
_SYMBOLS = {"=": ASSIGN, "|": PIPE, "(": LEFT_PAREN, ")": RIGHT_PAREN}
_QUOTES = {'"': (STRING, re.compile(r'"(?:[^"\\\n]|\\[^\n])*"'), "unterminated quoted string"),
           "`": (RAW_STRING, re.compile(r"`[^`]*`"), "unterminated raw quoted string"),
           "'": (CHAR_CONSTANT, re.compile(r"'(?:[^'\\\n]|\\[^\n])*'"), "unterminated character constant")}
_WORD = re.compile(r"[.$]?\w*")
_NUMBER_TEXT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]*|0[oO][0-7_]*|0[bB][01_]*"
                          r"|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]*)?)")
_OPERAND_STARTS = frozenset((BOOL, CHAR_CONSTANT, DOT, FIELD, IDENTIFIER, NUMBER, NIL, RAW_STRING, STRING,
                             VARIABLE, LEFT_PAREN))
_LITERALS = frozenset((BOOL, NIL, NUMBER, CHAR_CONSTANT, STRING, RAW_STRING))


class _Token:
    """One lexical item: its kind, its source text (or an error's message), its offset and line."""

    __slots__ = ("kind", "value", "pos", "line")

    def __init__(self, kind, value, pos, line):
        self.kind, self.value, self.pos, self.line = kind, value, pos, line

    def __str__(self):  # as Go's parser names a token in "unexpected ..." errors
        if self.kind in (EOF, ERROR):
            return "EOF" if self.kind == EOF else self.value
        if self.kind in (KEYWORD, DOT, NIL):
            return f"<{self.value}>"
        return _go_quote(self.value[:10]) + "..." if len(self.value) > 10 else _go_quote(self.value)


class _Lexer:
    """Go's lexer: the text as _Tokens, ending with an EOF token or with an ERROR one (its message)."""

    def __init__(self, text):
        self.text, self.tokens = text, []

    def tokenize(self):
        text, pos = self.text, 0
        while pos is not None:
            start = text.find("{{", pos)
            if start < 0:
                if pos < len(text):
                    self.emit(TEXT, pos, text[pos:])
                self.emit(EOF, len(text), "")
                break
            trim = text.startswith("-", start + 2) and _space_at(text, start + 3)  # "{{- " trims before
            chunk = text[pos:start].rstrip(_SPACES) if trim else text[pos:start]
            if chunk:
                self.emit(TEXT, pos, chunk)
            inside = start + (4 if trim else 2)
            if text.startswith("/*", inside):
                pos = self.comment(inside)
            else:
                self.emit(LEFT_DELIM, start, "{{")
                pos = self.action(inside)
        return self.tokens

    def emit(self, kind, pos, value):
        self.tokens.append(_Token(kind, value, pos, _line(self.text, pos)))

    def error(self, pos, message):
        self.emit(ERROR, pos, message)
        return None

    def right_delim(self, pos):
        """(whether a closing delimiter starts at pos, whether it is " -}}", which trims what follows)."""
        if _space_at(self.text, pos) and self.text.startswith("-}}", pos + 1):
            return True, True
        return self.text.startswith("}}", pos), False

    def after_delim(self, pos, trim):
        pos += 4 if trim else 2
        while trim and _space_at(self.text, pos):
            pos += 1
        return pos

    def comment(self, pos):
        end = self.text.find("*/", pos + 2)
        if end < 0:
            return self.error(pos, "unclosed comment")
        found, trim = self.right_delim(end + 2)
        if not found:
            return self.error(end + 2, "comment ends before closing delimiter")
        return self.after_delim(end + 2, trim)

    def action(self, pos):
        """The tokens of one action; the offset after its closing delimiter (None after an error)."""
        text, depth = self.text, 0
        while True:
            found, trim = self.right_delim(pos)
            if found:
                if depth:
                    return self.error(pos, "unclosed left paren")
                self.emit(RIGHT_DELIM, pos + 2 if trim else pos, "}}")
                return self.after_delim(pos, trim)
            if pos >= len(text):
                return self.error(pos, "unclosed action")
            char = text[pos]
            if char in _SPACES:
                pos = self.spaces(pos)
            elif char == ":":
                if not text.startswith(":=", pos):
                    return self.error(pos, "expected :=")
                self.emit(DECLARE, pos, ":=")
                pos += 2
            elif char in _SYMBOLS:
                depth += {"(": 1, ")": -1}.get(char, 0)
                if depth < 0:
                    return self.error(pos, f"unexpected right paren {_rune(char)}")
                self.emit(_SYMBOLS[char], pos, char)
                pos += 1
            elif char in _QUOTES:
                pos = self.quoted(pos)
            elif char == "." and text[pos + 1:pos + 2].isdigit() or char in "+-0123456789":
                pos = self.number(pos)
            elif char in ".$" or _is_alnum(char):
                pos = self.word(pos)
            elif char.isascii() and char.isprintable():
                self.emit(CHAR, pos, char)
                pos += 1
            else:
                return self.error(pos, f"unrecognized character in action: {_rune(char)}")
            if pos is None:
                return None

    def spaces(self, pos):
        end = pos
        while _space_at(self.text, end):
            end += 1
        if self.right_delim(end - 1) == (True, True):
            end -= 1  # that space belongs to " -}}"
        if end > pos:
            self.emit(SPACE, pos, self.text[pos:end])
        return end

    def at_terminator(self, pos):
        return pos >= len(self.text) or self.text[pos] in _SPACES + ".,|:()" or self.text.startswith("}}", pos)

    def word(self, pos):
        """`.Field`, `$variable`, `.` or `$` alone, a keyword, true/false/nil or a function's name."""
        word = _WORD.match(self.text, pos).group()
        end = pos + len(word)
        if not self.at_terminator(end):
            return self.error(pos, f"bad character {_rune(self.text[end])}")
        kind = {".": DOT, "$": VARIABLE, "true": BOOL, "false": BOOL, "nil": NIL}.get(word)
        if kind is None:
            kind = {".": FIELD, "$": VARIABLE}.get(word[0], KEYWORD if word in _KEYWORDS else IDENTIFIER)
        self.emit(kind, pos, word)
        return end

    def quoted(self, pos):
        kind, pattern, unterminated = _QUOTES[self.text[pos]]
        match = pattern.match(self.text, pos)
        if match is None:
            return self.error(pos, unterminated)
        self.emit(kind, pos, match.group())
        return match.end()

    def number(self, pos):
        end = _NUMBER_TEXT.match(self.text, pos).end()
        if end < len(self.text) and _is_alnum(self.text[end]):
            return self.error(pos, f"bad number syntax: {_go_quote(self.text[pos:end + 1])}")
        self.emit(NUMBER, pos, self.text[pos:end])
        return end


def _space_at(text, pos):
    return 0 <= pos < len(text) and text[pos] in _SPACES


def _is_alnum(char):
    return char == "_" or char.isalnum()


def _line(text, pos):
    return text.count("\n", 0, pos) + 1


def _rune(char):
    """Go's %#U: U+0029 ')'."""
    code = f"U+{ord(char):04X}"
    return f"{code} '{char}'" if char.isprintable() else code


# -- parser ------------------------------------------------------------------------------------------------

class _Parser:
    """Go's parser: the tokens as a list of nodes, with Go's checks (functions and variables defined,
    arguments counted, break/continue inside range) and its error wording."""

    def __init__(self, text):
        self.text, self.tokens = text, _Lexer(text).tokenize()
        self.index = self.furthest = 0  # furthest: the token Go's errors take their line from
        self.variables = ["$"]
        self.range_depth = self.action_line = 0

    def parse(self):
        nodes = []
        while self.peek().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, _Marker):
                self.fail(f"unexpected {node}")
            nodes.append(node)
        return nodes

    # the token stream

    def next(self):
        token = self.peek()
        self.index += 1
        return token

    def peek(self):
        self.furthest = max(self.furthest, self.index)
        return self.tokens[self.index]

    def backup(self):
        self.index -= 1

    def next_non_space(self):
        token = self.next()
        while token.kind == SPACE:
            token = self.next()
        return token

    def peek_non_space(self):
        token = self.next_non_space()
        self.backup()
        return token

    def fail(self, message, pos=None):
        line = self.tokens[self.furthest].line if pos is None else _line(self.text, pos)
        raise InvalidArgument(f"template parsing error: template: :{line}: {message}")

    def unexpected(self, token, context):
        if token.kind != ERROR:
            self.fail(f"unexpected {token} in {context}")
        extra = ""
        if self.action_line and self.action_line != token.line:
            extra = f" in action started at :{self.action_line}"
            if token.value.endswith(" action"):
                extra = extra[len(" in action"):]
        self.fail(token.value + extra)

    # the grammar

    def text_or_action(self):
        token = self.next_non_space()
        if token.kind == TEXT:
            return _Text(token.value)
        if token.kind != LEFT_DELIM:
            self.unexpected(token, "input")
        self.action_line = token.line
        node = self.action()
        self.action_line = 0
        return node

    def action(self):
        token = self.next_non_space()
        if token.kind == KEYWORD:
            if token.value in ("if", "range", "with"):
                return self.control(token.value)
            if token.value in ("break", "continue"):
                return self.jump(token.value)
            if token.value == "else":
                following = self.peek_non_space()
                if not (following.kind == KEYWORD and following.value in ("if", "with")):
                    self.expect(RIGHT_DELIM, "else")
                return _Marker("else")  # `else if`/`else with`: control() takes the if or with
            if token.value == "end":
                self.expect(RIGHT_DELIM, "end")
                return _Marker("end")
            self.fail(f"{{{{{token.value}}}}} is not supported (no named templates in vessel's --format)")
        self.backup()
        return _Action(self.pipeline("command", RIGHT_DELIM))

    def expect(self, kind, context):
        token = self.next_non_space()
        if token.kind != kind:
            self.unexpected(token, context)
        return token

    def jump(self, word):
        token = self.next_non_space()
        if token.kind != RIGHT_DELIM:
            self.unexpected(token, f"{{{{{word}}}}}")
        if not self.range_depth:
            self.fail(f"{{{{{word}}}}} outside {{{{range}}}}")
        return _Jump(word)

    def control(self, word):
        """{{if}}, {{range}} or {{with}} up to its {{end}}; the variables declared inside end with it."""
        saved = len(self.variables)
        pipe = self.pipeline(word, RIGHT_DELIM)
        self.range_depth += word == "range"
        body, end = self.item_list()
        self.range_depth -= word == "range"
        otherwise = None
        if end.word == "else":
            following = self.peek()
            if word != "range" and following.kind == KEYWORD and following.value == word:
                self.next()  # {{else if p}} is {{else}}{{if p}}...{{end}} sharing the {{end}}
                otherwise = [self.control(word)]
            else:
                otherwise, end = self.item_list()
                if end.word != "end":
                    self.fail(f"expected end; found {end}")
        del self.variables[saved:]
        return {"if": _If, "range": _Range, "with": _With}[word](pipe, body, otherwise)

    def item_list(self):
        """Nodes up to an {{else}} or {{end}}: (the nodes, that marker)."""
        nodes = []
        while self.peek_non_space().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, _Marker):
                return nodes, node
            nodes.append(node)
        self.fail("unexpected EOF")

    def pipeline(self, context, end):
        pipe = _Pipe(self.peek_non_space().pos)
        self.declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.kind == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.kind not in _OPERAND_STARTS:
                self.unexpected(token, context)
            self.backup()
            pipe.commands.append(self.command())

    def declarations(self, pipe, context):
        """`$x :=`, `$x =` or, in range, `$i, $v :=` opening a pipeline."""
        while self.peek_non_space().kind == VARIABLE:
            start = self.index
            variable = self.next()
            following = self.peek_non_space()
            if following.kind not in (DECLARE, ASSIGN) and (following.kind, following.value) != (CHAR, ","):
                self.index = start  # an operand, not a declaration
                return
            self.next()
            pipe.declarations.append(variable.value)
            self.variables.append(variable.value)
            if following.kind != CHAR:
                pipe.is_assign = following.kind == ASSIGN
                return
            if context != "range" or len(pipe.declarations) > 1:
                self.fail(f"too many declarations in {context}")
            if self.peek_non_space().kind not in (VARIABLE, RIGHT_DELIM, RIGHT_PAREN):
                self.fail("range can only initialize variables")

    def check_pipeline(self, pipe, context):
        if not pipe.commands:
            self.fail(f"missing value for {context}")
        for stage, command in enumerate(pipe.commands):
            first = command.args[0]
            if stage and isinstance(first, (_Literal, _Dot)):
                self.fail(f"non executable command in pipeline stage {stage + 1}")
            if isinstance(first, _Identifier):  # a later stage gets the previous result as its last argument
                self.check_arity(first, len(command.args) - 1 + (stage > 0))

    def check_arity(self, identifier, count):
        _, fixed, variadic = _FUNCTIONS[identifier.name]
        if variadic and count < len(fixed):
            want = f"at least {len(fixed)}"
        elif not variadic and count != len(fixed):
            want = str(len(fixed))
        else:
            return
        self.fail(f"wrong number of args for {identifier.name}: want {want} got {count}", identifier.pos)

    def command(self):
        command = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                if command.args and isinstance(operand, _Identifier):
                    self.check_arity(operand, 0)  # a function as an argument is called without arguments
                command.args.append(operand)
            token = self.next()
            if token.kind == SPACE:
                continue
            if token.kind in (RIGHT_DELIM, RIGHT_PAREN):
                self.backup()
            elif token.kind != PIPE:
                self.unexpected(token, "operand")
            break
        if not command.args:
            self.fail("empty command")
        return command

    def operand(self):
        """A term, with the fields that follow it (`.A.B`, `$x.A`, `(pipeline).A`)."""
        node = self.term()
        if node is None or self.peek().kind != FIELD:
            return node
        names = []
        while self.peek().kind == FIELD:
            names.append(self.next().value[1:])
        if isinstance(node, (_Field, _Variable)):
            node.names += names
            return node
        if isinstance(node, (_Literal, _Dot)):
            self.fail(f"unexpected . after term {_go_quote(str(node))}")
        return _Chain(node, names, node.pos)

    def term(self):
        token = self.next_non_space()
        if token.kind == IDENTIFIER:
            if token.value not in _FUNCTIONS:
                self.fail(f"function {_go_quote(token.value)} not defined")
            return _Identifier(token.value, token.pos)
        if token.kind == DOT:
            return _Dot(token.pos)
        if token.kind == VARIABLE:
            if token.value not in self.variables:
                self.fail(f"undefined variable {_go_quote(token.value)}")
            return _Variable([token.value], token.pos)
        if token.kind == FIELD:
            return _Field([token.value[1:]], token.pos)
        if token.kind == LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", RIGHT_PAREN)
        if token.kind in _LITERALS:
            return _Literal(self.literal(token), token.value, token.pos)
        self.backup()
        return None

    def literal(self, token):
        if token.kind in (BOOL, NIL):
            return None if token.kind == NIL else token.value == "true"
        if token.kind == NUMBER:
            value = _number(token.value)
            if value is None:
                self.fail(f"illegal number syntax: {_go_quote(token.value)}")
            return value
        try:
            value = _unquote(token.value)
        except ValueError:
            self.fail("invalid syntax")
        if token.kind != CHAR_CONSTANT:
            return value
        if len(value) != 1:
            self.fail(f"malformed character constant: {token.value}")
        return ord(value)


_INTEGER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ESCAPE = re.compile(r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|)")
_ESCAPED = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _number(text):
    """A number constant's value as Go's template takes it (float when written with . or an exponent)."""
    clean = text.replace("_", "")
    if _INTEGER.fullmatch(clean):
        octal = re.fullmatch(r"[+-]?0[0-7]+", clean)
        return int(clean, 8 if octal else 0)
    return float(clean) if _FLOAT.fullmatch(clean) else None


def _unquote(source):
    """The value of a Go "string", `raw string` or 'c' literal, quotes included; ValueError if malformed."""
    quote, body = source[0], source[1:-1]
    if quote == "`":
        return body.replace("\r", "")

    def escape(match):
        simple, byte, octal, short, long = match.groups()
        if match.group() == "\\":
            raise ValueError("unknown escape")
        if simple is not None:
            if simple in "'\"" and simple != quote:
                raise ValueError(simple)
            return _ESCAPED.get(simple, simple)
        code = int(byte, 16) if byte else int(octal, 8) if octal else int(short or long, 16)
        if code > (0xFF if byte or octal else 0x10FFFF) or 0xD800 <= code < 0xE000:
            raise ValueError(match.group())
        return chr(code)

    return _ESCAPE.sub(escape, body)


# -- nodes -------------------------------------------------------------------------------------------------
# Each prints as Go prints it in errors. Statements run(state, dot); operands give value(state, dot), and
# fields, variables and chains are call()ed with arguments when they lead a command.

_MISSING = object()  # no previous pipeline result to pass on


class _Text:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text

    def run(self, state, dot):
        state.out.append(self.text)


class _Action:
    def __init__(self, pipe):
        self.pipe = pipe

    def __str__(self):
        return f"{{{{{self.pipe}}}}}"

    def run(self, state, dot):
        value = self.pipe.value(state, dot)
        if not self.pipe.declarations:
            state.out.append("<no value>" if value is None else _go_value(value))


class _Marker:
    """{{else}} or {{end}}, while parsing."""

    def __init__(self, word):
        self.word = word

    def __str__(self):
        return f"{{{{{self.word}}}}}"


class _Jump:
    """{{break}} or {{continue}}."""

    def __init__(self, word):
        self.word = word

    def __str__(self):
        return f"{{{{{self.word}}}}}"

    def run(self, state, dot):
        raise _Break() if self.word == "break" else _Continue()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Branch:
    """{{WORD pipeline}} body {{else}} otherwise {{end}}."""

    word = ""

    def __init__(self, pipe, body, otherwise):
        self.pipe, self.body, self.otherwise, self.pos = pipe, body, otherwise, pipe.pos

    def __str__(self):
        text = f"{{{{{self.word} {self.pipe}}}}}" + "".join(map(str, self.body))
        if self.otherwise is not None:
            text += "{{else}}" + "".join(map(str, self.otherwise))
        return text + "{{end}}"


class _If(_Branch):
    word = "if"

    def run(self, state, dot):
        mark = len(state.variables)
        value = self.pipe.value(state, dot)
        if _truth(value):
            state.walk(self.inner_dot(dot, value), self.body)
        elif self.otherwise is not None:
            state.walk(dot, self.otherwise)
        del state.variables[mark:]

    def inner_dot(self, dot, value):
        return dot


class _With(_If):
    word = "with"

    def inner_dot(self, dot, value):
        return value


class _Range(_Branch):
    word = "range"

    def run(self, state, dot):
        mark = len(state.variables)
        pairs = self.pairs(state, self.pipe.value(state, dot))
        inner = len(state.variables)
        for key, element in pairs:
            self.bind(state, key, element)
            try:
                state.walk(element, self.body)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del state.variables[inner:]
        if not pairs and self.otherwise is not None:
            state.walk(dot, self.otherwise)
        del state.variables[mark:]

    def pairs(self, state, items):
        """(index or key, element) in Go's order: lists in order, maps by sorted key, an integer n as 0..n-1."""
        if items is None:
            return []
        if isinstance(items, dict):
            return [(key, items[key]) for key in sorted(items)]
        if isinstance(items, list):
            return list(enumerate(items))
        if isinstance(items, int) and not isinstance(items, bool):
            if len(self.pipe.declarations) > 1:
                state.fail(f"can't use {items} to iterate over more than one variable", self)
            return [(number, number) for number in range(items)]
        state.fail(f"range can't iterate over {_go_value(items)}", self)

    def bind(self, state, key, element):
        """Set the range's variables: $v gets the element, $i, $v the key and the element."""
        names = self.pipe.declarations
        if self.pipe.is_assign:
            state.assign(names[0], key if len(names) > 1 else element, self)
            if len(names) > 1:
                state.assign(names[1], element, self)
        elif names:  # declared by the pipeline: the last two variables on the stack
            state.variables[-1][1] = element
            if len(names) > 1:
                state.variables[-2][1] = key


class _Pipe:
    def __init__(self, pos):
        self.pos, self.declarations, self.is_assign, self.commands = pos, [], False, []

    def __str__(self):
        head = ", ".join(self.declarations) + (" = " if self.is_assign else " := ") if self.declarations else ""
        return head + " | ".join(map(str, self.commands))

    def value(self, state, dot):
        result = _MISSING
        for command in self.commands:
            result = command.evaluate(state, dot, result)
        for name in self.declarations:
            if self.is_assign:
                state.assign(name, result, self)
            else:
                state.variables.append([name, result])
        return result


class _Command:
    def __init__(self, pos):
        self.pos, self.args = pos, []

    def __str__(self):
        return " ".join(f"({arg})" if isinstance(arg, _Pipe) else str(arg) for arg in self.args)

    def evaluate(self, state, dot, final):
        """The command's value; `final` (or _MISSING) is the previous command's, its last argument."""
        first, rest = self.args[0], self.args[1:]
        if isinstance(first, _Identifier):
            return state.call(first, self, dot, rest, final)
        if isinstance(first, (_Field, _Variable, _Chain)):
            return first.call(state, dot, rest, final)
        if rest or final is not _MISSING:
            state.fail(f"can't give argument to non-function {first}", first)
        if isinstance(first, _Literal) and first.source == "nil":
            state.fail("nil is not a command", first)
        return first.value(state, dot)


class _Field:
    def __init__(self, names, pos):
        self.names, self.pos = names, pos

    def __str__(self):
        return "." + ".".join(self.names)

    def value(self, state, dot):
        return self.call(state, dot, [], _MISSING)

    def call(self, state, dot, args, final):
        return state.field_chain(dot, dot, self, self.names, args, final)


class _Variable(_Field):
    def __str__(self):
        return ".".join(self.names)

    def call(self, state, dot, args, final):
        value = state.lookup(self.names[0], self)
        if len(self.names) > 1:
            return state.field_chain(dot, value, self, self.names[1:], args, final)
        if args or final is not _MISSING:
            state.fail(f"can't give argument to non-function {self}", self)
        return value


class _Chain(_Field):
    """(pipeline).Field..."""

    def __init__(self, node, names, pos):
        super().__init__(names, pos)
        self.node = node

    def __str__(self):
        return (f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)) + super().__str__()

    def call(self, state, dot, args, final):
        return state.field_chain(dot, self.node.value(state, dot), self, self.names, args, final)


class _Identifier:
    def __init__(self, name, pos):
        self.name, self.pos = name, pos

    def __str__(self):
        return self.name

    def value(self, state, dot):
        return state.call(self, self, dot, [], _MISSING)


class _Dot:
    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."

    def value(self, state, dot):
        return dot


class _Literal:
    """A string, number, character, true/false or nil, with its source text."""

    def __init__(self, constant, source, pos):
        self.constant, self.source, self.pos = constant, source, pos

    def __str__(self):
        return self.source

    def value(self, state, dot):
        return self.constant


# -- evaluator ---------------------------------------------------------------------------------------------

class _CallError(Exception):
    """A function failed: Go's "error calling NAME: REASON"."""


class _WrongType(Exception):
    """An argument of a type the function does not take."""


class _State:
    """One execution: the output so far and the variable stack, `$` (the document) at its bottom."""

    def __init__(self, text, root, kind, header_mode=False):
        self.text, self.root, self.kind, self.header_mode = text, root, kind, header_mode
        self.variables = [["$", root]]
        self.out = []

    def walk(self, dot, nodes):
        for node in nodes:
            node.run(self, dot)

    def fail(self, message, node):
        before = self.text[:node.pos]
        line, column = before.count("\n") + 1, node.pos - (before.rfind("\n") + 1)
        raise InvalidArgument(f'template: :{line}:{column}: executing "" at <{node}>: {message}')

    def lookup(self, name, node):
        for variable, value in reversed(self.variables):
            if variable == name:
                return value
        self.fail(f"undefined variable: {name}", node)

    def assign(self, name, value, node):
        for variable in reversed(self.variables):
            if variable[0] == name:
                variable[1] = value
                return
        self.fail(f"undefined variable: {name}", node)

    def field_chain(self, dot, receiver, node, names, args, final):
        """receiver.A.B...; with arguments, the last field is a map and one argument picks its entry
        (vessel's stand-in for Docker's `{{.Label "key"}}` method)."""
        if self.header_mode and receiver is self.root:
            return self.root.get(names[0], names[0].upper())
        for name in names[:-1]:
            receiver = self.field(receiver, name, node)
        value = self.field(receiver, names[-1], node)
        if not args and final is _MISSING:
            return value
        keys = [arg.value(self, dot) for arg in args] + ([] if final is _MISSING else [final])
        if len(keys) == 1 and isinstance(keys[0], str) and (value is None or isinstance(value, dict)):
            return (value or {}).get(keys[0], "")
        self.fail(f"{names[-1]} is not a method but has arguments", node)

    def field(self, receiver, name, node):
        if not isinstance(receiver, dict):
            return None
        if name not in receiver and receiver is self.root:
            self.fail(f"can't evaluate field {name} in type {self.kind}", node)
        return receiver.get(name)

    def call(self, identifier, command, dot, args, final):
        """The function `identifier` names applied to the arguments' values (then `final`, if any)."""
        name = identifier.name
        if name in ("and", "or"):  # they stop at the deciding argument, as Go's do
            value = None
            for arg in args:
                value = arg.value(self, dot)
                if _truth(value) == (name == "or"):
                    return value
            return value if final is _MISSING else final
        values = [arg.value(self, dot) for arg in args] + ([] if final is _MISSING else [final])
        if self.header_mode and name in _HEADER_PASSTHROUGH:
            return values[0]
        function, fixed, variadic = _FUNCTIONS[name]
        for position, value in enumerate(values):
            try:
                values[position] = _convert(value, fixed[position] if position < len(fixed) else variadic)
            except _WrongType as error:
                self.fail(str(error), args[position] if position < len(args) else identifier)
        try:
            return function(*values)
        except _CallError as error:
            self.fail(f"error calling {name}: {error}", command)


def _truth(value):
    """Go's truth: false, 0, nil, and empty strings, lists and maps are false (as in Python)."""
    return bool(value)


def _go_type(value):
    if value is None:
        return "<nil>"
    names = {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}",
             dict: "map[string]interface {}"}
    return names.get(type(value), type(value).__name__)


def _convert(value, param):
    """`value` passed as a parameter of Go type `param` (any, string, int, []string); _WrongType if it can't.
    vessel's documents hold null where Docker's structs hold "" or an empty list: those pass as such."""
    if param == "any":
        return value
    if value is None and param in ("string", "[]string"):
        return "" if param == "string" else []
    accepted = {"string": isinstance(value, str), "int": isinstance(value, int) and not isinstance(value, bool),
                "[]string": isinstance(value, list) and all(isinstance(item, str) for item in value)}[param]
    if not accepted:
        raise _WrongType(f"wrong type for value; expected {param}; got {_go_type(value)}")
    return value


# -- functions: Go's builtins ------------------------------------------------------------------------------

def _length(item):
    if item is None:
        return 0
    if isinstance(item, (str, list, dict)):
        return len(item.encode() if isinstance(item, str) else item)  # Go counts a string's bytes
    raise _CallError(f"len of type {_go_type(item)}")


def _index_value(index, length):
    """A list or string index as Go's index and slice check it (length itself allowed, for slice)."""
    if index is None:
        raise _CallError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise _CallError(f"cannot index slice/array with type {_go_type(index)}")
    if not 0 <= index <= length:
        raise _CallError(f"index out of range: {index}")
    return index


def _index(item, *keys):
    """index x 1 2, index m "key": lists and strings (a byte) by position, maps by key (nil if absent)."""
    for key in keys:
        if item is None:
            return None
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise _CallError(f"value has type {_go_type(key)}; should be string")
            item = item.get(key)
        elif isinstance(item, (list, str)):
            sequence = item.encode() if isinstance(item, str) else item
            if _index_value(key, len(sequence)) == len(sequence):
                raise _CallError(f"index out of range: {key}")
            item = sequence[key]
        else:
            raise _CallError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item, *indexes):
    """slice x 1 3 is x[1:3] (a string's bytes, as in Go)."""
    if item is None:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise _CallError("cannot 3-index slice a string")
    if not isinstance(item, (str, list)):
        raise _CallError(f"can't slice item of type {_go_type(item)}")
    sequence = item.encode() if isinstance(item, str) else item
    bounds = [_index_value(index, len(sequence)) for index in indexes]
    bounds += [0, len(sequence)][len(bounds):]  # [low, high(, max)]
    for low, high in zip(bounds, bounds[1:]):
        if low > high:
            raise _CallError(f"invalid slice index: {low} > {high}")
    part = sequence[bounds[0]:bounds[1]]
    return part.decode(errors="replace") if isinstance(item, str) else part


def _basic_kind(value):
    """What eq, lt... compare: bool, number, string, or None (nil, lists, maps). Numbers compare across int and
    float: Docker's inspect falls back to JSON-decoded (float) documents where an int comparison fails."""
    return None if value is None else {bool: "bool", int: "number", float: "number", str: "string"}.get(type(value))


def _eq(first, *others):
    """eq a b c: whether a equals any of the others (basic values of one kind, or nil)."""
    if not others:
        raise _CallError("missing argument for comparison")
    for other in others:
        if _basic_kind(first) != _basic_kind(other):
            if first is not None and other is not None:
                raise _CallError("incompatible types for comparison")
        elif _basic_kind(first) is None and first is not None and other is not None:
            raise _CallError(f"non-comparable type {_go_value(other)}: {_go_type(other)}")
        elif first == other:
            return True
    return False


def _less(first, second):
    kinds = _basic_kind(first), _basic_kind(second)
    if None in kinds or "bool" in kinds:
        raise _CallError("invalid type for comparison")
    if kinds[0] != kinds[1]:
        raise _CallError("incompatible types for comparison")
    return first < second


def _sprint(*values):
    """Go's fmt.Sprint: each value as %v, a space between two operands when neither is a string."""
    out = []
    for position, value in enumerate(values):
        if position and not isinstance(value, str) and not isinstance(values[position - 1], str):
            out.append(" ")
        out.append(_go_value(value))
    return "".join(out)


def _sprintln(*values):
    return " ".join(map(_go_value, values)) + "\n"


def _printed_args(values):
    """Go's evalArgs for html, js and urlquery: a lone string as it is, else as print shows them."""
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return _sprint(*("<no value>" if value is None else value for value in values))


_HTML = str.maketrans({"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"})
_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _html(*values):
    return _printed_args(values).translate(_HTML)


def _js(*values):
    return "".join(_JS.get(char) or (f"\\u{ord(char):04X}" if char < " " or not (char.isascii() or char.isprintable())
                                     else char) for char in _printed_args(values))


def _urlquery(*values):
    return "".join(chr(byte) if chr(byte) in _URL_SAFE else "+" if byte == 32 else f"%{byte:02X}"
                   for byte in _printed_args(values).encode())


# -- functions: Docker's -----------------------------------------------------------------------------------

def _json(value):
    """Docker's json: Go's encoding, compact; Docker turns HTML escaping off, so <, > and & stay."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_string(str(key))}:{_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_json, value)) + "]"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, float) and math.isfinite(value):
        return _go_float(value, json_style=True)
    return json.dumps(value)


def _json_string(text):
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _split(text, separator):
    return text.split(separator) if separator else list(text)


def _title(text):
    """Go's strings.Title: the first letter of each word in upper case, the rest as it is."""
    out, previous = [], " "
    for char in text:
        separator = not _is_alnum(previous) if previous.isascii() else previous.isspace()
        out.append(char.upper() if separator else char)
        previous = char
    return "".join(out)


def _pad(text, before, after):
    """Docker's pad: spaces before and after a non-empty string."""
    if before < 0 or after < 0:
        raise _CallError("strings: negative Repeat count")
    return " " * before + text + " " * after if text else text


def _truncate(text, length):
    """Docker's truncate: the first `length` bytes."""
    data = text.encode()
    if len(data) < length:
        return text
    if length < 0:
        raise _CallError(f"runtime error: slice bounds out of range [:{length}]")
    return data[:length].decode(errors="replace")


# name: (function, its parameters' Go types, the type of its variadic ones or None); and, or: _State.call
_FUNCTIONS = {
    "and": (None, ("any",), "any"),
    "or": (None, ("any",), "any"),
    "not": (lambda value: not _truth(value), ("any",), None),
    "len": (_length, ("any",), None),
    "index": (_index, ("any",), "any"),
    "slice": (_slice, ("any",), "any"),
    "print": (_sprint, (), "any"),
    "printf": (lambda template, *values: _sprintf(template, values), ("string",), "any"),
    "println": (_sprintln, (), "any"),
    "eq": (_eq, ("any",), "any"),
    "ne": (lambda first, second: not _eq(first, second), ("any", "any"), None),
    "lt": (_less, ("any", "any"), None),
    "le": (lambda first, second: _less(first, second) or _eq(first, second), ("any", "any"), None),
    "gt": (lambda first, second: not (_less(first, second) or _eq(first, second)), ("any", "any"), None),
    "ge": (lambda first, second: not _less(first, second), ("any", "any"), None),
    "html": (_html, (), "any"),
    "js": (_js, (), "any"),
    "urlquery": (_urlquery, (), "any"),
    "json": (_json, ("any",), None),
    "join": (lambda items, separator: separator.join(items), ("[]string", "string"), None),
    "split": (_split, ("string", "string"), None),
    "lower": (str.lower, ("string",), None),
    "upper": (str.upper, ("string",), None),
    "title": (_title, ("string",), None),
    "pad": (_pad, ("string", "int", "int"), None),
    "truncate": (_truncate, ("string", "int"), None),
}
# Docker's HeaderFunctions: in a table's header row these keep the column's name
_HEADER_PASSTHROUGH = frozenset(("json", "split", "join", "title", "lower", "upper", "truncate"))


# -- printing: Go's fmt ------------------------------------------------------------------------------------

class _Spec:
    """A fmt directive's flags, width and precision."""

    def __init__(self, flags, width, precision):
        self.minus, self.plus, self.space, self.sharp = ("-" in flags, "+" in flags, " " in flags, "#" in flags)
        self.zero = "0" in flags and not self.minus
        self.width = int(width) if width else 0
        self.precision = None if precision is None else int(precision or 0)

    def pad(self, text, zero=True):
        if len(text) >= self.width:
            return text
        if self.minus:
            return text.ljust(self.width)
        return text.rjust(self.width, "0" if self.zero and zero else " ")

    def sign(self, negative):
        return "-" if negative else "+" if self.plus else " " if self.space else ""


_PLAIN = _Spec("", "", None)
_DIRECTIVE = re.compile(r"%([-+# 0]*)([0-9]*)(?:\.([0-9]*))?(.?)", re.DOTALL)
_INTEGER_VERBS = {"d": "d", "v": "d", "b": "b", "o": "o", "O": "o", "x": "x", "X": "X"}
_INTEGER_PREFIXES = {"b": "0b", "o": "0", "O": "0o", "x": "0x", "X": "0X"}
_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_value(value):
    """Go's %v: true, 42, 1.5, 1e+06, [a b], map[k:v] (sorted keys), <nil>."""
    return _format(value, "v", _PLAIN)


def _sprintf(template, values):
    """Go's fmt.Sprintf: %v %s %d %q %t %x %X %o %O %b %c %U %e %E %f %F %g %G %T and %%, with flags,
    width and precision; a wrong or missing argument prints as Go prints it (%!d(string=x), %!s(MISSING))."""
    out, used, pos = [], 0, 0
    while (start := template.find("%", pos)) >= 0:
        out.append(template[pos:start])
        match = _DIRECTIVE.match(template, start)
        flags, width, precision, verb = match.groups()
        pos = match.end()
        if not verb:
            out.append("%!(NOVERB)")
        elif verb == "%":
            out.append("%")
        elif used == len(values):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_format(values[used], verb, _Spec(flags, width, precision)))
            used += 1
    out.append(template[pos:])
    if used < len(values):
        extra = ", ".join("<nil>" if value is None else f"{_go_type(value)}={_go_value(value)}"
                          for value in values[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format(value, verb, spec):
    """One value through one fmt verb; lists and maps apply it to each element, as Go does."""
    if verb == "T":
        return spec.pad(_go_type(value))
    if value is None:
        return spec.pad("<nil>") if verb == "v" else f"%!{verb}(<nil>)"
    if isinstance(value, bool):
        return spec.pad("true" if value else "false") if verb in "tv" else _bad_verb(verb, value)
    if isinstance(value, int):
        return _format_integer(value, verb, spec)
    if isinstance(value, float):
        return _format_float(value, verb, spec)
    if isinstance(value, str):
        return _format_string(value, verb, spec)
    if isinstance(value, list):
        return "[" + " ".join(_format(item, verb, spec) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{_format(key, verb, spec)}:{_format(value[key], verb, spec)}"
                                 for key in sorted(value)) + "]"
    return spec.pad(str(value))


def _bad_verb(verb, value):
    return f"%!{verb}({_go_type(value)}={_go_value(value)})"


def _format_integer(value, verb, spec):
    if verb in "cqU":
        char = chr(value) if 0 <= value <= 0x10FFFF else "\ufffd"
        return spec.pad({"c": char, "q": _go_quote(char, "'"), "U": f"U+{value:04X}"}[verb])
    if verb not in _INTEGER_VERBS:
        return _bad_verb(verb, value)
    digits = format(abs(value), _INTEGER_VERBS[verb])
    if spec.precision is not None:
        digits = "" if spec.precision == 0 and value == 0 else digits.rjust(spec.precision, "0")
    head = spec.sign(value < 0) + (_INTEGER_PREFIXES.get(verb, "") if spec.sharp or verb == "O" else "")
    if spec.zero and spec.precision is None:
        digits = digits.rjust(spec.width - len(head), "0")
    return spec.pad(head + digits, zero=False)


def _format_float(value, verb, spec):
    if verb not in "vgGeEfF":
        return _bad_verb(verb, value)
    if math.isnan(value):
        return spec.pad(("+" if spec.plus else " " if spec.space else "") + "NaN", zero=False)
    if math.isinf(value):
        return spec.pad(("-" if value < 0 else " " if spec.space and not spec.plus else "+") + "Inf", zero=False)
    magnitude = abs(value)
    if verb in "vgG":
        body = _go_float(magnitude) if spec.precision is None else format(magnitude, f".{spec.precision}g")
    else:
        body = format(magnitude, f".{6 if spec.precision is None else spec.precision}{verb.lower()}")
    head = spec.sign(math.copysign(1, value) < 0)
    body = body.upper() if verb in "EG" else body
    if spec.zero:
        body = body.rjust(spec.width - len(head), "0")
    return spec.pad(head + body, zero=False)


def _format_string(value, verb, spec):
    if verb in "sv":
        return spec.pad(value if spec.precision is None else value[:spec.precision])
    if verb == "q":
        raw = spec.sharp and "`" not in value and all(char.isprintable() or char == "\t" for char in value)
        return spec.pad(f"`{value}`" if raw else _go_quote(value))
    if verb in "xX":
        prefix = ("0X" if verb == "X" else "0x") if spec.sharp else ""
        pieces = [format(byte, "02X" if verb == "X" else "02x") for byte in value.encode()]
        return spec.pad(" ".join(prefix + piece for piece in pieces) if spec.space else prefix + "".join(pieces))
    return _bad_verb(verb, value)


def _go_quote(text, quote='"'):
    """Go's strconv.Quote (QuoteRune with quote="'")."""
    out = []
    for char in text:
        if char in (quote, "\\"):
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return quote + "".join(out) + quote


def _go_float(value, json_style=False):
    """A float64 as Go's %v prints it (the shortest digits that read back; an exponent when it is < -4 or >= 6,
    as strconv's shortest 'g' decides: 1e+06, 1.5e-05), or as Go's JSON encoder does (an exponent below 1e-6
    and from 1e21 on)."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    mantissa, _, exponent_text = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    significant = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent_text or 0) - (len(whole + fraction) - len(significant))
    digits, sign, exponent = significant.rstrip("0"), "-" if value < 0 else "", point - 1
    if json_style:
        scientific = not 1e-6 <= abs(value) < 1e21
    else:
        scientific = exponent < -4 or exponent >= 6
    if scientific:
        width = 1 if json_style else 2  # Go's JSON writes e-7 where fmt writes e-07
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):0{width}d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"

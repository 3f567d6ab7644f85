"""Ollama's Go templates (text/template) translated to Jinja chat templates.

Ollama's TEMPLATE is Go's text/template run over Ollama's values: in the current shape
.Messages (collated: consecutive messages of one role merged), .System (every system
message), .Tools and .Response; in the older shape .System, .Prompt and .Response, run
once per exchange with the last run cut after .Response. This module reads the template
with a tokenizer and a small recursive-descent parser (no backtracking regular
expressions, so the work is linear in the template's size and a pathological template
fails fast) and writes Jinja that builds the same values from `messages` and renders the
same text, byte for byte, for what it can translate. What it cannot translate raises
Untranslatable naming the construct and where it is: the importer then keeps the Go text
as a comment and the GGUF's own template is used, rather than a template that renders
differently.

Known differences, none of which Ollama's own templates meet: Go prints a missing value as
"<no value>" and Jinja as nothing; maps, lists and floats print in Python's spelling; json
uses Jinja's tojson spacing. Tools and tool calls translate, but lcchat sends none.

The Jinja it writes uses `{%- -%}` and `{{- -}}` on every tag and writes all literal text
as string expressions, so its layout (one tag a line, indented) never reaches the prompt,
whatever trim_blocks and lstrip_blocks say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

MAX_TEMPLATE = 1 << 20  # characters; Ollama's own templates are a few KB
MAX_NESTING = 100  # control structures and parentheses inside each other


class Untranslatable(Exception):
    """A construct this translator has no faithful Jinja for, or a template Go rejects."""

    def __init__(self, what: str, line: int = 0, column: int = 0):
        where = f" at line {line}, column {column}" if line else ""
        super().__init__(f"{what}{where}")
        self.what, self.line, self.column = what, line, column


@dataclass
class Translation:
    jinja: str
    how: str
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- tokens

_SPACE = " \t\r\n"
# Runs of one character class: a regex with no alternation over overlapping runs cannot
# backtrack, so each match costs the length it consumes.
_WORD = re.compile(r"[A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9A-Za-z_.+\-]*")


@dataclass
class Tok:
    kind: str  # text, open, close, space, ident, field, var, dot, string, number, char, ( ) | , = :=
    value: str
    pos: int
    spaced: bool = False  # whitespace came right before it (for chains like $x.Field)


class Lexer:
    """Go text/template's lexer: text, then `{{`-actions with trim markers and comments.

    `steps` counts the loop turns, each of which consumes at least one character: a
    test reads it to check that lexing stays linear.
    """

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[Tok] = []
        self.steps = 0

    def where(self, pos: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, pos) + 1
        return line, pos - (self.text.rfind("\n", 0, pos) + 1) + 1

    def fail(self, what: str, pos: int) -> Untranslatable:
        return Untranslatable(what, *self.where(pos))

    def run(self) -> list[Tok]:
        text, n, pos = self.text, len(self.text), 0
        trim_next = False
        while pos < n:
            self.steps += 1
            start = text.find("{{", pos)
            end = n if start < 0 else start
            chunk = text[pos:end]
            trim_left = start >= 0 and text.startswith("{{-", start) and start + 3 < n and text[start + 3] in _SPACE
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
            if trim_left:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.tokens.append(Tok("text", chunk, pos))
            if start < 0:
                return self.tokens
            pos = start + (4 if trim_left else 2)
            pos, trim_next = self._action(pos, start)
        return self.tokens

    def _action(self, pos: int, start: int) -> tuple[int, bool]:
        text, n = self.text, len(self.text)
        while pos < n and text[pos] in _SPACE:
            pos += 1
        if text.startswith("/*", pos):  # a comment: {{/* ... */}}, trim markers allowed
            close = text.find("*/", pos + 2)
            if close < 0:
                raise self.fail("an unclosed comment", start)
            pos = close + 2
            if text.startswith(" -}}", pos) or text.startswith("\t-}}", pos) or text.startswith("\n-}}", pos):
                return pos + 4, True
            if text.startswith("}}", pos):
                return pos + 2, False
            raise self.fail("a comment that does not end the action", start)
        self.tokens.append(Tok("open", "{{", start))
        spaced = True
        while True:
            self.steps += 1
            if pos >= n:
                raise self.fail("an unclosed action", start)
            c = text[pos]
            if c in _SPACE:
                while pos < n and text[pos] in _SPACE:
                    pos += 1
                if text.startswith("-}}", pos):
                    self.tokens.append(Tok("close", "}}", pos))
                    return pos + 3, True
                spaced = True
                continue
            if text.startswith("}}", pos):
                self.tokens.append(Tok("close", "}}", pos))
                return pos + 2, False
            begin = pos
            if c == '"':
                pos = self._quoted(pos, '"')
                kind = "string"
            elif c == "`":
                close = text.find("`", pos + 1)
                if close < 0:
                    raise self.fail("an unterminated raw string", pos)
                pos = close + 1
                kind = "string"
            elif c == "'":
                pos = self._quoted(pos, "'")
                kind = "char"
            elif c == "$":
                pos = _WORD.match(text, pos + 1).end()
                kind = "var"
            elif c == "." and pos + 1 < n and (text[pos + 1].isalpha() or text[pos + 1] == "_"):
                pos = _WORD.match(text, pos + 1).end()
                kind = "field"
            elif c.isdigit() or (c in "+-." and pos + 1 < n and text[pos + 1].isdigit()):
                pos = _NUMBER.match(text, pos + 1).end()
                kind = "number"
            elif c == ".":
                pos += 1
                kind = "dot"
            elif c.isalpha() or c == "_":
                pos = _WORD.match(text, pos).end()
                kind = "ident"
            elif text.startswith(":=", pos):
                pos += 2
                kind = ":="
            elif c in "()|,=":
                pos += 1
                kind = c
            else:
                raise self.fail(f"unexpected {c!r} in an action", pos)
            self.tokens.append(Tok(kind, text[begin:pos], begin, spaced))
            spaced = False

    def _quoted(self, pos: int, quote: str) -> int:
        text, n = self.text, len(self.text)
        i = pos + 1
        while i < n:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == quote:
                return i + 1
            if c == "\n":
                break
            i += 1
        raise self.fail("an unterminated quoted string", pos)


# ---------------------------------------------------------------- syntax tree


@dataclass
class Field:
    names: list[str]  # .A.B on the dot


@dataclass
class Var:
    name: str  # "$", "$x"
    names: list[str]  # $x.A.B
    pos: int


@dataclass
class Dot:
    pass


@dataclass
class Literal:
    kind: str  # string, number, bool, nil
    value: object


@dataclass
class Ident:
    name: str
    pos: int


@dataclass
class Sub:
    pipe: "Pipe"
    names: list[str]  # (pipe).A.B


Arg = Union[Field, Var, Dot, Literal, Ident, Sub]


@dataclass
class Pipe:
    decl: list[str]  # variables declared (:=) or assigned (=)
    assign: bool
    cmds: list[list[Arg]]
    pos: int


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: Pipe


@dataclass
class Branch:
    kind: str  # if, range, with
    pipe: Pipe
    body: list
    orelse: list | None
    pos: int
    chained: bool = False  # an else-if/else-with: closed by its outer branch's {{end}}


@dataclass
class Jump:
    kind: str  # break, continue
    pos: int


Node = Union[Text, Action, Branch, Jump]


class Parser:
    """Tokens to a tree, the way Go's parse package builds it (else-if nests an if in the
    else list). Control structures are kept on an explicit stack, so depth costs no
    recursion; parentheses recurse, bounded by MAX_NESTING."""

    def __init__(self, lexer: Lexer):
        self.lexer = lexer
        self.toks = lexer.tokens
        self.i = 0
        self.depth = 0

    def fail(self, what: str, pos: int) -> Untranslatable:
        return self.lexer.fail(what, pos)

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> list:
        root: list = []
        # each frame: (the branch being read or None at the top, the list being filled)
        stack: list[tuple[Branch | None, list]] = [(None, root)]
        loops = 0
        while self.peek().kind != "eof":
            tok = self.take()
            current = stack[-1][1]
            if tok.kind == "text":
                current.append(Text(tok.value))
                continue
            word = self.peek()
            if word.kind == "ident" and word.value in ("if", "range", "with"):
                self.take()
                if len(stack) > MAX_NESTING:
                    raise self.fail(f"control structures nested more than {MAX_NESTING} deep", word.pos)
                pipe = self.pipeline(decl_ok=True, in_range=word.value == "range")
                self.close()
                branch = Branch(word.value, pipe, [], None, word.pos)
                current.append(branch)
                stack.append((branch, branch.body))
                if word.value == "range":
                    loops += 1
            elif word.kind == "ident" and word.value == "else":
                self.take()
                branch, filling = stack[-1]
                if branch is None:
                    raise self.fail("an {{else}} outside if, range or with", word.pos)
                if filling is branch.orelse:
                    raise self.fail("a second {{else}}", word.pos)
                following = self.peek()
                if following.kind == "ident" and following.value in ("if", "with"):
                    self.take()
                    if following.value == "with" and branch.kind != "with":
                        raise self.fail(f"an {{{{else with}}}} inside {{{{{branch.kind}}}}}", word.pos)
                    pipe = self.pipeline(decl_ok=True)
                    self.close()
                    nested = Branch(following.value, pipe, [], None, word.pos, chained=True)
                    branch.orelse = [nested]
                    stack.append((nested, nested.body))
                else:
                    self.close()
                    branch.orelse = []
                    stack[-1] = (branch, branch.orelse)
            elif word.kind == "ident" and word.value == "end":
                self.take()
                self.close()
                if len(stack) == 1:
                    raise self.fail("an {{end}} without a matching if, range or with", word.pos)
                while True:
                    branch = stack.pop()[0]
                    if branch.kind == "range":
                        loops -= 1
                    if not branch.chained:
                        break
            elif word.kind == "ident" and word.value in ("break", "continue"):
                self.take()
                self.close()
                if not loops:
                    raise self.fail(f"{{{{{word.value}}}}} outside a range", word.pos)
                current.append(Jump(word.value, word.pos))
            elif word.kind == "ident" and word.value in ("define", "template", "block"):
                raise self.fail(f"{{{{{word.value}}}}} (named templates)", word.pos)
            else:
                pipe = self.pipeline(decl_ok=True)
                self.close()
                current.append(Action(pipe))
        if len(stack) > 1:
            raise self.fail(f"an {{{{{stack[-1][0].kind}}}}} without {{{{end}}}}", stack[-1][0].pos)
        return root

    def close(self) -> None:
        tok = self.take()
        if tok.kind != "close":
            raise self.fail(f"unexpected {tok.value!r} in an action", tok.pos)

    def pipeline(self, *, decl_ok: bool, in_range: bool = False, closing: str = "close") -> Pipe:
        start = self.peek().pos
        decl: list[str] = []
        assign = False
        # declarations: $x := / $x = / $i, $e := (range only)
        j = self.i
        names = []
        while self.toks[j].kind == "var" and decl_ok:
            names.append(self.toks[j].value)
            j += 1
            if self.toks[j].kind == "," and in_range and len(names) < 2:
                j += 1
                continue
            break
        if names and self.toks[j].kind in (":=", "="):
            if self.toks[j].kind == "=" and len(names) > 1:
                raise self.fail("assignment to two variables", self.toks[j].pos)
            decl, assign = names, self.toks[j].kind == "="
            self.i = j + 1
        cmds: list[list[Arg]] = []
        while True:
            cmd: list[Arg] = []
            while self.peek().kind not in (closing, "|"):
                cmd.append(self.operand())
            if not cmd:
                raise self.fail("a missing value in a pipeline", self.peek().pos)
            cmds.append(cmd)
            if self.peek().kind != "|":
                break
            self.take()
        return Pipe(decl, assign, cmds, start)

    def operand(self) -> Arg:
        tok = self.take()
        kind = tok.kind
        if kind == "field":
            names = [tok.value[1:]] + self.chain()
            return Field(names)
        if kind == "var":
            return Var(tok.value, self.chain(), tok.pos)
        if kind == "dot":
            return Dot()
        if kind == "string":
            return Literal("string", _go_string(tok.value, lambda m: self.fail(m, tok.pos)))
        if kind == "char":
            value = _go_string(tok.value, lambda m: self.fail(m, tok.pos))
            if len(value) != 1:
                raise self.fail("a bad character constant", tok.pos)
            return Literal("number", ord(value))
        if kind == "number":
            return Literal("number", _go_number(tok.value, lambda m: self.fail(m, tok.pos)))
        if kind == "ident":
            if tok.value in ("true", "false"):
                return Literal("bool", tok.value == "true")
            if tok.value == "nil":
                return Literal("nil", None)
            if tok.value in ("if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"):
                raise self.fail(f"unexpected {tok.value!r} in a pipeline", tok.pos)
            return Ident(tok.value, tok.pos)
        if kind == "(":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.fail(f"parentheses nested more than {MAX_NESTING} deep", tok.pos)
            pipe = self.pipeline(decl_ok=False, closing=")")
            self.take()
            self.depth -= 1
            return Sub(pipe, self.chain())
        raise self.fail(f"unexpected {tok.value!r} in an action", tok.pos)

    def chain(self) -> list[str]:
        names = []
        while self.peek().kind == "field" and not self.peek().spaced:
            names.append(self.take().value[1:])
        return names


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _go_string(raw: str, fail) -> str:
    """A Go string literal's value: "..." with escapes, `...` raw, '.' a rune."""
    if raw[0] == "`":
        return raw[1:-1].replace("\r", "")
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in ("x", "u", "U") or (e and e in "01234567"):
            width, base, skip = {"x": (2, 16, 2), "u": (4, 16, 2), "U": (8, 16, 2)}.get(e, (3, 8, 1))
            digits = body[i + skip:i + skip + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF"[:base + (6 if base == 16 else 0)]
                                           for d in digits):
                raise fail("a bad escape in a string")
            value = int(digits, base)
            if (e == "x" or base == 8) and value > 0x7F:  # a byte of UTF-8, not a character
                raise fail("a byte escape above \\x7f in a string")
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise fail("a bad escape in a string")
            out.append(chr(value))
            i += skip + width
        else:
            raise fail("a bad escape in a string")
    return "".join(out)


def _go_number(raw: str, fail) -> int | float:
    text = raw.replace("_", "")
    try:
        if any(c in text for c in ".eEpP") and not text.lower().startswith(("0x", "-0x", "+0x")):
            value = float(text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value
        return int(text, 0)
    except ValueError:
        raise fail(f"a number Go would not read ({raw})") from None


def parse(go: str) -> list:
    """The Go template's tree; Untranslatable for what Go would reject or this can't read."""
    if len(go) > MAX_TEMPLATE:
        raise Untranslatable(f"a template longer than {MAX_TEMPLATE >> 20} MB")
    lexer = Lexer(go)
    lexer.run()
    lexer.tokens.append(Tok("eof", "", len(go)))
    return Parser(lexer).parse(), lexer


# ---------------------------------------------------------------- Ollama's template rules


def identifiers(nodes: list) -> set[str]:
    """The field and variable names a template uses, lower-cased (Ollama's Template.Vars)."""
    found: set[str] = set()

    def pipe(p: Pipe) -> None:
        for cmd in p.cmds:
            for arg in cmd:
                if isinstance(arg, Field):
                    found.update(n.lower() for n in arg.names)
                elif isinstance(arg, Var):
                    found.update(n.lower() for n in [arg.name, *arg.names])
                elif isinstance(arg, Sub):
                    pipe(arg.pipe)

    todo = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, Action):
            pipe(node.pipe)
        elif isinstance(node, Branch):
            pipe(node.pipe)
            todo += node.body + (node.orelse or [])
    return found


def cut_after_response(nodes: list) -> list:
    """Ollama's deleteNode for the last exchange of an older template: keep everything up to
    the first .Response field, drop what follows (walking as Ollama does: if/range/with
    conditions are not looked at, only their lists and the actions' pipelines)."""
    cut = False

    def is_response(arg) -> bool:
        return isinstance(arg, Field) and "Response" in arg.names

    def walk_pipe(p: Pipe) -> Pipe | None:
        nonlocal cut
        cmds = []
        for cmd in p.cmds:
            args = []
            for arg in cmd:
                if is_response(arg):
                    cut = True
                    args.append(arg)
                elif cut:
                    continue
                elif isinstance(arg, Sub):
                    inner = walk_pipe(arg.pipe)
                    if inner is not None:
                        args.append(Sub(inner, arg.names))
                else:
                    args.append(arg)
            if args:
                cmds.append(args)
        return Pipe(p.decl, p.assign, cmds, p.pos) if cmds else None

    def walk_list(items: list) -> list:
        nonlocal cut
        out = []
        for node in items:
            if cut:
                continue
            if isinstance(node, Action):
                pipe = walk_pipe(node.pipe)
                if pipe is not None:
                    out.append(Action(pipe))
            elif isinstance(node, Branch):
                body = walk_list(node.body)
                if node.orelse is not None and cut:
                    raise Untranslatable(f"a .Response inside {{{{{node.kind}}}}} with an {{{{else}}}} "
                                         "(Ollama itself fails on this template)")
                orelse = walk_list(node.orelse) if node.orelse is not None else None
                out.append(Branch(node.kind, node.pipe, body, orelse, node.pos, node.chained))
            else:
                out.append(node)
        return out

    return walk_list(nodes)


# ---------------------------------------------------------------- Jinja


def jinja_string(text: str) -> str:
    """`text` as a Jinja string literal on one line."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


_BOOLEAN = {"eq", "ne", "lt", "le", "gt", "ge", "not"}
_MAPS = {"Properties", "Arguments", "Defs"}  # Ollama's values that are maps (ranged in key order)
_LISTS = {"Messages", "Tools", "ToolCalls", "Images", "Required", "Enum"}


class Writer:
    """Jinja for a Go tree, given Go's scoping: each variable declaration becomes its own
    attribute of a namespace (Go's `=` assigns across range iterations, which Jinja's `set`
    inside a loop cannot), and the dot is tracked as a Jinja expression."""

    def __init__(self, lexer: Lexer, indent: int):
        self.lexer = lexer
        self.lines: list[str] = []
        self.indent = indent
        self.counter = 0
        self.notes: list[str] = []

    def fail(self, what: str, pos: int | None = None) -> Untranslatable:
        return self.lexer.fail(what, pos) if pos is not None else Untranslatable(what)

    def fresh(self) -> str:
        self.counter += 1
        return f"go.v{self.counter}"

    def tag(self, body: str) -> None:
        self.lines.append("  " * self.indent + "{%- " + body + " -%}")

    def out(self, expr: str) -> None:
        self.lines.append("  " * self.indent + "{{- " + expr + " -}}")

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # ---- structure

    def nodes(self, items: list, dot: str, scopes: list[dict[str, str]]) -> None:
        scopes.append({})
        for node in items:
            if isinstance(node, Text):
                self.out(jinja_string(node.text))
            elif isinstance(node, Action):
                self.action(node.pipe, dot, scopes)
            elif isinstance(node, Jump):
                self.tag(node.kind)
            else:
                self.branch(node, dot, scopes)
        scopes.pop()

    def action(self, pipe: Pipe, dot: str, scopes) -> None:
        value = self.pipe(pipe, dot, scopes)
        if pipe.decl:
            self.tag(f"set {self.declare(pipe, scopes)} = {value}")
            return
        head = pipe.cmds[-1][0]
        if isinstance(head, Ident) and head.name in _BOOLEAN:  # Go prints true/false
            value = f"('true' if {value} else 'false')"
        self.out(value)

    def declare(self, pipe: Pipe, scopes) -> str:
        name = pipe.decl[0]
        if pipe.assign:
            return self.lookup(name, scopes, pipe.pos)
        target = self.fresh()
        scopes[-1][name] = target
        return target

    def lookup(self, name: str, scopes, pos: int) -> str:
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        raise self.fail(f"an undefined variable {name}", pos)

    def branch(self, node: Branch, dot: str, scopes, chained: bool = False) -> None:
        scopes.append({})
        if node.kind == "if":
            value = self.pipe(node.pipe, dot, scopes)
            if node.pipe.decl:
                target = self.declare(node.pipe, scopes)
                self.tag(f"set {target} = {value}")
                value = target
            self.tag(("elif " if chained else "if ") + value)
            self.block(node.body, dot, scopes)
            self.orelse(node, dot, scopes)
            if not chained:
                self.tag("endif")
        elif node.kind == "with":
            value = self.pipe(node.pipe, dot, scopes)
            target = self.declare(node.pipe, scopes) if node.pipe.decl else self.fresh()
            if chained:  # `else with` cannot set before an elif: nest it
                self.tag("else")
                self.indent += 1
            self.tag(f"set {target} = {value}")
            self.tag(f"if {target}")
            self.block(node.body, target, scopes)
            self.orelse(node, dot, scopes)
            self.tag("endif")
            if chained:
                self.indent -= 1
        else:
            self.range(node, dot, scopes)
        scopes.pop()

    def orelse(self, node: Branch, dot: str, scopes) -> None:
        if node.orelse is None:
            return
        rest = node.orelse
        if len(rest) == 1 and isinstance(rest[0], Branch) and rest[0].chained \
                and rest[0].kind == "if" and not rest[0].pipe.decl:
            self.branch(rest[0], dot, scopes, chained=True)
            return
        if len(rest) == 1 and isinstance(rest[0], Branch) and rest[0].chained and rest[0].kind == "with":
            self.branch(rest[0], dot, scopes, chained=True)
            return
        self.tag("else")
        self.block(rest, dot, scopes)

    def block(self, items: list, dot: str, scopes) -> None:
        self.indent += 1
        self.nodes(items, dot, scopes)
        self.indent -= 1

    def range(self, node: Branch, dot: str, scopes) -> None:
        pipe = node.pipe
        value = self.pipe(pipe, dot, scopes)
        kind = self.shape(pipe)
        self.counter += 1
        item = f"go_item{self.counter}"
        key_var = elem_var = None
        if len(pipe.decl) == 2:
            key_var, elem_var = pipe.decl
        elif len(pipe.decl) == 1:
            elem_var = pipe.decl[0]
        if pipe.assign:
            raise self.fail("a range that assigns (=) to variables", pipe.pos)
        if kind == "list":
            self.tag(f"for {item} in {value}")
            key, elem = "loop.index0", item
        elif kind == "map":
            self.tag(f"for {item} in {value}|dictsort(true)")
            key, elem = f"{item}[0]", f"{item}[1]"
        else:  # only known at run time: a map ranges in key order, a number counts
            held = self.fresh()
            self.tag(f"set {held} = {value}")
            self.tag(f"for {item} in ({held}|dictsort(true) if {held} is mapping else "
                     f"(range({held}) if {held} is number else {held}))")
            key = f"({item}[0] if {held} is mapping else loop.index0)"
            elem = f"({item}[1] if {held} is mapping else {item})"
        self.indent += 1
        scopes.append({})
        if key_var:
            target = self.fresh()
            scopes[-1][key_var] = target
            self.tag(f"set {target} = {key}")
        if elem_var:
            target = self.fresh()
            scopes[-1][elem_var] = target
            self.tag(f"set {target} = {elem}")
        self.nodes(node.body, elem, scopes)
        scopes.pop()
        self.indent -= 1
        if node.orelse is not None:
            self.tag("else")
            self.block(node.orelse, dot, scopes)
        self.tag("endfor")

    @staticmethod
    def shape(pipe: Pipe) -> str:
        last = pipe.cmds[-1]
        if len(pipe.cmds) == 1 and len(last) == 1:
            arg = last[0]
            names = getattr(arg, "names", None)
            if names:
                if names[-1] in _MAPS:
                    return "map"
                if names[-1] in _LISTS:
                    return "list"
        return "dynamic"

    # ---- values

    def pipe(self, pipe: Pipe, dot: str, scopes) -> str:
        value = None
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, scopes, value, pipe.pos)
        return value

    def command(self, cmd: list, dot: str, scopes, piped: str | None, pos: int) -> str:
        head = cmd[0]
        if isinstance(head, Ident):
            args = [self.operand(a, dot, scopes) for a in cmd[1:]]
            if piped is not None:
                args.append(piped)
            return self.function(head.name, args, cmd[1:], head.pos)
        if len(cmd) > 1 or piped is not None:
            raise self.fail("arguments given to a value that is not a function", pos)
        return self.operand(head, dot, scopes)

    def operand(self, arg, dot: str, scopes) -> str:
        if isinstance(arg, Field):
            return dot + _fields(arg.names)
        if isinstance(arg, Var):
            base = "go_root" if arg.name == "$" else self.lookup(arg.name, scopes, arg.pos)
            return base + _fields(arg.names)
        if isinstance(arg, Dot):
            return dot
        if isinstance(arg, Literal):
            if arg.kind == "string":
                return jinja_string(arg.value)
            if arg.kind == "bool":
                return "true" if arg.value else "false"
            if arg.kind == "nil":
                return "none"
            return repr(arg.value)
        if isinstance(arg, Sub):
            return "(" + self.pipe(arg.pipe, dot, scopes) + ")" + _fields(arg.names)
        if isinstance(arg, Ident):  # a function used as a value: called without arguments
            return self.function(arg.name, [], [], arg.pos)
        raise self.fail("an operand this translator does not know")

    def function(self, name: str, args: list[str], raw: list, pos: int) -> str:
        def need(low: int, high: int | None = None) -> None:
            if len(args) < low or (high is not None and len(args) > high):
                raise self.fail(f"{name} with {len(args)} arguments", pos)

        if name == "eq":
            need(2)
            return "(" + " or ".join(f"{args[0]} == {b}" for b in args[1:]) + ")"
        if name in ("ne", "lt", "le", "gt", "ge"):
            need(2, 2)
            op = {"ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[name]
            return f"({args[0]} {op} {args[1]})"
        if name in ("and", "or"):
            need(1)
            return "(" + f" {name} ".join(args) + ")"
        if name == "not":
            need(1, 1)
            return f"(not {args[0]})"
        if name == "len":
            need(1, 1)
            return f"({args[0]}|length)"
        if name == "index":
            need(1)
            return args[0] + "".join(f"[{a}]" for a in args[1:])
        if name == "slice":
            need(1, 3)
            if len(args) == 1:
                return args[0]
            return f"{args[0]}[{args[1]}:{args[2] if len(args) == 3 else ''}]"
        if name == "printf":
            need(1)
            if not (raw and isinstance(raw[0], Literal) and raw[0].kind == "string"):
                raise self.fail("printf with a format that is not a literal string", pos)
            return self.printf(raw[0].value, args[1:], pos)
        if name == "print":
            if len(args) == 1:
                return f"({args[0]}|string)"
            raise self.fail("print with several arguments (Go's spacing depends on their types)", pos)
        if name == "println":
            return "(" + " ~ ' ' ~ ".join(args) + (" ~ " if args else "") + "'\\n')"
        if name == "json":
            need(1, 1)
            self.note("json is written with Jinja's tojson, whose spacing differs from Go's; it only shows "
                      "with tools, which lcchat does not send")
            return f"({args[0]}|tojson)"
        if name == "currentDate":
            return "strftime_now('%Y-%m-%d')"
        raise self.fail(f"the function {name}", pos)

    def printf(self, fmt: str, args: list[str], pos: int) -> str:
        parts, literal, i, used = [], [], 0, 0
        while i < len(fmt):
            c = fmt[i]
            if c != "%":
                literal.append(c)
                i += 1
                continue
            verb = fmt[i + 1] if i + 1 < len(fmt) else ""
            if verb == "%":
                literal.append("%")
                i += 2
                continue
            if verb not in ("s", "v", "d") or used >= len(args):
                raise self.fail(f"printf with the format {fmt!r}", pos)
            if literal:
                parts.append(jinja_string("".join(literal)))
                literal = []
            parts.append(f"({args[used]}|string)")
            used += 1
            i += 2
        if literal:
            parts.append(jinja_string("".join(literal)))
        if used != len(args):
            raise self.fail(f"printf with more arguments than {fmt!r} uses", pos)
        return "(" + (" ~ ".join(parts) or "''") + ")"


def _fields(names: list[str]) -> str:
    return "".join(f"[{jinja_string(n)}]" for n in names)


# Ollama's collated messages (consecutive messages of one role merged, tool results kept
# apart) and the values it gives a template over .Messages, built from lcchat's messages.
_MESSAGES_PRELUDE = [
    "set go = namespace(msgs=[], system=[])",
    "for m in messages",
    "  if m['role'] == 'system'",
    "    set go.system = go.system + [m['content']]",
    "  endif",
    "  if go.msgs and go.msgs[-1]['Role'] == m['role'] and m['role'] != 'tool'",
    "    set go.msgs = go.msgs[:-1] + [dict(go.msgs[-1], Content=go.msgs[-1]['Content'] ~ '\\n\\n' ~ m['content'])]",
    "  else",
    "    set go.msgs = go.msgs + [{'Role': m['role'], 'Content': m['content'], 'Thinking': m['thinking'] or '', "
    "'ToolCalls': m['tool_calls'] or [], 'ToolName': m['tool_name'] or '', 'ToolCallID': m['tool_call_id'] or '', "
    "'Images': []}]",
    "  endif",
    "endfor",
    "set go_root = {'System': go.system|join('\\n\\n'), 'Messages': go.msgs, 'Tools': tools or [], "
    "'Response': '', 'Think': false, 'ThinkLevel': '', 'IsThinkSet': false}",
]

# The older shape: the template runs once per (system, prompt, response), the last run cut.
_LEGACY_LOOP = [
    "set go_turn = namespace(system='', prompt='', response='')",
    "for m in go.msgs",
    "  if m['Role'] == 'system'",
    "    if go_turn.prompt or go_turn.response",
    "      {{ go_full(go_turn.system, go_turn.prompt, go_turn.response) }}",
    "      set go_turn.system = ''",
    "      set go_turn.prompt = ''",
    "      set go_turn.response = ''",
    "    endif",
    "    set go_turn.system = m['Content']",
    "  elif m['Role'] == 'user'",
    "    if go_turn.response",
    "      {{ go_full(go_turn.system, go_turn.prompt, go_turn.response) }}",
    "      set go_turn.system = ''",
    "      set go_turn.prompt = ''",
    "      set go_turn.response = ''",
    "    endif",
    "    set go_turn.prompt = m['Content']",
    "  elif m['Role'] == 'assistant'",
    "    set go_turn.response = m['Content']",
    "  endif",
    "endfor",
    "{{ go_last(go_turn.system, go_turn.prompt, go_turn.response) }}",
]


def _tags(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        body = line.lstrip()
        pad = line[: len(line) - len(body)]
        if body.startswith("{{"):
            out.append(pad + "{{- " + body[3:-3] + " -}}")
        else:
            out.append(pad + "{%- " + body + " -%}")
    return out


def translate(go: str) -> Translation:
    """Jinja for an Ollama Go template; Untranslatable when there is no faithful one."""
    nodes, lexer = parse(go)
    names = identifiers(nodes)
    if "messages" in names:
        writer = Writer(lexer, 0)
        writer.nodes(nodes, "go_root", [{}])
        jinja = "\n".join(_tags(_MESSAGES_PRELUDE) + writer.lines) + "\n"
        return Translation(jinja, "translated: a template over .Messages", writer.notes)
    if "response" not in names:  # Ollama appends {{ .Response }} to such templates
        nodes = nodes + [Action(Pipe([], False, [[Field(["Response"])]], len(go)))]
    macros = []
    notes: list[str] = []
    for macro, tree in (("go_full", nodes), ("go_last", cut_after_response(nodes))):
        writer = Writer(lexer, 1)
        writer.nodes(tree, "go_root", [{}])
        notes += [n for n in writer.notes if n not in notes]
        macros += [f"{{%- macro {macro}(system, prompt, response) -%}}",
                   "  {%- set go = namespace() -%}",
                   "  {%- set go_root = {'System': system, 'Prompt': prompt, 'Response': response, "
                   "'Think': false, 'ThinkLevel': '', 'IsThinkSet': false} -%}",
                   *writer.lines, "{%- endmacro -%}"]
    jinja = "\n".join(macros + _tags(_MESSAGES_PRELUDE + _LEGACY_LOOP)) + "\n"
    return Translation(jinja, "translated: a one-exchange template with .System, .Prompt and .Response, "
                              "run for each exchange as Ollama does", notes)

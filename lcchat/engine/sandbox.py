"""The Jinja sandbox chat templates run in: bounds on what a template may build and how long
it may run.

A GGUF's chat template is untrusted input. Jinja's immutable sandbox stops attribute
tricks and code execution, but not a template that asks for `'x'|center(8000000000)` or
`lipsum(2000000)`: those build gigabytes, or loop for minutes, inside one Python call.
So every way a template can build a string or a list checks the size of its result
BEFORE building it (the `*`, `+`, `%` and `~` operators, the filters, the string methods
and the output itself), nothing that loops in Python without a bound is reachable
(`lipsum` is gone), and the time limit is a watchdog that interrupts the rendering thread
wherever it is (not a trace of the template's own frames, which a loop inside a filter or
global escaped), so a filter or global that loops is stopped too. What a render builds
in total is metered: past every `_METER_STEP` characters the process's resident memory is
checked, so a template that keeps many bounded pieces alive is stopped as well.
"""

from __future__ import annotations

import inspect
import re
import threading
from contextlib import contextmanager
from functools import update_wrapper
from typing import Any, Callable, Iterator

MAX_STRING = 8 << 20  # the longest string (characters) a template may build, its output too
MAX_ITEMS = 1 << 20  # the longest list a template may build
MAX_REPEAT = 1 << 16  # the longest string/list `*` may build (text * count)
MAX_INT_BITS = 1 << 16  # the largest integer a template may compute
MAX_MEMORY = 512 << 20  # resident memory (bytes) a render may add before it is stopped
_METER_STEP = 32 << 20  # characters built between two looks at resident memory
_ITEM_COST = 40  # what one list item counts for in the meter (a pointer and an object)

# Filters that are of no use to a chat template and cannot be bounded cheaply: pprint and
# xmlattr print whole structures, striptags and urlize run regular expressions that go
# quadratic on hostile text.
_REMOVED_FILTERS = ("pprint", "striptags", "urlize", "xmlattr")


class Limit(Exception):
    """A template went past a size or time bound (the message says which)."""


class TimeLimit(BaseException):
    """Raised inside a render that ran out of time. A BaseException, so that no `except
    Exception` in Jinja or a filter can swallow it and let the render run on."""


# ---------------------------------------------------------------- sizes, before building


def text_size(value: Any, budget: int = MAX_STRING) -> int:
    """About how many characters str(value) has, at least; computed without building it.
    Stops counting past `budget` (the result is then > budget). Containers count as their
    repr: items, quotes and separators (strings inside them as up to 4 characters each,
    for escapes)."""
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += 4 * len(item) + 2
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 3
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif type(item).__name__ == "Namespace":
            stack.append(dict(item._Namespace__attrs))  # type: ignore[attr-defined]
            total += 13
        else:  # jinja's own objects (Undefined, loop, cycler, macros) print short
            total += 64
    return total


def check_text(size: int) -> None:
    if size > MAX_STRING:
        raise Limit("a chat template tried to build a huge string")


def check_items(count: int) -> None:
    if count > MAX_ITEMS:
        raise Limit("a chat template tried to build a huge list")


def _as_text(value: Any) -> str:
    check_text(text_size(value))
    return value if isinstance(value, str) else str(value)


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


def _format_size(fmt: str, values: Any) -> int:
    """An upper bound on the length of `fmt % values` or `fmt.format(*values)`: every
    field can be as long as the longest value plus the largest width or precision written
    in the format or passed as a value (`%*s`, `{0:{1}}`)."""
    if isinstance(values, dict):
        values = list(values.values())
    elif not isinstance(values, (list, tuple)):
        values = [values]
    longest = max((text_size(v, MAX_STRING) for v in values), default=0)
    widths = [int(run) for run in _digit_runs(fmt)]
    widths += [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    widest = max((abs(w) for w in widths), default=0)
    fields = fmt.count("%") + fmt.count("{") + 1
    if longest > MAX_STRING or widest > MAX_STRING:
        return MAX_STRING + 1
    return len(fmt) + fields * (longest + widest)


def _digit_runs(text: str) -> list[str]:
    """The runs of digits in a format (widths, precisions), ten digits at most each: a
    width of ten digits is too large already."""
    return _DIGITS.findall(text)


_DIGITS = re.compile(r"\d{1,10}")


# ---------------------------------------------------------------- filters

def _filter_checks() -> dict[str, Callable[[dict[str, Any]], None]]:
    """For each filter that can build more than a few times its input: a check of its
    bound arguments (as named in the filter's signature) made before it runs. A check may
    return arguments to use instead (join lists a generator once, to count it)."""

    def center(a):
        check_text(max(text_size(a["value"]), _width(a["width"])))

    def indent(a):
        s = _as_text(a["s"])
        width = a["width"]
        step = len(width) if isinstance(width, str) else _width(width)
        check_text(len(s) + (s.count("\n") + 1) * step)

    def format_(a):
        check_text(_format_size(_as_text(a["value"]), a["kwargs"] or a["args"]))

    def replace(a):
        s = _as_text(a["s"])
        old, new = str(a["old"]), _as_text(a["new"])
        count = s.count(old) + 1 if old else len(s) + 1
        check_text(len(s) + count * len(new))

    def wordwrap(a):
        s = _as_text(a["s"])
        wrap = a["wrapstring"]
        check_text(len(s) + (len(s) + 1) * (len(_as_text(wrap)) if wrap is not None else 1))

    def truncate(a):
        check_text(text_size(a["s"]) + text_size(a["end"]))

    def join(a):
        items = a["value"]
        if not isinstance(items, (list, tuple, str, dict, set, frozenset, range)):
            items = _take(items)  # a generator: list it (bounded) so its items can be counted
        check_text(_join_size(_as_text(a["d"]), items, attribute=a.get("attribute")))
        return {"value": items}

    def grows(factor):
        def check(a):
            first = next(iter(a.values()))
            check_text(factor * text_size(first))
        return check

    def fill(key):
        def check(a):
            check_items(_width(a[key]))
        return check

    return {
        "center": center, "indent": indent, "join": join, "format": format_, "replace": replace, "wordwrap": wordwrap,
        "truncate": truncate, "urlencode": grows(9), "tojson": grows(6), "e": grows(6), "escape": grows(6),
        "forceescape": grows(6), "string": grows(1), "upper": grows(3), "lower": grows(3), "title": grows(3),
        "capitalize": grows(3), "batch": fill("linecount"), "slice": fill("slices"),
    }


def _width(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def bounded_filters(filters: dict[str, Callable]) -> dict[str, Callable]:
    """The filters a sandboxed template gets: each checked before it runs, its result
    metered after."""
    checks = _filter_checks()
    out = {}
    for name, func in filters.items():
        if name in _REMOVED_FILTERS:
            continue
        out[name] = _bounded_filter(func, checks.get(name))
    return out


def _bounded_filter(func: Callable, check: Callable[[dict[str, Any]], None] | None) -> Callable:
    passes_arg = hasattr(func, "jinja_pass_arg")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        signature = None

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if check is not None and signature is not None:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                bound = None  # the filter itself reports the wrong arguments
            if bound is not None:
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                if passes_arg:
                    arguments.pop(next(iter(arguments)))
                replaced = check(arguments)
                if replaced:
                    bound.arguments.update(replaced)
                    args, kwargs = bound.args, bound.kwargs
        return meter(func(*args, **kwargs))

    update_wrapper(wrapped, func)  # keeps jinja_pass_arg
    return wrapped


# ---------------------------------------------------------------- methods and operators

# Methods of str/bytes that can build far more than their input, and how to check them.
_BLOCKED_METHODS = frozenset({"translate", "maketrans"})


def check_method(target: Any, args: tuple, kwargs: dict) -> None:
    """Check a call of a builtin method from a template before it runs."""
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    if isinstance(owner, (str, bytes, bytearray)):
        if name in _BLOCKED_METHODS:
            raise Limit(f"a chat template may not call {name}()")
        if name in ("center", "ljust", "rjust", "zfill") and args:
            check_text(max(len(owner), _width(args[0])))
        elif name == "expandtabs":
            size = _width(args[0] if args else kwargs.get("tabsize", 8))
            check_text(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * size)
        elif name == "join" and args:
            check_text(_join_size(owner, args[0]))
        elif name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = owner.count(old) + 1 if old else len(owner) + 1
            check_text(len(owner) + count * text_size(new))
        elif name in ("format", "format_map") and isinstance(owner, str):
            check_text(_format_size(owner, (args[0] if name == "format_map" and args else list(args) + list(kwargs.values()))))
    elif isinstance(owner, int) and name == "to_bytes":
        check_text(_width(args[0] if args else kwargs.get("length", 1)))


def _take(items: Any) -> list:
    out = []
    for item in items:
        out.append(item)
        if len(out) > MAX_ITEMS:
            check_items(len(out))
    return out


def _join_size(separator: Any, items: Any, attribute: Any = None) -> int:
    """An upper bound on the length of separator.join(items). A generator's items are not
    counted (counting would use them up): the filter lists them first."""
    sized = isinstance(items, (list, tuple, str, dict, set, frozenset, range))
    n = len(items) if sized else 0
    check_items(n)
    total = len(separator) * max(n - 1, 0)
    if sized and attribute is None:
        for item in items:
            total += text_size(item, MAX_STRING)
            if total > MAX_STRING:
                break
    return total


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Check `left <operator> right` in a template before it is computed."""
    if operator == "**":
        if isinstance(right, (int, float)) and abs(right) > 64:
            raise Limit("exponent too large in a chat template")
        if _int_bits(left) * max(_width(right), 0) > MAX_INT_BITS:
            raise Limit("a chat template tried to compute a huge number")
    elif operator == "*":
        count, seq = (right, left) if isinstance(right, int) else (left, right)
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int):
            if count * max(len(seq), 1) > MAX_REPEAT:
                raise Limit("a chat template tried to build a huge string")
        elif _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise Limit("a chat template tried to compute a huge number")
    elif operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            check_text(len(left) + len(right))
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            check_items(len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        check_text(_format_size(left, right))


def check_concat(parts: tuple) -> None:
    """Check `a ~ b ~ ...` before the strings are joined."""
    total = 0
    for part in parts:
        total += text_size(part, MAX_STRING)
        check_text(total)


def check_output(value: Any) -> Any:
    """Jinja's finalize hook: what `{{ value }}` prints is checked before str() builds it."""
    if not isinstance(value, str):
        check_text(text_size(value))
    return value


# ---------------------------------------------------------------- the meter and the clock


class _Meter:
    """What one render has built so far, and the resident memory when it began."""

    def __init__(self) -> None:
        self.built = 0
        self.next_look = _METER_STEP
        self.rss_start = _rss()


_local = threading.local()


def meter(value: Any) -> Any:
    """Count what a template operation built; past every _METER_STEP characters, compare
    resident memory with what it was when the render began."""
    m: _Meter | None = getattr(_local, "meter", None)
    if m is None:
        return value
    if isinstance(value, (str, bytes)):
        m.built += len(value)
    elif isinstance(value, (list, tuple, dict)):
        m.built += _ITEM_COST * len(value)
    else:
        return value
    if m.built >= m.next_look:
        m.next_look = m.built + _METER_STEP
        if _rss() - m.rss_start > MAX_MEMORY:
            raise Limit(f"a chat template used more than {MAX_MEMORY >> 20} MB of memory")
    return value


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # noqa: BLE001 - no figure: the size bounds still hold
            return 0


class _Watchdog:
    """Raises TimeLimit in the thread that started it once `seconds` have passed, wherever
    that thread is: in the template, in Jinja's runtime, in a filter or a global (Python
    checks for it between bytecodes). Costs nothing while the render runs; a render that
    ends in time cancels it, and a TimeLimit still pending then is withdrawn."""

    def __init__(self, seconds: float) -> None:
        self.thread_id = threading.get_ident()
        self.lock = threading.Lock()
        self.active = True
        self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        with self.lock:
            if self.active:
                self.fired = True
                _async_raise(self.thread_id, TimeLimit)

    def stop(self) -> None:
        with self.lock:
            self.active = False
            self.timer.cancel()
            if self.fired:
                _async_raise(self.thread_id, None)  # withdraw it if it has not been raised yet


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc) if exc is not None else None)


@contextmanager
def limits(seconds: float) -> Iterator[None]:
    """Run a compile or render under the bounds: a fresh meter, and a watchdog that raises
    TimeLimit in this thread once `seconds` have passed."""
    previous_meter = getattr(_local, "meter", None)
    _local.meter = _Meter()
    watchdog = _Watchdog(seconds)
    try:
        yield
    finally:
        watchdog.stop()
        _local.meter = previous_meter

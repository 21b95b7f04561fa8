"""Command lines built from the options dataclasses: every default is written once, in the class.

A field declared with :func:`option` becomes a command-line option: its flag (``--field-name``
unless given), help, choices and default come from the field, so ``--help`` always shows the
default the code uses. A field whose type is itself an options dataclass, declared with
:func:`section`, adds its options as an argument group. :func:`parse_options` builds the frozen
options from the parsed arguments; a value its ``__post_init__`` refuses ends the program with a
usage message naming the option, as argparse does for malformed values.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, TypeVar

from pipeline.errors import UserInputError

T = TypeVar("T")
_CLI = "corpusforge.cli"
_SECTION = "corpusforge.section"


@dataclasses.dataclass(frozen=True)
class _Cli:
    help: str
    flag: str | None
    choices: tuple[str, ...] | None
    parse: Callable[[str], Any] | None
    show: Callable[[Any], str] | None
    repeat: bool
    negate: str | None
    toggle: bool
    metavar: str | None
    group: str | None
    const: str | None = None
    aliases: tuple[str, ...] = ()


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,  # noqa: A002 - argparse's own name for it
    flag: str | None = None,
    choices: Sequence[str] | None = None,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] | None = None,
    repeat: bool = False,
    negate: str | None = None,
    toggle: bool = False,
    metavar: str | None = None,
    group: str | None = None,
    const: str | None = None,
    aliases: Sequence[str] = (),
) -> Any:
    """A dataclass field that is also a command-line option.

    ``parse`` turns the text given on the command line into the field's value (ints, floats and
    enums are parsed from the field's default when not given); ``show`` formats the default for
    ``--help``. A bool field defaulting to False is a ``store_true`` flag; one defaulting to True
    is switched off by ``negate`` (e.g. ``--no-within-corpus``), or, with ``toggle``, gets both
    ``--x`` and ``--no-x``. ``repeat`` collects every occurrence into a tuple. ``group`` names
    the ``--help`` section. ``const``: the option may be given without a value, and then means
    this text (``--retry-failed`` alone, or ``--retry-failed timeout``). ``aliases``: other
    spellings of the option (img2dataset's, e.g. ``--url_col``), accepted but kept out of the
    option list: ``--help`` names them all in one line at the end. A bool option's alias also
    takes an explicit value, as img2dataset's command line does (``--resize_only_if_bigger=True``).
    """
    meta = _Cli(
        help,
        flag,
        tuple(choices) if choices else None,
        parse,
        show,
        repeat,
        negate,
        toggle,
        metavar,
        group,
        const,
        tuple(aliases),
    )
    if isinstance(default, list | dict | set):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return dataclasses.field(default=default, metadata={_CLI: meta})


def section(cls: type, title: str | None, required: bool = False) -> Any:
    """A field holding a nested options dataclass ``cls``; its options form the group ``title``
    (unless they name their own). ``required``: no default (``cls`` has required options)."""
    metadata = {_SECTION: (title, cls)}
    if required:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default_factory=cls, metadata=metadata)


def comma_strings(text: str) -> tuple[str, ...]:
    """``a, b,,c`` -> ``("a", "b", "c")``; img2dataset's list syntax ``['a','b']`` too."""
    body = text.strip()
    if len(body) >= 2 and body[0] + body[-1] in ("[]", "()"):
        body = body[1:-1]
    parts = (part.strip().strip("'\"").strip() for part in body.split(","))
    return tuple(part for part in parts if part)


def comma_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in comma_strings(text))
    except ValueError as exc:
        raise ValueError(f"takes comma-separated numbers, got {text!r}") from exc


def show_commas(values: Sequence[Any]) -> str:
    return ",".join(str(v) for v in values) or "''"


def _flag(field: dataclasses.Field[Any], meta: _Cli) -> str:
    return meta.flag or "--" + field.name.replace("_", "-")


def _default_of(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _shown(value: Any, meta: _Cli) -> str:
    if meta.show is not None:
        return meta.show(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if value is None:
        return "unset"
    if value == "":
        return "''"
    return str(value)


def _converter(field: dataclasses.Field[Any], meta: _Cli) -> Callable[[str], Any] | None:
    if meta.parse is not None:
        return meta.parse
    default = _default_of(field)
    if isinstance(default, Enum):
        return type(default)
    if isinstance(default, bool):
        return None
    if isinstance(default, int | float):
        return type(default)
    return None


def _fields(cls: type) -> list[dataclasses.Field[Any]]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    return list(dataclasses.fields(cls))


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    groups: dict[str, argparse._ArgumentGroup] | None = None,
    prefix: str = "",
    default_group: str | None = None,
) -> None:
    """Add an argument for every :func:`option` field of ``cls`` (and of its sections)."""
    groups = {} if groups is None else groups

    def target(name: str | None) -> Any:
        name = name or default_group
        if name is None or not isinstance(parser, argparse.ArgumentParser):
            return parser
        if name not in groups:
            groups[name] = parser.add_argument_group(name)
        return groups[name]

    for field in _fields(cls):
        if _SECTION in field.metadata:
            title, inner = field.metadata[_SECTION]
            add_options(parser, inner, groups, prefix + field.name + ".", title or default_group)
            continue
        meta: _Cli | None = field.metadata.get(_CLI)
        if meta is None:
            continue
        dest = (prefix + field.name).replace(".", "__")
        default = _default_of(field)
        where = target(meta.group)
        flag = _flag(field, meta)
        metavar = meta.metavar or (None if meta.choices else field.name.upper())
        _add_aliases(parser, where, flag, dest, meta, default, metavar)
        if default is dataclasses.MISSING:
            where.add_argument(
                flag,
                dest=dest,
                # With aliases any spelling may be given: _value checks that one was.
                required=not meta.aliases,
                help=f"{meta.help} (required)",
                metavar=metavar,
                choices=meta.choices,
            )
            continue
        help_text = f"{meta.help} (default: {_shown(default, meta)})"
        if isinstance(default, bool) and meta.toggle:
            where.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        elif isinstance(default, bool) and default:
            if meta.negate is None:
                raise TypeError(f"{cls.__name__}.{field.name}: a True flag needs negate= or toggle=True")
            where.add_argument(
                meta.negate, dest=dest, action="store_false", default=True, help=f"{meta.help} (default: off)"
            )
        elif isinstance(default, bool):
            where.add_argument(
                flag, dest=dest, action="store_true", default=False, help=f"{meta.help} (default: off)"
            )
        elif meta.repeat:
            where.add_argument(
                flag,
                dest=dest,
                action="append",
                default=None,
                metavar=metavar,
                help=f"{meta.help} (repeatable; default: none)",
            )
        elif meta.const is not None:
            where.add_argument(
                flag,
                dest=dest,
                default=None,
                nargs="?",
                const=meta.const,
                metavar=metavar,
                choices=meta.choices,
                help=f"{help_text}; alone: {meta.const}",
            )
        else:
            where.add_argument(
                flag, dest=dest, default=None, metavar=metavar, choices=meta.choices, help=help_text
            )
    if not prefix and isinstance(parser, argparse.ArgumentParser):
        _list_aliases(parser)


_ALIASES = "_corpusforge_aliases"


def parse_bool(text: str) -> bool:
    """``true``/``false`` (any case), ``1``/``0``, ``yes``/``no``: img2dataset's boolean values."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def _add_aliases(
    parser: Any, where: Any, flag: str, dest: str, meta: _Cli, default: Any, metavar: str | None
) -> None:
    """Hidden arguments for ``meta.aliases``, writing the same ``dest`` as ``flag``; they are
    remembered on ``parser`` for the one-line list at the end of ``--help``."""
    if not meta.aliases:
        return
    for alias in meta.aliases:
        # SUPPRESS: an alias not given leaves the main option's default in place.
        common = {"dest": dest, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
        if isinstance(default, bool):
            where.add_argument(alias, nargs="?", const=True, type=parse_bool, metavar="BOOL", **common)
        elif meta.repeat:
            where.add_argument(alias, action="append", metavar=metavar, **common)
        elif meta.const is not None:
            where.add_argument(
                alias, nargs="?", const=meta.const, metavar=metavar, choices=meta.choices, **common
            )
        else:
            where.add_argument(alias, metavar=metavar, choices=meta.choices, **common)
    negated = isinstance(default, bool) and default and not meta.toggle
    shown = f"{meta.negate} when False" if negated else flag
    known = getattr(parser, _ALIASES, None)
    if known is None:
        known = []
        setattr(parser, _ALIASES, known)
    known.extend((alias, shown) for alias in meta.aliases)


def _list_aliases(parser: argparse.ArgumentParser) -> None:
    """One line at the end of ``--help``: every alias and the option it stands for."""
    known = getattr(parser, _ALIASES, None)
    if not known:
        return
    line = "img2dataset aliases: " + ", ".join(f"{alias}={flag}" for alias, flag in known) + "."
    parser.epilog = f"{parser.epilog}\n\n{line}" if parser.epilog else line


def _value(cls: type, namespace: argparse.Namespace, prefix: str) -> Any:
    values: dict[str, Any] = {}
    for field in _fields(cls):
        if _SECTION in field.metadata:
            values[field.name] = _value(field.metadata[_SECTION][1], namespace, prefix + field.name + ".")
            continue
        meta: _Cli | None = field.metadata.get(_CLI)
        if meta is None:
            continue
        dest = (prefix + field.name).replace(".", "__")
        given = getattr(namespace, dest, None)
        default = _default_of(field)
        if given is None:
            if default is dataclasses.MISSING and meta.aliases:
                spellings = " or ".join((_flag(field, meta), *meta.aliases))
                raise UserInputError(f"the following arguments are required: {spellings}")
            continue  # not given: the dataclass default applies
        if isinstance(default, bool):
            values[field.name] = given
            continue
        convert = _converter(field, meta)
        try:
            if meta.repeat:
                values[field.name] = tuple(convert(v) if convert else v for v in given)
            else:
                values[field.name] = convert(given) if convert else given
        except ValueError as exc:
            if convert in (int, float):
                raise UserInputError(
                    f"argument {_flag(field, meta)}: invalid {convert.__name__} value: {given!r}"
                ) from exc
            raise UserInputError(f"argument {_flag(field, meta)}: {given!r}: {exc}") from exc
    return cls(**values)


def options_from_namespace(cls: type[T], namespace: argparse.Namespace) -> T:
    """The frozen ``cls`` built from parsed arguments (raises ``UserInputError`` on bad values)."""
    return _value(cls, namespace, "")


def parse_options(cls: type[T], parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> T:
    """Parse ``argv`` with ``parser`` into ``cls``; a refused value exits with a usage message."""
    namespace = parser.parse_args(argv)
    try:
        return options_from_namespace(cls, namespace)
    except UserInputError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def options_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with every option of ``cls``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_options(parser, cls)
    return parser


def recorded(options: Any) -> Any:
    """``options`` as plain data for a JSON record (tuples as lists, enums as their values)."""
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return {f.name: recorded(getattr(options, f.name)) for f in dataclasses.fields(options)}
    if isinstance(options, dict):
        return {k: recorded(v) for k, v in options.items()}
    if isinstance(options, tuple | list):
        return [recorded(v) for v in options]
    if isinstance(options, Enum):
        return options.value
    return options

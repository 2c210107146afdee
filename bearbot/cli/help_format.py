"""``--help`` in plain words: ``IMAGE...`` rather than ``{images}...``, no ``<bool>`` after a flag.

Typer prints every parameter's Python type (``--json <bool>``, ``<list[Path]>``) and wraps
required arguments in braces. Our help texts already say what a value is, so the group below
swaps each parameter for a subclass that shows the classic Unix forms. It works on the click
tree Typer builds, so commands defined in any module get it without opting in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from typer._click import Context


class _FlagOption(TyperOption):
    """A flag shows no value type: ``--json``, not ``--json <bool>``."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)


class _NamedArgument(TyperArgument):
    """``IMAGE...`` / ``[REVISION]`` in the usage line and the table, without the Python type."""

    @property
    def display_name_raw(self) -> str:  # also in errors: "Missing argument 'IMAGES'"
        return (self.metavar or self.name or "arg").upper()

    def _plain_name(self) -> str:
        return f"{self.display_name_raw}..." if self.nargs != 1 else self.display_name_raw

    def _usage_display_name(self) -> str:
        return self._plain_name() if self.required else f"[{self._plain_name()}]"

    def _rich_display_name(self) -> str:
        return self._plain_name()

    def display_type_rich(self, ctx: Context) -> str | None:
        return None


def _tidy(command: Any, ctx: Context) -> None:
    """Swap the parameter classes of ``command`` (and of its sub-commands) for the plain ones."""
    params = list(getattr(command, "params", []))
    if isinstance(command, TyperCommand | TyperGroup):
        help_option = command.get_help_option(ctx)
        if help_option is not None:
            params.append(help_option)
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _FlagOption
        elif type(param) is TyperArgument:
            param.__class__ = _NamedArgument
    for sub in getattr(command, "commands", {}).values():
        _tidy(sub, ctx)


class PlainHelpGroup(TyperGroup):
    """The top-level group: tidies every command's parameters before parsing or printing help."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        _tidy(self, ctx)  # before parsing: --help and usage errors print while parsing
        return super().parse_args(ctx, args)

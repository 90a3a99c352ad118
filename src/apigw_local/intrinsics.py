"""CloudFormation intrinsic functions, resolved against a local stack.

The resolver knows nothing about resource types: the template reader (`template/reader.py`)
hands it two callbacks, one for `Ref` to a resource and one for `Fn::GetAtt`, and a table
of parameter values. What it implements follows the CloudFormation "Intrinsic function reference":

- `Ref` (parameters, pseudo parameters, resources), `Fn::GetAtt` (both forms),
  `Fn::Sub` (string form and `[string, {vars}]` form, `${!Literal}` escapes),
  `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`,
  `Fn::Or`, `Fn::FindInMap` (Mappings), `Condition` (inside conditions), `AWS::NoValue`
  (drops the key or list item).
- Anything else named `Fn::*` raises `TemplateError` naming where it was met.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class TemplateError(Exception):
    """A template the emulator cannot read; the message names template, resource, property."""


class _NoValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()

# CloudFormation: "${Name}" or "${Resource.Attribute}"; "${!Literal}" stays "${Literal}".
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")

RefResolver = Callable[[str], Any]
GetAttResolver = Callable[[str, str], Any]


class Resolver:
    """Resolves intrinsic functions in template values.

    `where` (a callable returning e.g. "template.yaml: Resources.Fn.Properties.Environment")
    is used only to build error messages.
    """

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        ref: RefResolver,
        get_att: GetAttResolver,
        conditions: Mapping[str, Any] | None = None,
        rewrite: Callable[[str], str] | None = None,
        mappings: Mapping[str, Any] | None = None,
    ) -> None:
        self.mappings = mappings or {}
        self.parameters = parameters
        self.pseudo = pseudo
        self._ref = ref
        self._get_att = get_att
        self._condition_defs = dict(conditions or {})
        self._condition_values: dict[str, bool] = {}
        self._rewrite = rewrite or (lambda s: s)

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, name: str, where: str = "") -> bool:
        if name in self._condition_values:
            return self._condition_values[name]
        if name not in self._condition_defs:
            raise TemplateError(f"{where}: unknown condition {name!r}")
        self._condition_values[name] = False  # a guard against cycles
        value = self._truth(self.resolve(self._condition_defs[name], f"Conditions.{name}"), where)
        self._condition_values[name] = value
        return value

    @staticmethod
    def _truth(value: Any, where: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TemplateError(f"{where}: a condition must be a boolean, got {value!r}")

    # -- resolution ---------------------------------------------------------------------------

    def resolve(self, value: Any, where: str) -> Any:
        """Resolve every intrinsic in `value`; `AWS::NoValue` removes keys and list items."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key,) = value
                if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                    if key == "Condition" and not isinstance(value[key], str):
                        pass  # a property that happens to be called Condition
                    else:
                        return self._intrinsic(key, value[key], where)
            out = {}
            for k, v in value.items():
                r = self.resolve(v, f"{where}.{k}")
                if r is not NO_VALUE:
                    out[k] = r
            return out
        if isinstance(value, list):
            items = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in items if v is not NO_VALUE]
        if isinstance(value, str):
            return self._rewrite(value)
        return value

    def _intrinsic(self, fn: str, arg: Any, where: str) -> Any:
        handler = getattr(self, "_fn_" + fn.replace("Fn::", "").lower(), None)
        if handler is None:
            raise TemplateError(f"{where}: unsupported intrinsic function {fn}")
        return handler(arg, f"{where}")

    def _fn_ref(self, arg: Any, where: str) -> Any:
        if not isinstance(arg, str):
            arg = self.resolve(arg, where)
        if not isinstance(arg, str):
            raise TemplateError(f"{where}: Ref takes a name, got {arg!r}")
        return self.ref(arg, where)

    def ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name.startswith("AWS::"):
            raise TemplateError(f"{where}: unsupported pseudo parameter {name}")
        if name in self.parameters:
            return self.parameters[name]
        try:
            result = self._ref(name)
        except KeyError:
            raise TemplateError(f"{where}: Ref to unknown parameter or resource {name!r}") from None
        return self._rewrite(result) if isinstance(result, str) else result

    def _fn_getatt(self, arg: Any, where: str) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        arg = self.resolve(arg, where)
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise TemplateError(f"{where}: Fn::GetAtt takes [resource, attribute], got {arg!r}")
        return self.get_att(arg[0], arg[1], where)

    def get_att(self, resource: str, attribute: str, where: str) -> Any:
        try:
            result = self._get_att(resource, attribute)
        except KeyError:
            raise TemplateError(
                f"{where}: Fn::GetAtt {resource}.{attribute}: unknown resource {resource!r}"
            ) from None
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        return self._rewrite(result) if isinstance(result, str) else result

    def _fn_sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text = arg[0]
            variables = self.resolve(arg[1], f"{where}.Fn::Sub[1]")
        else:
            raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{vars}}]")
        if not isinstance(text, str):
            raise TemplateError(f"{where}: Fn::Sub's template must be a literal string")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] not in self.parameters:
                resource, attribute = name.split(".", 1)
                value = self.get_att(resource, attribute, where)
            else:
                value = self.ref(name, where)
            if isinstance(value, bool):
                return str(value).lower()
            if not isinstance(value, (str, int, float)):
                raise TemplateError(f"{where}: Fn::Sub variable {name!r} is not a string")
            return str(value)

        return self._rewrite(_SUB_VAR.sub(replace, text))

    def _fn_join(self, arg: Any, where: str) -> str:
        arg = self.resolve(arg, where)
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], list)):
            raise TemplateError(f"{where}: Fn::Join takes [delimiter, [values]]")
        delimiter, values = arg
        return self._rewrite(str(delimiter).join(_scalar(v, where) for v in values))

    def _fn_select(self, arg: Any, where: str) -> Any:
        arg = self.resolve(arg, where)
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], list)):
            raise TemplateError(f"{where}: Fn::Select takes [index, [values]]")
        try:
            return arg[1][int(arg[0])]
        except (ValueError, IndexError):
            raise TemplateError(f"{where}: Fn::Select index {arg[0]!r} out of range") from None

    def _fn_split(self, arg: Any, where: str) -> list[str]:
        arg = self.resolve(arg, where)
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], str)):
            raise TemplateError(f"{where}: Fn::Split takes [delimiter, string]")
        return arg[1].split(arg[0])

    def _fn_if(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
            raise TemplateError(f"{where}: Fn::If takes [condition, then, else]")
        branch = arg[1] if self.condition(arg[0], where) else arg[2]
        return self.resolve(branch, where)

    def _fn_equals(self, arg: Any, where: str) -> bool:
        arg = self.resolve(arg, where)
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{where}: Fn::Equals takes two values")
        return _scalar(arg[0], where) == _scalar(arg[1], where)

    def _fn_not(self, arg: Any, where: str) -> bool:
        arg = self.resolve(arg, where)
        if not (isinstance(arg, list) and len(arg) == 1):
            raise TemplateError(f"{where}: Fn::Not takes one condition")
        return not self._truth(arg[0], where)

    def _fn_and(self, arg: Any, where: str) -> bool:
        values = self.resolve(arg, where)
        return all(self._truth(v, where) for v in values)

    def _fn_or(self, arg: Any, where: str) -> bool:
        values = self.resolve(arg, where)
        return any(self._truth(v, where) for v in values)

    def _fn_findinmap(self, arg: Any, where: str) -> Any:
        arg = self.resolve(arg, where)
        if not (isinstance(arg, list) and len(arg) == 3):
            raise TemplateError(f"{where}: Fn::FindInMap takes [map, top key, second key]")
        try:
            return self.mappings[arg[0]][_scalar(arg[1], where)][_scalar(arg[2], where)]
        except (KeyError, TypeError):
            raise TemplateError(f"{where}: Fn::FindInMap {arg!r}: no such entry") from None

    def _fn_condition(self, arg: Any, where: str) -> bool:
        return self.condition(arg, where)


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {value!r}")

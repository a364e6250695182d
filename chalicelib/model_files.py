"""Static checks of an uploaded model file. The file is parsed, never imported or run:
uploaded code only ever runs in the worker or inference runtime."""
from __future__ import annotations

import ast

from chalicelib.errors import Unprocessable

BASE_CLASS = "BaseModel"


def check_model_source(source: bytes, model_class: str) -> None:
    """The file is UTF-8 Python that defines ``model_class`` at top level, and that class
    derives (directly, or through classes in the same file) from ``BaseModel``."""
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unprocessable(f"the model file is not UTF-8 text (byte {e.start})") from e
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        where = f" (line {e.lineno})" if e.lineno else ""
        raise Unprocessable(f"the model file does not parse: {e.msg}{where}") from e
    except ValueError as e:  # Python < 3.11.4 raises ValueError for null bytes
        raise Unprocessable(f"the model file does not parse: {e}") from e
    except (MemoryError, RecursionError) as e:  # the parser gives up on very deeply nested code
        raise Unprocessable("the model file does not parse: its code is nested too deeply") from e
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    if model_class not in classes:
        found = ", ".join(sorted(classes)) or "none"
        raise Unprocessable(f"class {model_class!r} is not defined in the model file (classes found: {found})")
    if not _derives_from_base(model_class, classes, seen=set()):
        raise Unprocessable(f"class {model_class!r} must subclass kilele.model.{BASE_CLASS}")


def _derives_from_base(name: str, classes: dict[str, ast.ClassDef], seen: set[str]) -> bool:
    if name in seen or name not in classes:
        return False
    seen.add(name)
    for base in classes[name].bases:
        base_name = ast.unparse(base).rsplit(".", 1)[-1]
        if base_name == BASE_CLASS or _derives_from_base(base_name, classes, seen):
            return True
    return False

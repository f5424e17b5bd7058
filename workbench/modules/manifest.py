"""A catalog module's ``manifest.toml``: what it is, what it asks for, what it takes and gives.

```toml
name = "parser"                       # letters, digits, '_' and '-'; the folder's name
language = "python"                   # python | c | wat | wasm
description = "CSV or JSON text to a list of records"
source = "parser.py"                  # optional: the folder's only main.* file otherwise
capabilities = []                     # what it asks for (attenuated by its caller's rights)
exports = ["parse"]
[inputs]                              # name = what it is (documentation, shown by `modules show`)
text = "CSV or JSON text"
[outputs]
records = "a list of objects"
```

Every mistake is a :class:`~workbench.errors.ManifestError` with the file, the field and a hint.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CapabilityError, ManifestError
from ..policy import Capability

__all__ = ["Manifest", "load_manifest", "LANGUAGES"]

LANGUAGES = {"python": ".py", "c": ".c", "wat": ".wat", "wasm": ".wasm"}
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FIELDS = {"name", "language", "description", "source", "capabilities", "exports", "inputs", "outputs"}


@dataclass(frozen=True)
class Manifest:
    """One checked manifest; ``capabilities`` are canonical capability strings."""

    name: str
    language: str
    description: str
    capabilities: tuple[str, ...]
    exports: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    source: Path
    file: Path

    def source_text(self) -> str | bytes:
        return self.source.read_bytes() if self.language == "wasm" else self.source.read_text(encoding="utf-8")

    def describe(self) -> str:
        """What ``workbench modules show NAME`` prints."""
        lines = [f"{self.name} ({self.language}): {self.description}",
                 f"  source: {self.source.name}",
                 f"  capabilities: {', '.join(self.capabilities) or 'none'}",
                 f"  exports: {', '.join(self.exports) or 'none'}"]
        for title, items in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"  {title}:")
            lines.extend(f"    {key}: {text}" for key, text in items)
        return "\n".join(lines)


def _strings(value: Any, file: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"must be a list of strings, not {value!r}", file=file, field=field,
                            hint=f'write {field} = ["..."] (an empty list is fine)')
    return tuple(value)


def _table(value: Any, file: str, field: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ManifestError(f"must be a table of names and descriptions, not {value!r}", file=file, field=field,
                            hint=f'write [{field}] and then lines like  text = "what it is"')
    return tuple(value.items())


def load_manifest(folder: str | Path) -> Manifest:
    """Read and check ``folder/manifest.toml``."""
    folder = Path(folder)
    path = folder / "manifest.toml"
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError("no manifest.toml", file=file, hint="every catalog module is a folder with a manifest.toml") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"not valid TOML: {exc}", file=file, hint="check the quoting and the [tables]") from None
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ManifestError(f"unknown field {unknown[0]!r}", file=file, field=unknown[0],
                            hint=f"the fields are {', '.join(sorted(_FIELDS))}")
    for required in ("name", "language", "description", "capabilities", "exports", "inputs", "outputs"):
        if required not in data:
            raise ManifestError("is missing", file=file, field=required, hint=f"add {required} = ... (see extensions/README.md)")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ManifestError(f"{name!r} is not a module name", file=file, field="name",
                            hint="letters, digits, '_' and '-', at most 64")
    if name != folder.name:
        raise ManifestError(f"{name!r} is not the folder's name {folder.name!r}", file=file, field="name",
                            hint="name the folder after the module")
    language = data["language"]
    if language not in LANGUAGES:
        raise ManifestError(f"unknown language {language!r}", file=file, field="language",
                            hint=f"one of {', '.join(LANGUAGES)}")
    if not isinstance(data["description"], str) or not data["description"].strip():
        raise ManifestError("must be a non-empty string", file=file, field="description", hint="say what it does")
    capabilities = []
    for text in _strings(data["capabilities"], file, "capabilities"):
        try:
            cap = Capability.parse(text)
        except CapabilityError as exc:
            raise ManifestError(f"{text!r}: {exc.message}", file=file, field="capabilities",
                                hint=exc.hint or "write capabilities as the grammar says: domain:action[:scope]"
                                ) from None
        capabilities.append(str(cap))
    source = data.get("source")
    if source is None:
        found = sorted(folder.glob("main.*"))
        source_path = found[0] if len(found) == 1 else folder / f"main{LANGUAGES[language]}"
    elif not isinstance(source, str) or "/" in source or "\\" in source or source.startswith("."):
        raise ManifestError(f"{source!r} is not a file name in the module's folder", file=file, field="source",
                            hint="name a file next to manifest.toml")
    else:
        source_path = folder / source
    if not source_path.is_file():
        raise ManifestError(f"the source {source_path.name} does not exist", file=file, field="source",
                            hint=f"add {source_path.name} or set source = \"...\"")
    return Manifest(name, language, data["description"].strip(), tuple(capabilities),
                    _strings(data["exports"], file, "exports"), _table(data["inputs"], file, "inputs"),
                    _table(data["outputs"], file, "outputs"), source_path, path)

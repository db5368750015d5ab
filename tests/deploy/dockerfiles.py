"""Read a Dockerfile's instructions and a .dockerignore's rules, for static checks without a Docker engine."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def read_instructions(path: Path) -> list[Instruction]:
    """Return the instructions of a Dockerfile, with continuation lines joined and comments dropped."""
    instructions = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(index for index, instruction in enumerate(instructions) if instruction.keyword == "FROM")
    return instructions[last_from:]


def copy_sources(instruction: Instruction) -> list[str]:
    """Return the sources of a COPY from the build context; a COPY --from another stage has none."""
    words = instruction.arguments.split()
    if any(word.startswith("--from=") for word in words):
        return []
    paths = [word for word in words if not word.startswith("--")]
    return paths[:-1]


def read_ignore_rules(path: Path) -> list[tuple[bool, str]]:
    """Return the .dockerignore rules in order as (excludes, pattern); a later match wins, as in Docker."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        rules.append((excludes, line.lstrip("!").lstrip("/").rstrip("/")))
    return rules


def is_ignored(relative_path: str, rules: list[tuple[bool, str]]) -> bool:
    """Tell whether ``relative_path`` (or a folder above it) is kept out of the build context."""
    parts = relative_path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for excludes, pattern in rules:
        regex = fnmatch.translate(pattern.replace("**/", "")) if pattern.startswith("**/") else None
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or (
                    regex and re.match(regex, candidate.rsplit("/", 1)[-1])):
                ignored = excludes
    return ignored

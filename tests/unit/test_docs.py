"""The documentation states what the code does."""

from __future__ import annotations

from pathlib import Path

from eventyard.settings import settings_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_page_lists_every_setting_as_the_code_defines_it() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert settings_markdown() in page


def test_readme_names_the_test_command_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test" in readme
    assert "bash scripts/test" in ci

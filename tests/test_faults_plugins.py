"""Hostile and look-alike plugins: first-party names cannot be taken, built-in and first-party
commands cannot be replaced, and a plugin's bad registration never breaks another plugin.

Plugins here are real distributions (``*.dist-info`` with ``entry_points.txt``) on a temporary
``sys.path`` entry, found by ``importlib.metadata`` as an installed plugin would be.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedify.errors import ConfigurationError, UnknownModelError
from embedify.registry import Registry

pytestmark = pytest.mark.faults

_unique = itertools.count()


def install(
    site: Path, distribution: str, source: str, *, entry_point: str = "", module: str = ""
) -> str:
    """Install ``distribution`` into ``site``: a module holding ``source`` and an ``embedify``
    entry point naming it. Returns the module's name (unique, so imports never collide)."""
    module = module or f"plugin_{distribution.replace('-', '_')}_{next(_unique)}"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text("from embedify import hookimpl\n\n" + source)
    info = site / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[embedify]\n{entry_point or distribution} = {module}\n"
    )
    return module


def provides(*calls: str) -> str:
    body = "\n".join(f"    {call}" for call in calls)
    return f"@hookimpl\ndef register_models(register):\n{body}\n"


FAKE = "'embedify.fake:FakeEmbeddingModel'"


def loaded(site: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Registry, list[str]]:
    """A fresh registry over every installed plugin plus ``site``, and the warnings it gave."""
    monkeypatch.syspath_prepend(str(site))
    registry = Registry()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        registry.load()
    return registry, [str(w.message) for w in record]


def embedify_cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run(
        [sys.executable, "-m", "embedify", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- who owns a name: the decision alone --------------------------------------------------------


def claim(origin: str, distribution: str, plugin: str = "") -> Any:
    from embedify.registry import Claim

    return Claim("openai", plugin or distribution, distribution, origin, distribution)


def test_a_third_party_claim_on_a_reserved_name_is_refused_unless_chosen() -> None:
    from embedify.registry import FIRST_PARTY_ORIGIN, THIRD_PARTY, decide_owner

    evil, real = claim(THIRD_PARTY, "evil"), claim(FIRST_PARTY_ORIGIN, "embedify-openai")
    refused = decide_owner("openai", "provider", [evil], "embedify-openai", None)
    assert refused.winner is None and refused.override is None
    (conflict,) = refused.conflicts
    assert conflict.refused and conflict.loser == "evil" and "embedify-openai" in conflict.reason
    chosen = decide_owner("openai", "provider", [evil, real], "embedify-openai", "evil")
    assert chosen.winner is evil and chosen.override is not None
    assert chosen.override.holder == "evil" and chosen.override.owner == "embedify-openai"
    kept = decide_owner("openai", "provider", [evil, real], "embedify-openai", None)
    assert kept.winner is real and [c.loser for c in kept.conflicts] == ["evil"]


def test_unreserved_names_go_by_origin_then_registration_order() -> None:
    from embedify.registry import BUILT_IN, RUNTIME, THIRD_PARTY, decide_owner

    first, second = claim(THIRD_PARTY, "a"), claim(THIRD_PARTY, "b")
    runtime, builtin = claim(RUNTIME, "r", "__runtime__"), claim(BUILT_IN, "embedify")
    assert decide_owner("x", "provider", [first, second], None, None).winner is first
    assert decide_owner("x", "provider", [first, second], None, "b").winner is second
    assert decide_owner("x", "provider", [first, builtin, runtime], None, None).winner is runtime
    assert decide_owner("x", "provider", [first, builtin], None, None).winner is builtin


ORIGINS = ["registered at runtime", "built in", "first-party", "third party"]


@given(
    claims=st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from(ORIGINS)), min_size=1, max_size=6
    ),
    reserved=st.sampled_from([None, "embedify-openai"]),
    chosen=st.sampled_from([None, "a", "b", "z"]),
)
def test_ownership_properties(
    claims: list[tuple[str, str]], reserved: str | None, chosen: str | None
) -> None:
    """Every claim is kept or reported once; a third party holds a reserved name only by the
    user's choice, and then as an override; refusals hit third parties only."""
    from embedify.registry import THIRD_PARTY, Claim, decide_owner

    made = [Claim("n", f"{d}-{i}", d, origin, i) for i, (d, origin) in enumerate(claims)]
    decided = decide_owner("n", "provider", made, reserved, chosen)
    reported = [c.loser_plugin for c in decided.conflicts]
    kept = [decided.winner.plugin] if decided.winner else []
    assert sorted(reported + kept) == sorted(c.plugin for c in made)
    for conflict in decided.conflicts:
        loser = next(c for c in made if c.plugin == conflict.loser_plugin)
        assert not conflict.refused or (loser.origin == THIRD_PARTY and reserved)
    winner = decided.winner
    if reserved and winner and winner.origin == THIRD_PARTY:
        assert winner.distribution == chosen and decided.override is not None
    else:
        assert decided.override is None
    if winner is None:
        assert reserved and all(c.origin == THIRD_PARTY and c.distribution != chosen for c in made)
    assert decide_owner("n", "provider", made, reserved, chosen) == decided


# -- look-alike distributions -------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["embedify-chroma", "embedify-openai2", "embedify-evil"])
def test_a_distribution_named_like_ours_cannot_take_openai(
    distribution: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        distribution,
        provides(f"register('openai', {FAKE}, default_model='3', aliases=['local', 'hf'])"),
        entry_point="aaa-first",  # loads before embedify-openai
    )
    registry, messages = loaded(tmp_path, monkeypatch)
    for name in ("openai", "local", "hf"):
        assert registry.resolve(name)[0].distribution != distribution
    assert registry.resolve("openai")[0].distribution == "embedify-openai"
    refusals = [m for m in messages if distribution in m and "reserved for" in m]
    assert len(refusals) == 3 and all("refused" in m for m in refusals), messages


def test_an_exact_look_alike_whose_code_lives_elsewhere_is_not_first_party(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """embedify-llamaindex is ours, but not installed here: a distribution with its exact name
    whose provider class lives in another module is a third party, and refused."""
    install(
        tmp_path,
        "embedify-llamaindex",
        provides(f"register('llamaindex', {FAKE}, default_model='3')"),
        entry_point="llamaindex",
    )
    registry, messages = loaded(tmp_path, monkeypatch)
    with pytest.raises(UnknownModelError, match=r"pip install \./plugins/llamaindex"):
        registry.resolve("llamaindex")
    assert any("embedify-llamaindex" in m and "refused" in m for m in messages), messages


def test_a_bare_first_party_name_is_refused_even_when_its_owner_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, "evil-dist", provides(f"register('langchain', {FAKE}, default_model='3')"))
    registry, messages = loaded(tmp_path, monkeypatch)
    with pytest.raises(UnknownModelError, match=r"pip install \./plugins/langchain"):
        registry.resolve("langchain")
    (refusal,) = [m for m in messages if "'langchain'" in m]
    assert "evil-dist" in refusal and "EMBEDIFY_PROVIDERS='langchain=evil-dist'" in refusal


LOOK_ALIKES = {
    **dict.fromkeys(["OpenAI", "OPENAI", "open-ai", "openai_", "0penai", "openal"], "openai"),
    "Cohere": "cohere",
    "Azure": "azure",
}


def test_a_name_that_looks_like_a_reserved_one_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'OpenAI' is how the vendor spells it in configs: a third party registering it would
    receive the user's OpenAI key. Case, separators and 0/o, 1/l/i do not make a new name."""
    registrations = [f"register({name!r}, {FAKE}, default_model='3')" for name in LOOK_ALIKES]
    install(tmp_path, "evil-dist", provides("; ".join(registrations)))
    registry, messages = loaded(tmp_path, monkeypatch)
    for name, reserved in LOOK_ALIKES.items():
        with pytest.raises(UnknownModelError, match=f"Did you mean '{reserved}'"):
            registry.resolve(f"{name}:model")
    refusals = [m for m in messages if "evil-dist" in m and "it looks like" in m]
    assert len(refusals) == len(LOOK_ALIKES), messages
    assert "refused the provider 'OpenAI' of" in " ".join(refusals)
    assert "reserved for embedify-openai, whose 'openai' it looks like" in " ".join(refusals)


def test_names_that_only_resemble_a_reserved_one_stay_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, "ok-dist", provides(f"register('openai-compat', {FAKE}, default_model='3')"))
    registry, messages = loaded(tmp_path, monkeypatch)
    assert registry.resolve("openai-compat:m")[0].distribution == "ok-dist"
    assert not [m for m in messages if "ok-dist" in m], messages


@pytest.mark.parametrize("how", ["environment", "config"])
def test_a_first_party_name_can_be_given_to_a_third_party_by_choice_with_a_warning(
    how: str, tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path / "site",
        "my-openai-proxy",
        provides(f"register('openai', {FAKE}, default_model='3')"),
    )
    if how == "environment":
        monkeypatch.setenv("EMBEDIFY_PROVIDERS", "openai=my-openai-proxy")
    else:
        (isolated_home / "config").mkdir()
        (isolated_home / "config" / "config.json").write_text(
            json.dumps({"providers": {"openai": "my-openai-proxy"}})
        )
    registry, messages = loaded(tmp_path / "site", monkeypatch)
    provider, model_id = registry.resolve("openai")
    assert provider.distribution == "my-openai-proxy" and model_id == "3"
    (notice,) = [m for m in messages if "'openai'" in m]
    assert "my-openai-proxy" in notice and "embedify-openai" in notice and "chose" in notice


def test_an_entry_point_named_like_the_core_gets_no_privilege(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime and built-in ranks belong to the core's own registrations, not to whatever
    plugin names itself ``__runtime__`` or ``embedify.fake``."""
    for index, name in enumerate(["__runtime__", "embedify.fake"]):
        install(
            tmp_path,
            f"sneaky-{index}",
            provides(f"register('openai', {FAKE}, default_model='3')"),
            entry_point=name,
        )
    registry, messages = loaded(tmp_path, monkeypatch)
    assert registry.resolve("openai")[0].distribution == "embedify-openai"
    assert registry.plugins["embedify.fake"].distribution == "embedify"
    assert registry.resolve("fake")[0].plugin == "embedify.fake"
    for index in range(2):
        assert any(f"sneaky-{index}" in m for m in messages), messages


def test_two_third_parties_with_one_new_name_are_deterministic_and_both_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same entry-point name in both, and the later one on sys.path sorts first by name.
    install(
        tmp_path / "one",
        "zeta-vectors",
        provides(f"register('vec', {FAKE}, default_model='1')"),
        entry_point="vec",
    )
    install(
        tmp_path / "two",
        "alpha-vectors",
        provides(f"register('vec', {FAKE}, default_model='2')"),
        entry_point="vec",
    )
    monkeypatch.syspath_prepend(str(tmp_path / "two"))
    registry, messages = loaded(tmp_path / "one", monkeypatch)
    assert registry.resolve("vec") == (registry.providers["vec"], "2")
    assert registry.providers["vec"].distribution == "alpha-vectors"
    assert any("alpha-vectors" in m and "zeta-vectors" in m for m in messages), messages
    assert registry.plugins["vec"].distribution == "alpha-vectors"


def test_a_model_alias_cannot_take_a_first_party_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        "evil-aliases",
        provides(
            f"register('evil', {FAKE}, default_model='3')",
            "register.alias('openai', 'evil:3')",
            "register.alias('local', 'evil:3')",
            "register.alias('langchain:x', 'evil:3')",
            "register.alias('all-minilm-l6-v2', 'evil:3')",
            "register.alias('openai:big', 'openai:text-embedding-3-large')",  # stays: allowed
        ),
    )
    registry, messages = loaded(tmp_path, monkeypatch)
    assert registry.resolve("openai")[0].name == "openai"
    assert registry.resolve("local")[0].name == "local"
    with pytest.raises(UnknownModelError):
        registry.resolve("langchain:x")
    assert registry.resolve("all-minilm-l6-v2")[0].name == "local"
    assert registry.resolve("openai:big") == (
        registry.providers["openai"],
        "text-embedding-3-large",
    )
    for name in ("openai", "local", "langchain:x", "all-minilm-l6-v2"):
        assert any(f"{name!r}" in m and "evil-aliases" in m for m in messages), (name, messages)


# -- hostile registrations ------------------------------------------------------------------------


BAD_REGISTRATIONS = {
    "not a class": "register('num', 42)",
    "a function": "register('func', len)",
    "no class in the path": "register('path', 'embedify.fake')",
    "an empty name": f"register('', {FAKE})",
    "a blank name": f"register('  ', {FAKE})",
    "a colon in the name": f"register('a:b', {FAKE})",
    "a name that is not text": f"register(7, {FAKE})",
    "a bad provider alias": f"register('aliased', {FAKE}, aliases=[' '])",
    "models as one string": f"register('models', {FAKE}, models='abc')",
    "a blank model alias": "register.alias(' ', 'fake:8')",
    "an alias to nothing": "register.alias('nowhere', '')",
}


def test_bad_registrations_are_refused_one_by_one_with_the_distribution_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        "sloppy-plugin",
        provides(*BAD_REGISTRATIONS.values(), f"register('fine', {FAKE}, default_model='5')"),
    )
    install(tmp_path, "other-plugin", provides(f"register('other', {FAKE}, default_model='6')"))
    registry, messages = loaded(tmp_path, monkeypatch)
    assert registry.resolve("fine")[1] == "5" and registry.resolve("other")[1] == "6"
    rejected = [m for m in messages if "sloppy-plugin" in m]
    assert len(rejected) == len(BAD_REGISTRATIONS), "\n".join(messages)
    names = {"num", "func", "path", "", "  ", "a:b", "aliased", " ", "models", "nowhere"}
    assert not names & {*registry.provider_names, *registry.aliases}
    assert len(registry.plugins["sloppy-plugin"].problems) == len(BAD_REGISTRATIONS)
    assert registry.plugins["sloppy-plugin"].error is None


def test_a_factory_path_to_something_else_fails_when_built_naming_the_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, "wrong-path", provides("register('wrong', 'json:dumps', default_model='x')"))
    registry, _ = loaded(tmp_path, monkeypatch)
    provider, _ = registry.resolve("wrong")
    with pytest.raises(
        ConfigurationError, match=r"json:dumps is not an EmbeddingModel.*wrong-path"
    ):
        provider.model_class()


def test_a_bad_runtime_registration_is_an_error_naming_it() -> None:
    import embedify

    with pytest.raises(ConfigurationError, match=r"provider 'my model'.*not a usable name"):
        embedify.register_model("my model", embedify.EmbeddingModel)
    with pytest.raises(ConfigurationError, match="not an EmbeddingModel subclass"):
        embedify.register_model("mine", dict)  # type: ignore[arg-type]


# -- commands -------------------------------------------------------------------------------------


def commands(*names: str) -> str:
    lines = ["import click", "", "@hookimpl", "def register_commands(cli):"]
    for name in names:
        lines += [
            f"    @cli.command({name!r})",
            f"    def command_{name.replace('-', '_')}(**kwargs):",
            "        click.echo('STOLEN ' + __name__)",
        ]
    return "\n".join(lines) + "\n"


def test_a_plugin_cannot_replace_a_built_in_or_first_party_command(tmp_path: Path) -> None:
    install(tmp_path, "evil-commands", commands("search", "serve", "plugins", "export", "extra"))
    for args in (["serve"], ["export", "--help"], ["--help"]):
        result = embedify_cli(tmp_path, *args)
        assert "STOLEN" not in result.stdout, (args, result.stdout)
        refusals = [line for line in result.stderr.splitlines() if "refused" in line]
        assert len(refusals) == 4 and all("evil-commands" in r for r in refusals), result.stderr
    assert "Semantic search" in embedify_cli(tmp_path, "search", "--help").stdout
    assert "Export models to other runtimes" in embedify_cli(tmp_path, "export", "--help").stdout
    assert embedify_cli(tmp_path, "extra").stdout.startswith("STOLEN")  # a new name is fine
    listing = embedify_cli(tmp_path, "plugins").stdout
    assert "refused command 'serve': reserved for embedify-server" in listing
    assert "refused command 'search': reserved for embedify (built in)" in listing


def test_a_command_can_be_replaced_only_by_choice_and_with_a_warning(tmp_path: Path) -> None:
    install(tmp_path, "my-serve", commands("serve"))
    result = embedify_cli(tmp_path, "serve", EMBEDIFY_COMMANDS="serve=my-serve")
    assert result.stdout.startswith("STOLEN"), result.stderr
    assert "my-serve" in result.stderr and "embedify-server" in result.stderr


def test_a_failing_command_hook_drops_only_its_own_commands(tmp_path: Path) -> None:
    install(
        tmp_path,
        "half-commands",
        commands("half") + "    raise RuntimeError('after adding one')\n",
    )
    install(tmp_path, "good-commands", commands("good"))
    result = embedify_cli(tmp_path, "--help")
    assert result.returncode == 0 and " good" in result.stdout and " half" not in result.stdout
    assert "half-commands" in result.stderr and "after adding one" in result.stderr


def test_a_command_with_an_unusable_name_is_refused_alone(tmp_path: Path) -> None:
    source = commands("kept") + "    cli.add_command(command_kept, 'two words')\n"
    install(tmp_path, "odd-names", source)
    result = embedify_cli(tmp_path, "kept")
    assert result.stdout.startswith("STOLEN"), result.stderr
    assert "refused the command 'two words'" in result.stderr and "odd-names" in result.stderr


def test_plugins_lists_who_provides_each_name(tmp_path: Path) -> None:
    install(
        tmp_path, "evil-dist", provides(f"register('openai', {FAKE})", f"register('own', {FAKE})")
    )
    listing = embedify_cli(tmp_path, "plugins").stdout
    assert "provider openai: openai (embedify-openai), first-party" in listing
    assert "provider own: evil-dist, third party" in listing
    assert "provider fake: embedify.fake (embedify), built in" in listing
    assert "command search: embedify, built in" in listing
    assert "command export: huggingface (embedify-huggingface), first-party" in listing
    assert "refused provider 'openai': reserved for embedify-openai" in listing

"""Plugin loading, failure isolation and the name grammar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import embedify
from embedify.errors import ConfigurationError, UnknownModelError
from embedify.fake import FakeEmbeddingModel
from embedify.hookspecs import hookimpl
from embedify.registry import Registry


class Plugin:
    """A plugin object registering providers given as (name, kwargs) pairs."""

    def __init__(
        self, *providers: tuple[str, dict[str, Any]], aliases: dict[str, str] | None = None
    ):
        self.providers = providers
        self.aliases = aliases or {}

    @hookimpl
    def register_models(self, register: Any) -> None:
        for name, kwargs in self.providers:
            register(name, kwargs.pop("factory", FakeEmbeddingModel), **kwargs)
        for alias, target in self.aliases.items():
            register.alias(alias, target)


OPENAI_FACTORY = "embedify_openai.model:OpenAIEmbeddingModel"
LOCAL_FACTORY = "embedify_huggingface.model:LocalEmbeddingModel"


def make_registry(*plugins: tuple[str, object, str | None]) -> Registry:
    """A registry holding only the given (name, plugin object, distribution) plugins."""
    registry = Registry()
    registry._loaded = True  # no entry points: only what the test registers
    for name, plugin, distribution in plugins:
        registry._register_plugin(name, lambda p=plugin: p, distribution=distribution)
    registry.load()
    return registry


def test_provider_model_split_at_first_colon() -> None:
    tei = {
        "factory": "embedify_tei.model:TEIEmbeddingModel",
        "default_model": "http://127.0.0.1:8080",
    }
    registry = make_registry(("tei", Plugin(("tei", tei)), "embedify-tei"))
    provider, model_id = registry.resolve("tei:http://10.0.0.1:8080/x")
    assert provider.name == "tei" and model_id == "http://10.0.0.1:8080/x"
    assert registry.resolve("tei")[1] == "http://127.0.0.1:8080"


def test_bare_model_id_resolves_when_one_provider_claims_it() -> None:
    registry = make_registry(
        ("a", Plugin(("alpha", {"models": ["shared", "only-a"]})), None),
        ("b", Plugin(("beta", {"models": ["shared"]})), None),
    )
    assert registry.resolve("only-a")[0].name == "alpha"
    with pytest.raises(UnknownModelError, match="alpha:shared, beta:shared"):
        registry.resolve("shared")


def test_unknown_provider_names_the_package_to_install() -> None:
    registry = make_registry()
    with pytest.raises(UnknownModelError) as error:
        registry.resolve("cohere:embed-english-v3.0")
    # the command that works today, last on the line so that it copies cleanly
    assert str(error.value).endswith(
        "embedify-cohere (not on PyPI yet) from a checkout of the "
        "embedify repository: pip install ./plugins/cohere"
    )
    assert str(error.value).startswith("Provider 'cohere' is not installed.")
    assert "Did you mean" not in str(error.value)  # no guess at another missing name
    with pytest.raises(UnknownModelError) as error:
        registry.resolve("opneai:text-embedding-3-small")
    assert "Did you mean 'openai'" in str(error.value)
    assert str(error.value).endswith("pip install ./plugins/openai")  # the guess, installable


def test_unknown_bare_name_suggests_close_matches() -> None:
    registry = make_registry(("a", Plugin(("alpha", {"models": ["text-embedding-3-small"]})), None))
    with pytest.raises(UnknownModelError, match="text-embedding-3-small"):
        registry.resolve("text-embedding-3-smal")


def test_provider_aliases_and_model_aliases() -> None:
    registry = make_registry(
        (
            "p",
            Plugin(
                (
                    "local",
                    {"factory": LOCAL_FACTORY, "aliases": ["hf"], "default_model": "mini"},
                )
            ),
            "embedify-huggingface",
        ),
        (
            "pack",
            Plugin(aliases={"local:mini": "local:/models/mini", "mini": "local:mini"}),
            "a-third-party-pack",
        ),
    )
    assert registry.resolve("hf:x")[1] == "x"
    assert registry.resolve("local")[1] == "/models/mini"  # default model, then the pack's alias
    assert registry.resolve("mini")[1] == "/models/mini"


def test_user_aliases_and_default_model(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = isolated_home / "config"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps({"default_model": "tiny", "aliases": {"tiny": "fake:8"}})
    )
    assert embedify.get_model().info.dimension == 8
    monkeypatch.setenv("EMBEDIFY_MODEL", "fake:16")
    assert embedify.get_model().info.dimension == 16


def test_options_reach_the_provider() -> None:
    model = embedify.get_model("fake:32", dimensions=8, batch_size=7)
    assert model.options.dimensions == 8 and model.info.output_dimension == 8


def test_a_broken_plugin_is_reported_and_does_not_break_others() -> None:
    class Broken:
        @hookimpl
        def register_models(self, register: Any) -> None:
            raise RuntimeError("boom")

    def failing_import() -> object:
        raise ImportError("No module named 'missing_sdk'")

    with pytest.warns(RuntimeWarning, match="'broken' was not loaded"):
        registry = make_registry(("broken", Broken(), None), ("good", Plugin(("good", {})), None))
    with pytest.warns(RuntimeWarning, match="missing_sdk"):
        registry._register_plugin("unimportable", failing_import)
    assert registry.resolve("good")[0].name == "good"
    assert "RuntimeError: boom" in (registry.plugins["broken"].error or "")
    assert "missing_sdk" in (registry.plugins["unimportable"].error or "")


def test_a_name_stays_with_its_first_registration_and_the_loser_is_reported() -> None:
    with pytest.warns(RuntimeWarning, match="'same' is registered by a and by b; using a's"):
        registry = make_registry(
            ("a", Plugin(("same", {"default_model": "from-a"})), None),
            ("b", Plugin(("same", {"default_model": "from-b"})), None),
        )
    assert registry.resolve("same")[1] == "from-a"
    (conflict,) = registry.conflicts
    assert (conflict.winner, conflict.loser, conflict.reason) == ("a", "b", "registered first")


def test_first_party_names_are_refused_to_a_third_party_unless_the_user_chooses(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def plugins() -> tuple[tuple[str, object, str | None], ...]:  # Plugin pops its kwargs
        real = {"factory": OPENAI_FACTORY, "default_model": "real"}
        return (
            ("aaa-evil", Plugin(("openai", {"default_model": "evil"})), "evil-dist"),
            ("openai", Plugin(("openai", real)), "embedify-openai"),
            ("zzz", Plugin(("fake", {"default_model": "evil"})), "evil-dist"),
        )

    builtin = ("embedify.fake", Plugin(("fake", {"default_model": "8"})), "embedify")
    with pytest.warns(RuntimeWarning) as record:
        registry = make_registry(*plugins(), builtin)
    messages = sorted(str(w.message) for w in record)
    assert "refused the provider 'fake' of zzz (evil-dist): reserved for embedify" in messages[0]
    assert "refused the provider 'openai' of aaa-evil (evil-dist)" in messages[1]
    assert registry.resolve("openai")[1] == "real" and registry.resolve("fake")[1] == "8"
    assert {(c.name, c.loser, c.refused) for c in registry.conflicts} == {
        ("openai", "aaa-evil (evil-dist)", True),
        ("fake", "zzz (evil-dist)", True),
    }
    monkeypatch.setenv("EMBEDIFY_PROVIDERS", "openai=evil-dist")
    with pytest.warns(RuntimeWarning, match="'openai' is provided by aaa-evil \\(evil-dist\\)"):
        assert make_registry(*plugins()[:2]).resolve("openai")[1] == "evil"
    monkeypatch.delenv("EMBEDIFY_PROVIDERS")
    config = isolated_home / "config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"providers": {"same": "b"}}))
    contested = (
        ("a", Plugin(("same", {"default_model": "from-a"})), None),
        ("b", Plugin(("same", {"default_model": "from-b"})), None),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user's choice between third parties: no warning
        assert make_registry(*contested).resolve("same")[1] == "from-b"


def test_a_model_alias_cannot_send_another_distributions_name_elsewhere() -> None:
    with pytest.warns(RuntimeWarning, match="would send 'openai'"):
        registry = make_registry(
            (
                "openai",
                Plugin(("openai", {"factory": OPENAI_FACTORY, "models": ["small"]})),
                "embedify-openai",
            ),
            ("evil", Plugin(("evil", {}), aliases={"openai:small": "evil:x"}), "evil-dist"),
            ("pack", Plugin(aliases={"openai:big": "openai:/weights"}), "a-pack"),
        )
    assert registry.resolve("openai:small")[0].name == "openai"
    assert registry.resolve("openai:big") == (registry.providers["openai"], "/weights")


def test_systemexit_from_a_plugin_is_isolated_but_ctrl_c_is_not() -> None:
    class ExitsInHook:
        @hookimpl
        def register_models(self, register: Any) -> None:
            sys.exit("bye")

    def exits_on_import() -> object:
        raise SystemExit(3)

    with pytest.warns(RuntimeWarning, match="SystemExit"):
        registry = make_registry(
            ("hook", ExitsInHook(), None), ("good", Plugin(("good", {})), None)
        )
        registry._register_plugin("import", exits_on_import)
    assert "SystemExit: bye" in (registry.plugins["hook"].error or "")
    assert registry.plugins["import"].error == "import failed: SystemExit: 3"
    assert registry.resolve("good")[0].name == "good"

    def interrupted() -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry._register_plugin("ctrl-c", interrupted)


@pytest.mark.parametrize("name", ["cohere", "cohere:embed-v4.0", "jina", "azure:my-deployment"])
def test_missing_first_party_providers_name_their_package(name: str) -> None:
    registry = make_registry(("embedify.fake", Plugin(("fake", {})), "embedify"))
    package = {
        "cohere": "embedify-cohere",
        "jina": "embedify-jina",
        "azure": "embedify-azure-openai",
    }
    with pytest.raises(UnknownModelError) as error:
        registry.resolve(name)
    distribution = package[name.partition(":")[0]]
    folder = distribution.removeprefix("embedify-")
    assert f"install {distribution} (not on PyPI yet)" in str(error.value)
    assert str(error.value).endswith(f": pip install ./plugins/{folder}")
    assert "Did you mean" not in str(error.value)  # never suggests what was typed


def test_empty_model_name_is_an_error_not_the_default() -> None:
    with pytest.raises(ConfigurationError, match="'' is not a model name"):
        embedify.get_model("")
    with pytest.raises(ConfigurationError, match="'  ' is not a model name"):
        embedify.get_model("  ")


def test_lazy_factory_imports_only_when_built() -> None:
    lazy = Plugin(("lazy", {"factory": "embedify.fake:FakeEmbeddingModel", "default_model": "8"}))
    registry = make_registry(("p", lazy, None))
    provider, model_id = registry.resolve("lazy")
    assert isinstance(provider.factory, str)
    assert provider.model_class()(model_id).dimension == 8


def test_runtime_registration_without_packaging() -> None:
    class Tiny(FakeEmbeddingModel):
        provider = "tiny"

    embedify.register_model("tiny", Tiny, default_model="4")
    assert embedify.get_model("tiny").embed(["x"]).shape == (1, 4)


def _run(code: str, **env: str) -> str:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_plugin_env_vars_control_autoload() -> None:
    code = (
        "from embedify.registry import registry; registry.load(); print(sorted(registry.providers))"
    )
    assert _run(code, EMBEDIFY_DISABLE_PLUGIN_AUTOLOAD="1") == "['fake']"
    assert _run(code, EMBEDIFY_PLUGINS="acme") == "['acme', 'fake']"


def test_import_and_remote_resolution_import_nothing_heavy() -> None:
    code = (
        "import sys, embedify; before = set(sys.modules); "
        "from embedify.registry import registry; registry.resolve('acme:acme-embed-1'); "
        "heavy = {'torch', 'transformers', 'openai', 'cohere', 'onnxruntime', 'httpx'}; "
        "print(sorted(heavy & set(sys.modules)), 'numpy' in before)"
    )
    assert _run(code) == "[] False"


def test_package_names_load_on_first_read_and_stay() -> None:
    code = (
        "import sys, embedify; light = 'embedify.scoring' not in sys.modules; "
        "first = embedify.top_k; kept = vars(embedify)['top_k'] is first; "
        "from embedify.scoring import top_k\n"
        "try: embedify.get_modle\n"
        "except AttributeError as error: print(light, kept, first is top_k, error)"
    )
    assert _run(code) == ("True True True module 'embedify' has no attribute 'get_modle'")

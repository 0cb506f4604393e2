"""Settings: one source of truth, env overrides, clear errors naming the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from graph.settings import DEFAULT_SETTINGS_FILE, Settings, SettingsError, load_settings


def test_settings_file_matches_code_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shipped settings.toml and the model's defaults must not drift apart."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(empty))
    monkeypatch.delenv("REDIS_URL", raising=False)
    defaults = Settings().model_dump(mode="json")
    shipped = tomllib.loads(DEFAULT_SETTINGS_FILE.read_text())
    for section, values in shipped.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert defaults[section][key] == value, f"{section}.{key}"
        else:
            assert defaults[section] == values, section


README = Path(__file__).resolve().parents[2] / "README.md"


SETTINGS_TABLE = "| key | default | meaning |"


def readme_setting_keys(text: str) -> list[str]:
    """The settings the README's settings tables name, from the first cell of each row:
    ``section.key``, ``section.*``, or a bare ``key`` after them (same section)."""
    keys: list[str] = []
    in_table = False
    for line in text.splitlines():
        if line.startswith(SETTINGS_TABLE):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
        if not in_table or not line.startswith("| `"):
            continue
        section = ""
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if not re.fullmatch(r"[a-z_]+(\.[a-z_*]+)?", name):  # ASSISTANT_DATA_DIR, REDIS_URL
                continue
            if "." in name:
                section, _, key = name.partition(".")
            elif not section:
                continue
            else:
                key = name
            keys.append(f"{section}.{key}")
    return keys


def test_every_setting_the_readme_names_exists() -> None:
    """A renamed or removed setting must not live on in the README's tables."""
    defaults = Settings.model_fields
    keys = readme_setting_keys(README.read_text())
    assert len(keys) > 40  # the tables were found
    for key in keys:
        section, _, name = key.partition(".")
        assert section in defaults, f"README names an unknown section: {key}"
        fields = defaults[section].annotation.model_fields  # type: ignore[union-attr]
        assert name == "*" or name in fields, f"README names an unknown setting: {key}"


def test_readme_keys_are_read_per_row() -> None:
    row = (
        f"{SETTINGS_TABLE}\n| --- | --- | --- |\n"
        "| `retrieval.enabled`, `k`, `min_score` | true | x |\n| `safety.*` | x | y |\n\n"
        "| `none` (or `memory.enabled = false`) | not a settings table |"
    )
    assert readme_setting_keys(row) == [
        "retrieval.enabled",
        "retrieval.k",
        "retrieval.min_score",
        "safety.*",
    ]


def test_nested_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_SAFETY__SENSITIVITY_LEVEL", "strict")
    monkeypatch.setenv("ASSISTANT_CONTEXT__MAX_HISTORY_TURNS", "3")
    settings = load_settings()
    assert settings.safety.sensitivity_level == "strict"
    assert settings.context.max_history_turns == 3
    # the rest of the section still comes from the file
    assert settings.safety.refusal_template.startswith("Sorry")


def test_redis_url_and_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:pw@example:6380/2")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.memory.redis_url == "redis://:pw@example:6380/2"
    assert settings.data_dir == tmp_path
    assert settings.cache_dir == tmp_path / "cache"


def test_dotenv_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ASSISTANT_GENERATION__TEMPERATURE=0.7\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().generation.temperature == 0.7


def test_dotenv_may_hold_other_tools_keys_and_redis_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "LANGSMITH_API_KEY=abc\nREDIS_URL=redis://dotenv:6379/1\nASSISTANT_LOG_LEVEL=INFO\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = load_settings()
    assert settings.memory.redis_url == "redis://dotenv:6379/1"
    assert settings.log_level == "INFO"
    monkeypatch.setenv("REDIS_URL", "redis://environment:6379/0")
    assert load_settings().memory.redis_url == "redis://environment:6379/0"


def test_typo_in_dotenv_is_still_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ASSISTANT_LOG_LEVL=INFO\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="log_levl"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "value", "key"),
    [
        ("ASSISTANT_SAFETY__SENSITIVITY_LEVEL", "extreme", "safety.sensitivity_level"),
        ("ASSISTANT_MODEL__BACKEND", "gpt5", "model.backend"),
        ("ASSISTANT_GENERATION__TEMPERATURE", "hot", "generation.temperature"),
        ("ASSISTANT_CONTEXT__MAX_PROMPT_TOKENS", "-5", "context.max_prompt_tokens"),
        ("ASSISTANT_MEMORY__BACKEND", "floppy", "memory.backend"),
    ],
)
def test_invalid_value_names_the_key(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, key: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        load_settings()


def test_unknown_key_in_settings_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text("[safety]\nsensitivty_level = 'strict'\n")
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(bad))
    with pytest.raises(SettingsError, match="sensitivty_level"):
        load_settings()


def test_corrupt_settings_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text("[safety\n")
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(bad))
    with pytest.raises(SettingsError, match="Cannot read settings") as info:
        load_settings()
    assert f"{bad} is not valid TOML" in str(info.value)  # which file


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ASSISTANT_SAFETY__STRICT_TERMS", "foo"),
        ("ASSISTANT_API__KEYS", "[unclosed"),
        ("ASSISTANT_SAFETY__REFUSE__STRICT", "{}x"),
    ],
)
def test_an_environment_value_that_is_not_json_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match="must be JSON") as info:
        load_settings()
    assert variable in str(info.value)


def test_budget_must_fit_context_window() -> None:
    with pytest.raises(SettingsError, match="n_ctx"):
        load_settings(model={"n_ctx": 1024}, context={"max_prompt_tokens": 1000})


@pytest.mark.parametrize(
    "template",
    [
        "no {user}",
        "",
        "   ",
        "{reason.__class__}",
        "{reason[0]}",
        "{level.upper}",
        "{0}",
        "{}",
        "{reason",
        "[{reason:>300}]",
        "{reason:>100000000}",
        "{level!r}",
        "{reason!s:^9}",
    ],
)
def test_refusal_template_placeholders_are_checked(template: str) -> None:
    with pytest.raises(SettingsError, match="refusal_template"):
        load_settings(safety={"refusal_template": template})


@pytest.mark.parametrize(
    "template", ["No.", "Refused ({reason}) at {level}.", "{{braces}} kept: {reason}", "{level}"]
)
def test_a_plain_refusal_template_is_accepted(template: str) -> None:
    assert load_settings(safety={"refusal_template": template}).safety.refusal_template == template


@pytest.mark.parametrize(
    ("overrides", "key", "secret"),
    [
        (
            {"telegram": {"webhook_secret": "not allowed here!"}},
            "telegram.webhook_secret",
            "not allowed here!",
        ),
        ({"api": {"keys": "sk-plain-string"}}, "api.keys", "sk-plain-string"),
        ({"api": {"keys": ["sk-ok", 42]}}, "api.keys.1", "42"),
    ],
)
def test_a_bad_secret_is_named_but_never_shown(
    overrides: dict[str, object], key: str, secret: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert key in str(info.value)
    assert secret not in str(info.value)


def test_a_bad_ordinary_value_is_still_shown() -> None:
    with pytest.raises(SettingsError, match=r"safety\.sensitivity_level.*got 'extreme'"):
        load_settings(safety={"sensitivity_level": "extreme"})


@pytest.mark.parametrize(
    ("env", "meant"),
    [
        ("ASSISTANT_SAFETY_LEVEL", "ASSISTANT_SAFETY__SENSITIVITY_LEVEL"),
        ("ASSISTANT_MODEL_BACKEND", "ASSISTANT_MODEL__BACKEND"),
        ("ASSISTANT_GENERATION_TEMPRATURE", "ASSISTANT_GENERATION__TEMPERATURE"),
        ("ASSISTANT_MODLE__BACKEND", "ASSISTANT_MODEL__BACKEND"),
        ("ASSISTANT_LONGTERM__ENABLED", "ASSISTANT_LONG_TERM__ENABLED"),
        ("ASSISTANT_LOGLEVEL", "ASSISTANT_LOG_LEVEL"),
        ("ASSISTANT_API_KEYS", "ASSISTANT_API__KEYS"),
        # Not near a section's name: these were silently ignored.
        ("ASSISTANT_SENSITIVITY_LEVEL", "ASSISTANT_SAFETY__SENSITIVITY_LEVEL"),
        ("ASSISTANT_SAFTEY_LEVEL", "ASSISTANT_SAFETY__SENSITIVITY_LEVEL"),
        ("ASSISTANT_REDIS_URL", "ASSISTANT_MEMORY__REDIS_URL"),
        ("ASSISTANT_MAX_NEW_TOKENS", "ASSISTANT_GENERATION__MAX_NEW_TOKENS"),
        ("ASSISTANT_MODEL__BACKND", "ASSISTANT_MODEL__BACKEND"),
        ("ASSISTANT_LONG_TERM_USER_ID", "ASSISTANT_LONG_TERM__USER_ID"),
    ],
)
def test_a_misnamed_variable_is_an_error_that_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, meant: str
) -> None:
    # pydantic-settings alone ignores these: the setting would keep its default silently.
    monkeypatch.setenv(env, "1")
    with pytest.raises(SettingsError, match=f"{env} is not a setting: did you mean {meant}\\?"):
        load_settings()


@pytest.mark.parametrize("env", ["ASSISTANT_BACKEND", "ASSISTANT_XYZZY", "assistant_colour"])
def test_any_assistant_variable_that_sets_nothing_is_an_error(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv(env, "1")
    with pytest.raises(SettingsError, match=f"{env} is not a setting"):
        load_settings()


@pytest.mark.parametrize(
    "env",
    [
        "ASSISTANT_MODEL_PARTS_INDEX",
        "ASSISTANT_IMAGE",
        "ASSISTANT_CONTAINER_TESTS",
        "ASSISTANT_DATA_DIR",
    ],
)
def test_other_assistant_variables_are_not_settings_and_stay_allowed(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv(env, "x")
    assert load_settings().model.backend  # read without complaint


def test_a_dotenv_value_that_is_not_json_names_the_variable_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("ASSISTANT_API__KEYS=abc\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=r"ASSISTANT_API__KEYS in \.env: .*must be JSON"):
        load_settings()


@pytest.mark.parametrize("which", ["dotenv", "settings_file"])
def test_a_file_that_is_not_utf8_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, which: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = b'log_level = "INFO"\n\xff\xfe\n'
    if which == "dotenv":
        (tmp_path / ".env").write_bytes(b"\xff\xfeASSISTANT_LOG_LEVEL=INFO\n")
        named = ".env"
    else:
        (tmp_path / "mine.toml").write_bytes(bad)
        monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(tmp_path / "mine.toml"))
        named = "mine.toml"
    with pytest.raises(SettingsError, match=rf"{re.escape(named)} is not UTF-8 text"):
        load_settings()


@pytest.mark.parametrize(
    "name", ["no such!", "ab", "a..b", "-dash", "dot.", "x" * 64, "ünï", "127.0.0.1", "10.1.2.3"]
)
def test_a_collection_chroma_would_refuse_is_refused_in_settings_and_in_a_runs_context(
    name: str,
) -> None:
    from pydantic import ValidationError

    from graph.context import Context

    with pytest.raises(ValidationError, match="bad collection name"):
        Context(collection=name)  # the dev server's runs: an error, not a turn without documents
    with pytest.raises(SettingsError, match="bad collection name"):
        load_settings(chroma={"collection": name})


@pytest.mark.parametrize("name", ["default", "user-ada-1f2e", "a.b_c-d", "x" * 63])
def test_a_valid_collection_is_kept(name: str) -> None:
    from graph.context import Context

    assert Context(collection=name).collection == name
    assert load_settings(chroma={"collection": name}).chroma.collection == name


@pytest.mark.parametrize(
    ("admins", "named"),
    [
        (["@alice"], ["entry 0 ('@alice')"]),
        (["U012AB3CDE", "slack:T1:U123", ""], ["entry 1 ('slack:T1:U123')", "entry 2 ('')"]),
        (["u012ab3cde"], ["entry 0 ('u012ab3cde')"]),  # ids are capitals
        (["T012AB3CDE"], ["entry 0 ('T012AB3CDE')"]),  # a team id, not a user's
        ([" U012AB3CDE"], ["entry 0 (' U012AB3CDE')"]),
    ],
)
def test_slack_admins_must_be_slack_user_ids(admins: list[str], named: list[str]) -> None:
    with pytest.raises(SettingsError, match=r"slack\.admins") as info:
        load_settings(slack={"admins": admins})
    for entry in named:
        assert entry in str(info.value)
    assert "U012AB3CDE, " not in str(info.value).split("got")[0]  # a good one is not blamed


@pytest.mark.parametrize("admins", [[], ["U012AB3CDE"], ["W0123ABC", "U1"]])
def test_slack_user_ids_are_admins(admins: list[str]) -> None:
    assert load_settings(slack={"admins": admins}).slack.admins == admins


@pytest.mark.parametrize(
    ("env", "value", "name"),
    [
        ("ASSISTANT_API__KEYS__0", "0123456789abcdef0123", "ASSISTANT_API__KEYS"),
        ("ASSISTANT_SLACK__ADMINS__0", "U012AB3CDE", "ASSISTANT_SLACK__ADMINS"),
        ("ASSISTANT_SAFETY__WHITELIST__1", "cake", "ASSISTANT_SAFETY__WHITELIST"),
    ],
)
def test_a_list_set_item_by_item_says_to_set_it_as_json(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, name: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert f"{name}='[" in message and "JSON" in message and f"{name}__0=" in message
    assert value not in message or "KEYS" not in name  # a key is never shown


def test_a_wrong_scalar_gets_no_list_hint() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(api={"queue_size": "many"})
    assert "JSON" not in str(info.value)


@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_a_blank_long_term_user_is_the_login_name_from_every_source(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    login = load_settings().long_term.user_id
    assert login.strip() == login and login
    assert load_settings(long_term={"user_id": blank}).long_term.user_id == login
    monkeypatch.setenv("ASSISTANT_LONG_TERM__USER_ID", blank)
    assert load_settings().long_term.user_id == login


def test_a_long_term_user_keeps_no_surrounding_spaces() -> None:
    assert load_settings(long_term={"user_id": " ana "}).long_term.user_id == "ana"


@pytest.mark.parametrize(
    ("user", "anonymous"), [("api", "api"), (" api", "api"), ("guest", "guest")]
)
def test_the_machine_user_cannot_be_the_anonymous_api_user(user: str, anonymous: str) -> None:
    with pytest.raises(SettingsError, match=r"long_term\.user_id .* is api\.anonymous_user"):
        load_settings(long_term={"user_id": user}, api={"anonymous_user": anonymous})


def test_other_machine_users_stay_allowed() -> None:
    assert load_settings(long_term={"user_id": "apis"}).long_term.user_id == "apis"


# A variable below a setting that takes one value (newcomer probe, 2026-11-30): pydantic
# read ASSISTANT_MODEL__N_CTX__X as a table for n_ctx ("Input should be a valid integer",
# no variable named) or, with ASSISTANT_MODEL__BACKEND set too, dropped
# ASSISTANT_MODEL__BACKEND__X without a word.
@pytest.mark.parametrize(
    ("env", "also", "meant"),
    [
        ("ASSISTANT_MODEL__BACKEND__X", {"ASSISTANT_MODEL__BACKEND": "fake"}, "MODEL__BACKEND"),
        ("ASSISTANT_MODEL__BACKEND__X", {}, "MODEL__BACKEND"),
        ("ASSISTANT_MODEL__N_CTX__X", {}, "MODEL__N_CTX"),
        ("ASSISTANT_MODEL__N_CTX__X__Y", {"ASSISTANT_MODEL__N_CTX": "8192"}, "MODEL__N_CTX"),
        ("ASSISTANT_LOG_LEVEL__X", {"ASSISTANT_LOG_LEVEL": "INFO"}, "LOG_LEVEL"),
        ("ASSISTANT_SAFETY__SENSITIVITY_LEVEL__X", {}, "SAFETY__SENSITIVITY_LEVEL"),
        ("ASSISTANT_API__ANONYMOUS_USER__NAME", {}, "API__ANONYMOUS_USER"),
    ],
)
def test_a_variable_below_a_one_value_setting_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, also: dict[str, str], meant: str
) -> None:
    monkeypatch.setenv(env, "1")
    for name, value in also.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{env} is not a setting: .* ASSISTANT_{meant}\\?"):
        load_settings()


def test_a_list_item_next_to_the_whole_list_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The item was dropped without a word when the whole list was set too.
    monkeypatch.setenv("ASSISTANT_SLACK__ADMINS", '["U012AB3CDE"]')
    monkeypatch.setenv("ASSISTANT_SLACK__ADMINS__1", "U999")
    with pytest.raises(SettingsError, match=r"ASSISTANT_SLACK__ADMINS__1 is not read: .*JSON"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "value"),
    [
        # keys of sections, deeper: what they always did
        ("ASSISTANT_SAFETY__REFUSE__STRICT", '["x"]'),
        ("ASSISTANT_MODEL__BACKEND", "fake"),
        ("ASSISTANT_MODEL__N_CTX", "8192"),
    ],
)
def test_keys_of_sections_are_still_read(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    load_settings()


def test_an_unknown_key_of_a_nested_section_is_still_named() -> None:
    with pytest.raises(SettingsError, match=r"safety\.refuse\.bogus"):
        load_settings(safety={"refuse": {"bogus": 1}})


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_a_blank_anonymous_user_is_an_error(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    with pytest.raises(SettingsError, match=r"api\.anonymous_user: .*blank"):
        load_settings(api={"anonymous_user": blank})
    monkeypatch.setenv("ASSISTANT_API__ANONYMOUS_USER", blank)
    with pytest.raises(SettingsError, match=r"api\.anonymous_user: .*blank"):
        load_settings()


@pytest.mark.parametrize("anonymous", [" bob ", "bob ", "\tbob"])
def test_the_anonymous_user_is_stripped_as_every_user_name_is(anonymous: str) -> None:
    assert load_settings(api={"anonymous_user": anonymous}).api.anonymous_user == "bob"
    key = {"key": "0123456789abcdef0123", "user": "bob"}
    with pytest.raises(SettingsError, match="key 0 is bound to 'bob'"):
        load_settings(api={"anonymous_user": anonymous, "keys": [key]})
    with pytest.raises(SettingsError, match=r"long_term\.user_id 'bob' is api\.anonymous_user"):
        load_settings(api={"anonymous_user": anonymous}, long_term={"user_id": "bob"})


def test_a_key_bound_to_another_name_than_the_anonymous_user_stays_allowed() -> None:
    key = {"key": "0123456789abcdef0123", "user": "bobby"}
    settings = load_settings(api={"anonymous_user": " bob ", "keys": [key]})
    assert settings.api.keys[0].user == "bobby"


PATH_VARIABLES = {
    "ASSISTANT_DATA_DIR": "data_dir",
    "ASSISTANT_CHROMA__PATH": "chroma.path",
    "ASSISTANT_MEMORY__SQLITE_PATH": "memory.sqlite_path",
    "ASSISTANT_LONG_TERM__STORE_PATH": "long_term.store_path",
    "ASSISTANT_MODEL__GGUF_PATH": "model.gguf_path",
    "ASSISTANT_MODEL__HF_MODEL_DIR": "model.hf_model_dir",
    "ASSISTANT_MODEL__LORA_PATH": "model.lora_path",
    "ASSISTANT_MODEL__TOKENIZER": "model.tokenizer",
    "ASSISTANT_PROMPTS__DIRECTORY": "prompts.directory",
    "ASSISTANT_FINETUNE__RUNS_DIR": "finetune.runs_dir",
}


def _value(settings: Settings, key: str) -> object:
    value: object = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("blank", ["", "   "])
@pytest.mark.parametrize("where", ["env", "dotenv", "file"])
@pytest.mark.parametrize("variable", sorted(PATH_VARIABLES))
def test_an_empty_path_setting_is_its_default_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, where: str, blank: str
) -> None:
    key = PATH_VARIABLES[variable]
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(empty))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASSISTANT_DATA_DIR", raising=False)
    default = _value(Settings(), key)
    if where == "env":
        monkeypatch.setenv(variable, blank)
    elif where == "dotenv":
        (tmp_path / ".env").write_text(f'{variable}="{blank}"\n')
    else:
        section, _, name = key.rpartition(".")
        table = f"[{section}]\n" if section else ""
        empty.write_text(f'{table}{name} = "{blank}"\n')
    assert _value(load_settings(), key) == default
    assert default != Path()  # the default is a real place, or None


def test_a_set_path_setting_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSISTANT_CHROMA__PATH", "rel/chroma")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.chroma.path == Path("rel/chroma")
    assert settings.data_dir == tmp_path
    assert load_settings(model={"gguf_path": "."}).model.gguf_path == Path(".")  # said so


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
@pytest.mark.parametrize(
    "variable",
    [
        "ASSISTANT_GENERATION__TEMPERATURE",
        "ASSISTANT_MODEL__TIMEOUT",
        "ASSISTANT_RETRIEVAL__MIN_SCORE",
        "ASSISTANT_MEMORY__TTL_MINUTES",
    ],
)
def test_a_non_finite_number_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    key = variable.removeprefix("ASSISTANT_").lower().replace("__", ".")
    with pytest.raises(SettingsError, match=re.escape(f"{key}: Input should be a finite number")):
        load_settings()


def test_a_non_finite_number_in_the_settings_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("[generation]\ntop_p = nan\n")
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(mine))
    with pytest.raises(SettingsError, match=r"generation\.top_p: Input should be a finite number"):
        load_settings()
    mine.write_text("[generation]\ntop_p = 0.5\n")  # a finite number still loads
    assert load_settings().generation.top_p == 0.5


def test_a_settings_file_that_is_a_directory_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(tmp_path))
    with pytest.raises(
        SettingsError, match=f"is a directory, not a file: {re.escape(str(tmp_path))}"
    ):
        load_settings()
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match="no such file"):
        load_settings()


@pytest.mark.parametrize(
    ("line", "key", "meant"),
    [
        ("ASSISTANT_GENERATION__TEMPRATURE=1", "generation.temprature", "generation.temperature"),
        ("ASSISTANT_MODLE__BACKEND=fake", "modle__backend", "model.backend"),
        ("ASSISTANT_SAFETY_LEVEL=strict", "safety_level", "safety.sensitivity_level"),
        ("ASSISTANT_LOGLEVEL=INFO", "loglevel", "log_level"),
    ],
)
def test_a_typo_in_dotenv_gets_the_suggestion_the_variable_gets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str, key: str, meant: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(line + "\n")
    variable = "ASSISTANT_" + meant.replace(".", "__").upper()
    with pytest.raises(
        SettingsError, match=re.escape(f"{key}: Extra inputs are not permitted")
    ) as raised:
        load_settings()
    assert f"did you mean {meant} ({variable})?" in str(raised.value)
    # The same typo as a variable: the same setting is named.
    (tmp_path / ".env").unlink()
    monkeypatch.setenv(line.split("=")[0], "1")
    with pytest.raises(SettingsError, match=re.escape(f"did you mean {variable}?")):
        load_settings()


@pytest.mark.parametrize(
    ("toml", "key", "meant"),
    [
        ("[generation]\ntemprature = 1\n", "generation.temprature", "generation.temperature"),
        ('[modle]\nbackend = "fake"\n', "modle", "model"),
        ("[safety.refuse]\nstrcit = []\n", "safety.refuse.strcit", "safety.refuse.strict"),
        ('data_dri = "x"\n', "data_dri", "data_dir"),
    ],
)
def test_a_typo_in_the_settings_file_gets_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, toml: str, key: str, meant: str
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(toml)
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(mine))
    with pytest.raises(SettingsError, match=re.escape(key)) as raised:
        load_settings()
    assert f"did you mean {meant} (" in str(raised.value)


def test_a_typo_in_a_list_item_names_no_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('[[api.keys]]\nkey = "abcdefghijklmnopqrstuvwxyz12"\nusr = "ana"\n')
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(mine))
    with pytest.raises(SettingsError, match=re.escape("api.keys.0.usr")) as raised:
        load_settings()
    assert str(raised.value).endswith("did you mean api.keys.0.user?")


def test_an_unknown_key_nothing_is_close_to_gets_no_guess(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("[generation]\nqqqqqqqqqqqq = 1\n")
    monkeypatch.setenv("ASSISTANT_SETTINGS_FILE", str(mine))
    with pytest.raises(SettingsError, match=r"generation\.qqqqqqqqqqqq") as raised:
        load_settings()
    assert "did you mean" not in str(raised.value)
    mine.unlink()
    monkeypatch.setenv("ASSISTANT_GENERATION__QQQQQQQQQQQQ", "1")  # the variable: no guess either
    with pytest.raises(
        SettingsError, match=r"ASSISTANT_GENERATION__QQQQQQQQQQQQ is not a setting$"
    ):
        load_settings()


@pytest.mark.parametrize("field", ["temperature", "top_p", "fuzzy_cutoff"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity"])
def test_a_runs_context_refuses_a_number_that_is_not_finite(field: str, value: object) -> None:
    from pydantic import ValidationError

    from graph.context import Context

    # The dev server's and a notebook's runs: "not finite", not a misleading range error.
    with pytest.raises(ValidationError, match="finite number"):
        Context.model_validate({field: value})


@pytest.mark.parametrize("field", ["temperature", "top_p", "fuzzy_cutoff"])
def test_a_runs_context_keeps_a_finite_number(field: str) -> None:
    from graph.context import Context

    assert getattr(Context.model_validate({field: 0.5}), field) == 0.5


@pytest.mark.parametrize(
    ("text", "line", "names"),
    [
        ('ASSISTANT_MODEL__BACKEND="fake\n', 1, ["ASSISTANT_MODEL__BACKEND"]),
        ("A=1\nexport ASSISTANT_LOG_LEVEL='info\n", 2, ["ASSISTANT_LOG_LEVEL"]),
        ("A=1\nB=2\nASSISTANT_MODEL BACKEND=fake\n", 3, ["ASSISTANT_MODEL"]),
        # Another tool's unclosed quote runs on over our lines: they are lost too.
        ('OTHER="x\nassistant_model__backend="fake\nA=1\n', 1, ["assistant_model__backend"]),
    ],
)
def test_a_dotenv_line_that_cannot_be_parsed_is_an_error_not_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, line: int, names: list[str]
) -> None:
    (tmp_path / ".env").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=rf"\.env line {line} cannot be parsed") as caught:
        load_settings()
    message = str(caught.value)
    for name in names:
        assert name in message
    assert "fake" not in message and "info" not in message  # values (secrets) not shown


def test_other_tools_broken_dotenv_lines_are_theirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("ASSISTANT_LOG_LEVEL=INFO\nOTHER_TOOL='x\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().log_level == "INFO"


# --- user names in either Unicode form name one user -----------------------------------

# The same names decomposed (NFD: a base letter and a combining mark) as a macOS file
# name, some keyboards or a paste give them, and composed (NFC) as most input does.
NFD_NAMES = [
    ("Jose\u0301", "Jos\u00e9"),
    ("Zoe\u0308 Smith", "Zo\u00eb Smith"),
    ("ana.mari\u0301a@example.org", "ana.mar\u00eda@example.org"),
    ("Franc\u0327ois", "Fran\u00e7ois"),
    ("\u1100\u1161", "\uac00"),  # Hangul jamo that compose into one syllable
    ("A\u030a" + "se", "\u00c5se"),
]


@pytest.mark.parametrize(("decomposed", "composed"), NFD_NAMES)
def test_a_decomposed_user_name_is_the_composed_one(decomposed: str, composed: str) -> None:
    from graph.context import Context, plain_user_name
    from graph.settings import check_user_name

    assert decomposed != composed  # the two forms differ as strings...
    # ...and every check takes both, keeping the one (composed) form.
    assert check_user_name(decomposed) == check_user_name(composed) == composed
    assert plain_user_name(f" {decomposed} ") == composed
    assert Context(user_id=decomposed).user_id == composed


@pytest.mark.parametrize(("decomposed", "composed"), NFD_NAMES)
def test_every_front_end_takes_a_decomposed_user_name_as_the_composed_one(
    decomposed: str, composed: str
) -> None:
    from apps.cli.main import _check_user
    from apps.ui.service import check_user

    assert _check_user(decomposed) == check_user(decomposed) == composed


@pytest.mark.parametrize(("decomposed", "composed"), NFD_NAMES)
def test_user_names_in_settings_are_composed(decomposed: str, composed: str) -> None:
    key = {"key": "0123456789abcdef0123", "user": decomposed}
    settings = load_settings(long_term={"user_id": decomposed}, api={"keys": [key]})
    assert settings.long_term.user_id == composed
    assert settings.api.keys[0].user == composed
    assert load_settings(api={"anonymous_user": decomposed}).api.anonymous_user == composed
    # A key bound to the anonymous name in the other form is still the anonymous user.
    with pytest.raises(SettingsError, match="key 0 is bound to"):
        load_settings(api={"anonymous_user": composed, "keys": [key]})
    with pytest.raises(SettingsError, match=r"long_term\.user_id .* is api\.anonymous_user"):
        load_settings(api={"anonymous_user": composed}, long_term={"user_id": decomposed})


@pytest.mark.parametrize("name", ["root\u200b", "e\u0301:x", "\u0301abc", "e\u0301" * 65])
def test_composing_a_user_name_does_not_loosen_the_rule(name: str) -> None:
    from graph.settings import check_user_name

    # A combining mark that composes with nothing stays a mark, not a letter first; 65
    # composed letters are still one too many.
    with pytest.raises(ValueError, match="1 to 64"):
        check_user_name(name)


def test_the_length_limit_counts_composed_letters() -> None:
    from graph.settings import check_user_name

    # 64 letters, each typed as e + a combining accent (128 code points), is 64 letters.
    assert check_user_name("e\u0301" * 64) == "\u00e9" * 64

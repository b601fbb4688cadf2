"""The settings tree: config.example.toml, TOML and IDP_<SECTION>_<KEY> overrides."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from idp import config
from idp.config import SessionSettings, Settings
from idp.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
SECTION_CLASSES: dict[str, Any] = {name: get_type_hints(Settings)[name] for name in config.SECTIONS}
KEY_LINE = re.compile(r"# ([a-z_]+) = (.*)")
SECTION_LINE = re.compile(r"\[([a-z_]+)\]")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "idp.toml"
    path.write_text(text)
    return path


def documented_keys(text: str) -> dict[str, set[str]]:
    """The ``# key = default`` lines of each ``[section]``."""
    found: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        if header := SECTION_LINE.fullmatch(line):
            section = header[1]
            found[section] = set()
        elif key := KEY_LINE.fullmatch(line):
            found[section].add(key[1])
    return found


def fields_with_defaults(settings: Settings) -> dict[str, Any]:
    """Every ``section.key`` whose default is a value (not None: TOML has no null)."""
    values = {}
    for section, cls in SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            if f.default is not None:
                values[f"{section}.{f.name}"] = getattr(getattr(settings, section), f.name)
    return values


def config_error(path: Path | None, environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, environ)
    return str(excinfo.value)


# --- config.example.toml ---------------------------------------------------------


def test_example_file_loads_to_the_defaults() -> None:
    settings = config.load(EXAMPLE, {})

    assert settings == dataclasses.replace(Settings(), embedded_defaults=False)


def test_example_file_documents_every_field_of_every_section() -> None:
    documented = documented_keys(EXAMPLE.read_text())

    assert documented == {
        section: {f.name for f in dataclasses.fields(cls)}
        for section, cls in SECTION_CLASSES.items()
    }


def test_example_file_explains_every_key_in_a_comment_above_it() -> None:
    lines = EXAMPLE.read_text().splitlines()

    unexplained = [
        line
        for before, line in itertools.pairwise(lines)
        if KEY_LINE.fullmatch(line)
        and not (before.startswith("# ") and not KEY_LINE.fullmatch(before))
    ]

    assert unexplained == []


def test_example_file_shows_each_key_at_its_default(tmp_path: Path) -> None:
    uncommented = KEY_LINE.sub(r"\1 = \2", EXAMPLE.read_text())

    settings = config.load(write(tmp_path, uncommented), {})

    assert fields_with_defaults(settings) == fields_with_defaults(Settings())


def test_example_file_names_the_environment_variable_pattern() -> None:
    assert "IDP_<SECTION>_<KEY>" in EXAMPLE.read_text()


def test_example_file_says_private_logout_uris_default_to_a_loopback_issuer() -> None:
    text = EXAMPLE.read_text()
    logout = text[text.index("[logout]") :]

    assert "Unset (the default): true when the issuer's host is loopback" in logout


# --- where settings come from ------------------------------------------------------


def test_no_file_gives_the_embedded_defaults() -> None:
    assert config.load(None, {}) == Settings()


def test_idp_config_names_the_file_when_no_path_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "[session]\nidle_minutes = 45\n")

    settings = config.load(None, {"IDP_CONFIG": str(path)})

    assert settings.session.idle_minutes == 45
    assert settings.embedded_defaults is False


def test_valid_env_override_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[session]\nidle_minutes = 45\n")

    settings = config.load(path, {"IDP_SESSION_IDLE_MINUTES": "60"})

    assert settings.session.idle_minutes == 60


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("false", False), ("1", True), ("0", False)]
)
def test_env_bool_accepts_true_false_1_0(raw: str, expected: bool) -> None:
    settings = config.load(None, {"IDP_RATELIMIT_ENABLED": raw})

    assert settings.ratelimit.enabled is expected


def test_env_bool_other_words_fail_naming_the_key() -> None:
    message = config_error(None, {"IDP_RATELIMIT_ENABLED": "maybe"})

    assert "ratelimit.enabled" in message
    assert "IDP_RATELIMIT_ENABLED" in message
    assert "expected true or false" in message


def test_env_list_is_comma_separated() -> None:
    settings = config.load(None, {"IDP_PASSKEYS_ORIGINS": "https://a.example, https://b.example"})

    assert settings.passkeys.origins == ("https://a.example", "https://b.example")


def test_env_variables_reserved_for_the_test_suite_are_left_alone() -> None:
    settings = config.load(None, {"IDP_TEST_DATABASE": "sqlite", "PATH": "/bin"})

    assert settings == Settings()


@pytest.mark.parametrize("name", ["IDP_PORT", "IDP_SERVICE_HOST", "IDP_BIN"])
def test_env_variable_naming_no_section_is_not_a_setting(name: str) -> None:
    # Kubernetes injects IDP_PORT and IDP_SERVICE_HOST for a Service named idp.
    settings = config.load(None, {name: "tcp://10.0.0.1:5000"})

    assert settings == Settings()


def test_a_setting_from_the_environment_makes_a_deployment_without_the_demo() -> None:
    settings = config.load(None, {"IDP_DATABASE_URL": "postgresql+psycopg://db/idp"})

    assert settings.embedded_defaults is False


def test_the_test_clock_file_comes_only_from_its_test_variable() -> None:
    settings = config.load(None, {"IDP_TEST_CLOCK_FILE": "var/clock"})

    assert settings.test_clock_file == "var/clock"
    assert settings.embedded_defaults is True


# --- mistakes stop start-up, naming the key ----------------------------------------


def test_missing_file_fails_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    message = config_error(path, {})

    assert message == f"configuration file {path} does not exist"


def test_invalid_toml_fails_naming_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, "[session\nidle_minutes = 45\n")

    message = config_error(path, {})

    assert message.startswith(f"configuration file {path} is not valid TOML: ")


def test_unknown_key_in_file_fails_naming_section_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[session]\nidle_minute = 45\n")

    message = config_error(path, {})

    assert message.startswith(f"unknown key session.idle_minute in {path}; ")
    assert "[session] takes: idle_minutes, remember_days, remember_max_days" in message


def test_unknown_section_in_file_fails_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[sesion]\nidle_minutes = 45\n")

    message = config_error(path, {})

    assert message.startswith(f"unknown section or key 'sesion' in {path}; sections are: ")


def test_section_that_is_not_a_table_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "session = 30\n")

    message = config_error(path, {})

    assert message == f"[session] in {path} must be a table"


def test_wrong_type_in_file_fails_naming_the_key_and_the_type_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, '[session]\nidle_minutes = "ten"\n')

    message = config_error(path, {})

    assert message == f"session.idle_minutes = 'ten' (from {path}): expected an integer"


def test_bool_in_file_is_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "[session]\nidle_minutes = true\n")

    message = config_error(path, {})

    assert message == f"session.idle_minutes = True (from {path}): expected an integer"


def test_string_in_file_is_not_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, '[passkeys]\norigins = "https://a.example"\n')

    message = config_error(path, {})

    assert message == (
        f"passkeys.origins = 'https://a.example' (from {path}): expected a list of strings"
    )


def test_env_override_of_wrong_type_fails_naming_key_and_variable() -> None:
    message = config_error(None, {"IDP_SESSION_IDLE_MINUTES": "ten"})

    assert message.startswith(
        "session.idle_minutes = 'ten' (from IDP_SESSION_IDLE_MINUTES): expected an integer"
    )


def test_unknown_env_variable_in_a_section_fails_naming_it() -> None:
    message = config_error(None, {"IDP_SESSION_FOO": "1"})

    assert message.startswith("unknown setting IDP_SESSION_FOO: ")
    assert "[session] takes idle_minutes, remember_days, remember_max_days" in message


@pytest.mark.parametrize(
    "issuer", ["http://idp.example.com", "http://192.0.2.10:5000", "http://localhost.example"]
)
def test_http_issuer_on_a_non_loopback_host_fails(issuer: str) -> None:
    message = config_error(None, {"IDP_SERVER_ISSUER": issuer})

    assert message == (
        f"server.issuer = {issuer!r}: http is allowed only on a loopback host; use https"
    )


@pytest.mark.parametrize(
    "issuer",
    [
        "http://localhost:5000",
        "http://127.0.0.1:5000",
        "http://[::1]:5000",
        "http://idp.localhost:5000",
    ],
)
def test_http_issuer_on_a_loopback_host_is_accepted(issuer: str) -> None:
    settings = config.load(None, {"IDP_SERVER_ISSUER": issuer})

    assert settings.server.issuer == issuer


def test_https_issuer_is_accepted() -> None:
    settings = config.load(None, {"IDP_SERVER_ISSUER": "https://id.example.com"})

    assert settings.server.issuer == "https://id.example.com"


def test_issuer_with_trailing_slash_fails() -> None:
    message = config_error(None, {"IDP_SERVER_ISSUER": "https://id.example.com/"})

    assert message == (
        "server.issuer = 'https://id.example.com/': expected no query, fragment or trailing slash"
    )


def test_remember_max_days_below_remember_days_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "[session]\nremember_days = 60\nremember_max_days = 30\n")

    message = config_error(path, {})

    assert message == (
        "session.remember_max_days = 30: expected an integer >= session.remember_days (60)"
    )


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_key_algorithm_rs256_or_es256_is_accepted(algorithm: str) -> None:
    settings = config.load(None, {"IDP_KEYS_ALGORITHM": algorithm})

    assert settings.keys.algorithm == algorithm


@pytest.mark.parametrize("algorithm", ["HS256", "PS256", "rs256", "none"])
def test_key_algorithm_other_than_rs256_or_es256_fails(algorithm: str) -> None:
    message = config_error(None, {"IDP_KEYS_ALGORITHM": algorithm})

    assert message == f"keys.algorithm = {algorithm!r}: expected RS256 or ES256"


@pytest.mark.parametrize(
    ("memory_kib", "iterations"),
    [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5), (7168, 12), (4194304, 1)],
)
def test_a_password_hash_at_owasps_least_cost_or_more_is_accepted(
    memory_kib: int, iterations: int
) -> None:
    settings = config.load(
        None,
        {
            "IDP_PASSWORDS_HASH_MEMORY_KIB": str(memory_kib),
            "IDP_PASSWORDS_HASH_ITERATIONS": str(iterations),
        },
    )

    assert (settings.passwords.hash_memory_kib, settings.passwords.hash_iterations) == (
        memory_kib,
        iterations,
    )


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "least"),
    [(47103, 1, 47104), (19455, 2, 19456), (65536, 0, None), (7167, 9, 7168), (-1, 3, 12288)],
)
def test_a_password_hash_cheaper_than_owasps_least_fails_naming_the_least(
    memory_kib: int, iterations: int, least: int | None
) -> None:
    message = config_error(
        None,
        {
            "IDP_PASSWORDS_HASH_MEMORY_KIB": str(memory_kib),
            "IDP_PASSWORDS_HASH_ITERATIONS": str(iterations),
        },
    )

    if least is None:
        assert message == "passwords.hash_iterations = 0: expected an integer >= 1"
    else:
        assert message == (
            f"passwords.hash_memory_kib = {memory_kib}: expected an integer >= {least} with "
            f"hash_iterations = {iterations} (OWASP's least argon2id cost)"
        )


def test_a_password_hash_of_more_than_4_gib_fails() -> None:
    message = config_error(None, {"IDP_PASSWORDS_HASH_MEMORY_KIB": "4194305"})

    assert message == "passwords.hash_memory_kib = 4194305: expected an integer <= 4194304 (4 GiB)"


@pytest.mark.parametrize(("parallelism", "bound"), [("0", ">= 1"), ("65", "<= 64")])
def test_password_hash_lanes_out_of_range_fail(parallelism: str, bound: str) -> None:
    message = config_error(None, {"IDP_PASSWORDS_HASH_PARALLELISM": parallelism})

    assert message == f"passwords.hash_parallelism = {parallelism}: expected an integer {bound}"


DATABASE_EXPECTED = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/idp.sqlite3",
        "sqlite+pysqlite:////srv/idp.sqlite3",
        "postgresql://idp@db.example/idp",
        "postgresql+psycopg://idp:secret@db.example:5432/idp?sslmode=require",
    ],
)
def test_sqlite_and_postgresql_through_psycopg_are_accepted(url: str) -> None:
    settings = config.load(None, {"IDP_DATABASE_URL": url})

    assert settings.database.url == url


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("mysql://idp:secret@db.example/idp", "mysql"),
        ("postgres://idp:secret@db.example/idp", "postgres"),
        ("postgresql+asyncpg://idp:secret@db.example/idp", "postgresql+asyncpg"),
        ("postgresql+psycopg2://idp:secret@db.example/idp", "postgresql+psycopg2"),
        ("sqlite+aiosqlite:///var/idp.sqlite3", "sqlite+aiosqlite"),
    ],
)
def test_another_database_or_driver_fails_without_repeating_the_password(
    url: str, scheme: str
) -> None:
    message = config_error(None, {"IDP_DATABASE_URL": url})

    assert message == f"database.url: {scheme}:// is not supported; {DATABASE_EXPECTED}"


@pytest.mark.parametrize("url", ["", "var/idp.sqlite3", "://idp", "postgresql://u:secret@[::1/x"])
def test_a_database_url_that_is_no_url_fails_without_repeating_it(url: str) -> None:
    message = config_error(None, {"IDP_DATABASE_URL": url})

    assert message == f"database.url is not a URL; {DATABASE_EXPECTED}"


def test_an_env_value_that_is_not_utf8_fails_naming_key_and_variable() -> None:
    # What os.environ holds for the bytes b"\xff\xfe" (surrogateescape).
    message = config_error(None, {"IDP_MAIL_SENDER": "idp\udcff\udcfe@example.com"})

    assert message == "mail.sender (from IDP_MAIL_SENDER): the value is not UTF-8 text"


def test_a_file_that_is_not_utf8_fails_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "idp.toml"
    path.write_bytes(b'[mail]\nsender = "idp\xff@example.com"\n')

    message = config_error(path, {})

    assert message == f"configuration file {path} is not UTF-8 text (byte 21)"


@pytest.mark.parametrize(
    "text", ['[mail]\nsender = "idp\\u0000@example.com"\n', '[passkeys]\norigins = ["a\\u0000"]\n']
)
def test_a_nul_character_in_a_file_value_fails_naming_the_key(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    key = "mail.sender" if "sender" in text else "passkeys.origins"

    message = config_error(path, {})

    assert message == f"{key} (from {path}): a NUL character is not a setting"


# --- the loaded tree ----------------------------------------------------------------


def test_settings_are_frozen() -> None:
    settings = config.load(None, {})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.session = SessionSettings(idle_minutes=5)  # type: ignore[misc]


def test_settings_sections_are_frozen() -> None:
    settings = config.load(None, {})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.session.idle_minutes = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [("http://localhost:5000", True), ("https://id.example.com", False)],
)
def test_private_logout_uris_when_unset_follow_whether_the_issuer_is_loopback(
    issuer: str, expected: bool
) -> None:
    settings = config.load(None, {"IDP_SERVER_ISSUER": issuer})

    assert settings.allow_private_logout_uris is expected


def test_private_logout_uris_set_false_wins_over_a_loopback_issuer() -> None:
    settings = config.load(None, {"IDP_LOGOUT_ALLOW_PRIVATE_URIS": "false"})

    assert settings.allow_private_logout_uris is False

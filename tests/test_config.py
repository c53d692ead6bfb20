import os
import runpy

import pytest

import config
from app import create_app
from app.database.encryption import SecretUnreadable
from app.extensions import db
from config import Config, normalise_database_url


def test_keys_are_generated_once_and_kept_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(Config, "SECRET_KEY", None)
    monkeypatch.setattr(Config, "ENCRYPTION_KEY", None)
    first = create_app(Config, instance_path=str(tmp_path))
    second = create_app(Config, instance_path=str(tmp_path))

    assert first.config["SECRET_KEY"] and first.config["ENCRYPTION_KEY"]
    assert second.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    assert second.config["ENCRYPTION_KEY"] == first.config["ENCRYPTION_KEY"]
    assert (tmp_path / "encryption_key").read_text().strip() == first.config["ENCRYPTION_KEY"]
    assert oct(os.stat(tmp_path / "secret_key").st_mode & 0o777) == "0o600"


def test_environment_values_win_over_generated_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(Config, "SECRET_KEY", "from-environment")
    monkeypatch.setattr(Config, "ENCRYPTION_KEY", None)
    app = create_app(Config, instance_path=str(tmp_path))
    assert app.config["SECRET_KEY"] == "from-environment"
    assert not (tmp_path / "secret_key").exists()


def test_defaults_point_at_microsoft_and_an_instance_sqlite_file(tmp_path, monkeypatch):
    monkeypatch.setattr(Config, "SQLALCHEMY_DATABASE_URI", None)
    app = create_app(Config, instance_path=str(tmp_path))
    assert app.config["GRAPH_BASE_URL"] == "https://graph.microsoft.com/v1.0"
    assert app.config["MS_LOGIN_BASE_URL"] == "https://login.microsoftonline.com"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/ireserve.db"


def test_instance_config_file_overrides_the_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(Config, "GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0")
    (tmp_path / "config.py").write_text('GRAPH_BASE_URL = "http://127.0.0.1:9999/v1.0"\n')
    app = create_app(Config, instance_path=str(tmp_path))
    assert app.config["GRAPH_BASE_URL"] == "http://127.0.0.1:9999/v1.0"


def test_the_scheduler_defaults_replace_a_dead_lease_holder_within_a_minute(monkeypatch):
    # Its lease runs out, then another runner's next tick takes it: lease + tick at worst.
    for name in ("SCHEDULER_LEASE_SECONDS", "SCHEDULER_TICK_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    defaults = runpy.run_path(config.__file__)["Config"]  # read afresh, without this environment's values
    assert defaults.SCHEDULER_TICK_SECONDS < defaults.SCHEDULER_LEASE_SECONDS, "the runner refuses a lease <= tick"
    assert defaults.SCHEDULER_LEASE_SECONDS + defaults.SCHEDULER_TICK_SECONDS <= 60


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        (None, None),
    ],
)
def test_postgres_urls_use_the_installed_driver(given, expected):
    assert normalise_database_url(given) == expected


def test_secrets_are_encrypted_at_rest_and_survive_key_rotation(app):
    from cryptography.fernet import Fernet

    from app.models import Integration
    from tests.conftest import config_for

    with app.app_context():
        from app.orgs.provisioning import create_organisation

        organisation = create_organisation("Crypto")
        db.session.add(Integration(organisation=organisation, name="x", client_secret="very-secret-value"))
        db.session.commit()
        raw = db.session.execute(db.text("SELECT client_secret FROM integrations")).scalar_one()
        assert "very-secret-value" not in raw

    old_key = app.config["ENCRYPTION_KEY"]
    new_key = Fernet.generate_key().decode()
    rotated = create_app(
        config_for(app.config["SQLALCHEMY_DATABASE_URI"], ENCRYPTION_KEY=f"{new_key},{old_key}"),
        instance_path=app.instance_path,
    )
    with rotated.app_context():
        assert db.session.scalar(db.select(Integration.client_secret)) == "very-secret-value"
        db.engine.dispose()

    stranger = create_app(
        config_for(app.config["SQLALCHEMY_DATABASE_URI"], ENCRYPTION_KEY=new_key), instance_path=app.instance_path
    )
    with stranger.app_context(), pytest.raises(SecretUnreadable) as failure:
        db.session.scalar(db.select(Integration.client_secret))
    assert "very-secret-value" not in str(failure.value)
    with stranger.app_context():
        db.engine.dispose()

"""Profiles are private (0700/0600) and used by one client at a time."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from securechat.client.profile import Profile, SessionToken, default_home
from securechat.errors import FailedPrecondition, InvalidArgument


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_profile_folder_and_files_are_private(tmp_path: Path) -> None:
    profile = Profile.open("work", tmp_path / "home")
    profile.settings.user = "alice"
    profile.save_settings()
    profile.save_session(SessionToken("t0ken", 1, "alice", 1))
    assert _mode(profile.directory) == 0o700
    assert _mode(tmp_path / "home") == 0o700
    assert _mode(profile.settings_path) == 0o600
    assert _mode(profile.session_path) == 0o600
    reopened = Profile.open("work", tmp_path / "home")
    assert reopened.settings.user == "alice"
    assert reopened.load_session() == SessionToken("t0ken", 1, "alice", 1)


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "home" / "profiles" / "p"
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    Profile.open("p", tmp_path / "home")
    assert _mode(folder) == 0o700


def test_second_client_on_the_same_profile_is_refused(tmp_path: Path) -> None:
    first = Profile.open("p", tmp_path)
    first.lock()
    second = Profile.open("p", tmp_path)
    with pytest.raises(FailedPrecondition, match="in use by another securechat process"):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "x" * 65])
def test_bad_profile_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match="bad profile name"):
        Profile.open(name, tmp_path)


def test_damaged_session_file_says_what_to_do(tmp_path: Path) -> None:
    profile = Profile.open("p", tmp_path)
    profile.session_path.write_text("[not an object]")
    with pytest.raises(FailedPrecondition, match="log in again"):
        profile.load_session()


def test_home_comes_from_the_environment() -> None:
    assert default_home({"SECURECHAT_HOME": "/x/y"}) == Path("/x/y")
    assert default_home({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/securechat")

"""Username and password rules, and the bundled list of common passwords."""

from __future__ import annotations

import pytest

from auth import InvalidUsername, WeakPassword
from auth.rules import check_password, check_username, common_passwords


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("abc", id="shortest"),
        pytest.param("a" * 32, id="longest"),
        pytest.param("Ada.Lovelace_1-2", id="every-symbol"),
        pytest.param("  bob  ", id="surrounding-spaces-stripped"),
    ],
)
def test_valid_usernames(name: str) -> None:
    assert check_username(name) == name.strip()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("ab", id="too-short"),
        pytest.param("a" * 33, id="too-long"),
        pytest.param("<script>", id="html"),
        pytest.param("ada lovelace", id="inner-space"),
        pytest.param("adå", id="non-ascii"),
        pytest.param("ad\na", id="newline"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(InvalidUsername):
        check_username(name)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("password123", id="password123"),
        pytest.param("qwertyuiop", id="qwertyuiop"),
        pytest.param("1234567890", id="digits"),
        pytest.param("PassWord123", id="any-case"),
        pytest.param("short", id="too-short"),
        pytest.param("x" * 257, id="too-long"),
        pytest.param("aaaaabbbbbaaaaa", id="too-few-distinct"),
        pytest.param("my name is alice!", id="contains-username"),
    ],
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        check_password(password, username="alice")


def test_a_passphrase_is_accepted_and_normalised() -> None:
    composed = "caf\u00e9 au lait, s'il vous pla\u00eet"
    decomposed = "cafe\u0301 au lait, s'il vous pla\u0131\u0302t".replace("\u0131\u0302", "i\u0302")
    assert check_password(composed) == check_password(decomposed)


def test_the_bundled_list_is_a_few_thousand_long_passwords() -> None:
    common = common_passwords()
    assert len(common) > 3000
    assert {"password123", "qwertyuiop", "1234567890"} <= common
    assert all(len(entry) >= 10 for entry in common)
